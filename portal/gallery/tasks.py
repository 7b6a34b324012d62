"""Gallery background work: the weekly author digest of downloads and reviews."""

from __future__ import annotations

from celery import shared_task
from celery.schedules import crontab
from flask import current_app

from portal.core.db import new_session
from portal.core.storage import storage_for
from portal.core.tasks import RETRY_POLICY
from portal.gallery import service

BEAT_SCHEDULE = {
    "gallery-author-digest": {
        "task": "gallery.author_digest",
        "schedule": crontab(hour=7, minute=30, day_of_week=1),
    },
    "gallery-sweep-files": {"task": "gallery.sweep_files", "schedule": crontab(hour=3, minute=40)},
}


@shared_task(name="gallery.author_digest", **RETRY_POLICY)
def author_digest_task() -> int:
    """Idempotent: each author's ``sent_through`` moves forward, so a redelivered run sends
    nothing new."""
    with new_session() as session:
        sent = service.send_author_digests(session)
        session.commit()
    return sent


@shared_task(name="gallery.sweep_files", **RETRY_POLICY)
def sweep_files_task() -> int:
    """Files of deleted templates and organizations leave the disk daily; idempotent."""
    with new_session() as session:
        return service.sweep_unreferenced_files(
            session, storage_for(current_app.config["UPLOAD_DIR"], "gallery")
        )
