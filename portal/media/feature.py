"""Wires media into the app: blueprint, API route, personal data, the daily sweep of files."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from portal.media import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        personal_data,
    )
    from portal.media.tasks import BEAT_SCHEDULE
    from portal.media.views import bp

    personal_data.register()
    app.register_blueprint(bp)
    app.extensions["celery"].conf.beat_schedule.update(BEAT_SCHEDULE)
