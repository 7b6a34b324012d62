"""Wires the feature into the app: blueprints, moderation kinds, search sources, schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory, before the API blueprint is registered (``api`` adds
    its routes to it at import)."""
    from portal.core import home
    from portal.qa import (
        api,  # noqa: F401 - routes on portal.core.api.bp
        moderation,
        personal_data,
        search,
    )
    from portal.qa.views import bp, home_section

    moderation.register()
    personal_data.register()
    search.register()
    home.register("qa", 10, home_section)
    app.register_blueprint(bp)
