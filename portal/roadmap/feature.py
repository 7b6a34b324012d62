"""Wires the roadmap into the app: blueprint, moderation kinds, search source, schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory, before the API blueprint is registered (``api`` adds
    its routes to it at import)."""
    from portal.core import home
    from portal.roadmap import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        moderation,
        personal_data,
        search,
    )
    from portal.roadmap.tasks import BEAT_SCHEDULE
    from portal.roadmap.views import bp, home_section

    moderation.register()
    personal_data.register()
    search.register()
    home.register("roadmap", 20, home_section)
    app.register_blueprint(bp)
    app.extensions["celery"].conf.beat_schedule.update(BEAT_SCHEDULE)
