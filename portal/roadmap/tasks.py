"""Roadmap background work: the daily digest mail and the trending refresh."""

from __future__ import annotations

from celery import shared_task
from celery.schedules import crontab

from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY
from portal.roadmap import service

BEAT_SCHEDULE = {
    "roadmap-daily-digest": {"task": "roadmap.digest", "schedule": crontab(hour=7, minute=0)},
    # Trending decays with age: rescore every published idea in one UPDATE.
    "roadmap-trending": {"task": "roadmap.trending", "schedule": crontab(minute="*/15")},
}


@shared_task(name="roadmap.digest", **RETRY_POLICY)
def digest_task() -> int:
    with new_session() as session:
        sent = service.send_digests(session)
        session.commit()
    return sent


@shared_task(name="roadmap.trending", **RETRY_POLICY)
def trending_task() -> int:
    with new_session() as session:
        count = service.refresh_trending(session)
        session.commit()
    return count
