"""Periodic moderation work: tasks take ids or nothing, open their own session, call a service."""

from __future__ import annotations

from celery import shared_task

from moderation import service
from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY


@shared_task(name="moderation.promote_trust_levels", **RETRY_POLICY)
def promote_trust_levels() -> int:
    with new_session() as session:
        promoted = service.promote_all(session)
        session.commit()
    return promoted


BEAT_SCHEDULE = {
    "promote-trust-levels": {"task": "moderation.promote_trust_levels", "schedule": 3600.0},
}
