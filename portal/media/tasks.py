"""Media background work: images no post used, and files nothing refers to, leave daily."""

from __future__ import annotations

from celery import shared_task
from celery.schedules import crontab
from flask import current_app

from portal.core.db import new_session
from portal.core.storage import storage_for
from portal.core.tasks import RETRY_POLICY
from portal.media import service

BEAT_SCHEDULE = {
    "media-sweep-files": {"task": "media.sweep_files", "schedule": crontab(hour=3, minute=50)},
}


@shared_task(name="media.sweep_files", **RETRY_POLICY)
def sweep_files_task() -> int:
    """Idempotent: a second run finds nothing to delete. Rows go first (committed), then the
    files they no longer refer to."""
    with new_session() as session:
        service.delete_unclaimed(session)
        session.commit()
        return service.sweep_unreferenced_files(
            session, storage_for(current_app.config["UPLOAD_DIR"], service.AREA)
        )
