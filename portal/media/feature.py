"""Wires media into the app: blueprint, API route, personal data, the daily sweep of files."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from portal.media import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        personal_data,
        service,
    )
    from portal.media.tasks import BEAT_SCHEDULE
    from portal.media.views import bp

    personal_data.register()
    if not event.contains(Session, "after_flush", service.claim_shown_images):
        event.listen(Session, "after_flush", service.claim_shown_images)
    app.register_blueprint(bp)
    app.extensions["celery"].conf.beat_schedule.update(BEAT_SCHEDULE)
