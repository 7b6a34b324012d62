"""Wires the roadmap into the app: blueprint, moderation kinds, search source, schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory, before the API blueprint is registered (``api`` adds
    its routes to it at import)."""
    from flask_babel import lazy_gettext as _l

    from portal.core import home, mail
    from portal.roadmap import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        moderation,
        personal_data,
        search,
        service,
    )
    from portal.roadmap.tasks import BEAT_SCHEDULE
    from portal.roadmap.views import bp, home_section

    moderation.register()
    personal_data.register()
    mail.register_topic(
        service.DIGEST_MAIL,
        _l("Roadmap ideas I follow: status changes and comments (a daily digest)"),
    )
    search.register()
    home.register("roadmap", 20, home_section)
    app.register_blueprint(bp)
    app.extensions["celery"].conf.beat_schedule.update(BEAT_SCHEDULE)
