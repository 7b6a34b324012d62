"""Wires the feature into the app: blueprints, moderation kinds, search sources, schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory, before the API blueprint is registered (``api`` adds
    its routes to it at import)."""
    from flask_babel import lazy_gettext as _l

    from portal.core import home, mail
    from portal.qa import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        moderation,
        personal_data,
        search,
        service,
    )
    from portal.qa.views import bp, home_section

    moderation.register()
    personal_data.register()
    mail.register_topic(service.NEW_ANSWER_MAIL, _l("New answers to questions I follow"))
    mail.register_topic(service.COMMENT_MAIL, _l("Comments on my questions and answers"))
    mail.register_topic(service.TAG_MAIL, _l("New questions with tags I follow"))
    search.register()
    home.register("qa", 10, home_section)
    app.register_blueprint(bp)
