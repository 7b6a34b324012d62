"""Gallery background work: the weekly author digest of downloads and reviews."""

from __future__ import annotations

from celery import shared_task
from celery.schedules import crontab

from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY
from portal.gallery import service

BEAT_SCHEDULE = {
    "gallery-author-digest": {
        "task": "gallery.author_digest",
        "schedule": crontab(hour=7, minute=30, day_of_week=1),
    },
}


@shared_task(name="gallery.author_digest", **RETRY_POLICY)
def author_digest_task() -> int:
    """Idempotent: each author's ``sent_through`` moves forward, so a redelivered run sends
    nothing new."""
    with new_session() as session:
        sent = service.send_author_digests(session)
        session.commit()
    return sent
