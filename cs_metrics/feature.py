"""Wires customer success into the app: the CS blueprint, its API routes, its schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory, before the API blueprint is registered."""
    from cs_metrics import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        personal_data,
    )
    from cs_metrics.tasks import BEAT_SCHEDULE
    from cs_metrics.views import bp
    from cs_metrics.views.worklist import home_section
    from portal.core import home

    app.register_blueprint(bp)
    home.register("cs", 1, home_section, wide=True)
    personal_data.register()
    app.extensions["celery"].conf.beat_schedule.update(BEAT_SCHEDULE)
