"""Customer-success background work: tasks take ids or nothing and only call services."""

from __future__ import annotations

from celery import shared_task
from celery.schedules import crontab

from cs_metrics import service
from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY


@shared_task(name="cs_metrics.run_import", **RETRY_POLICY)
def run_import_task(job_id: int) -> str:
    """Import an uploaded file; the service commits data and progress itself (a job runner)."""
    return service.run_import(new_session, job_id).status


@shared_task(name="cs_metrics.recompute", **RETRY_POLICY)
def recompute_task() -> int:
    """Today's health of every account; idempotent (snapshots are upserted by day)."""
    with new_session() as session:
        result = service.recompute(session)
        session.commit()
    return result.accounts


BEAT_SCHEDULE = {
    "cs-nightly-recompute": {
        "task": "cs_metrics.recompute",
        "schedule": crontab(hour=2, minute=30),
    },
}
