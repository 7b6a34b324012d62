"""Wires data governance into the app: its blueprint, its own personal data, its schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from portal.privacy import service
    from portal.privacy.retention_tasks import BEAT_SCHEDULE as RETENTION_SCHEDULE
    from portal.privacy.tasks import BEAT_SCHEDULE
    from portal.privacy.views import bp

    service.register()
    app.register_blueprint(bp)
    app.extensions["celery"].conf.beat_schedule.update(BEAT_SCHEDULE)
    app.extensions["celery"].conf.beat_schedule.update(RETENTION_SCHEDULE)
