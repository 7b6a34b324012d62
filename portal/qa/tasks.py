"""Q&A background work: telling followers of a newly published question or answer."""

from __future__ import annotations

from celery import shared_task

from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY
from portal.qa import service


@shared_task(name="qa.tell_followers", **RETRY_POLICY)
def tell_followers_task(kind: str, object_id: int) -> int:
    """A popular tag's followers are thousands of notifications and mails: with a broker, a
    worker writes them after the post is committed, and the author does not wait for it."""
    with new_session() as session:
        told = service.tell_followers(session, kind, object_id)
        session.commit()
    return told
