"""Background work for data governance: building export archives and expiring old ones."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.schedules import crontab
from flask import current_app

from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY, TRANSIENT_ERRORS
from portal.privacy import service

log = logging.getLogger(__name__)

BEAT_SCHEDULE = {
    "privacy-expire-exports": {
        "task": "privacy.expire_exports",
        "schedule": crontab(hour=3, minute=30),
    },
}


@shared_task(name="privacy.build_export", **RETRY_POLICY)
def build_export_task(export_id: int) -> str | None:
    upload_dir = current_app.config["UPLOAD_DIR"]
    with new_session() as session:
        try:
            export = service.build_export(session, export_id, upload_dir)
            session.commit()
        except TRANSIENT_ERRORS:
            raise  # retried with backoff
        except Exception as error:
            # A bug, not a blip: the person sees "failed" and can ask again.
            session.rollback()
            log.exception("data export %s failed", export_id)
            service.fail_export(session, export_id, f"{type(error).__name__}: {error}")
            session.commit()
            return None
        return export.status if export is not None else None


@shared_task(name="privacy.expire_exports", **RETRY_POLICY)
def expire_exports_task() -> int:
    with new_session() as session:
        count = service.expire_exports(session, current_app.config["UPLOAD_DIR"])
        session.commit()
    return count
