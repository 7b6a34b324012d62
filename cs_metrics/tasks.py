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
    """The nightly run: today's health of every account, recorded as a run so the portfolio
    says when its scores were computed; idempotent (snapshots are upserted by day)."""
    with new_session() as session:
        run_id = service.queue_recompute(session).id
        session.commit()
    return run_recompute_task(run_id)


@shared_task(name="cs_metrics.run_recompute", **RETRY_POLICY)
def run_recompute_task(run_id: int) -> int:
    """A queued run (a CSM's "Recompute now"); the service records its progress itself."""
    return service.run_recompute(new_session, run_id).accounts_done


BEAT_SCHEDULE = {
    "cs-nightly-recompute": {
        "task": "cs_metrics.recompute",
        "schedule": crontab(hour=2, minute=30),
    },
}
