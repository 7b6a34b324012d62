"""Wires the feature into the app: blueprints, moderation kinds, search sources, schedules."""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory, before the API blueprint is registered."""
    from portal.core.i18n import current_locale
    from portal.kb import (
        api,  # noqa: F401 - adds the /api/v1/kb routes at import
        moderation,
        personal_data,
        search,
        signals,
    )
    from portal.kb.service import category_name
    from portal.kb.views import bp

    app.register_blueprint(bp)
    moderation.register()
    personal_data.register()
    search.register()
    signals.connect()

    def kb_category_name(category: Any) -> str:
        return category_name(category, current_locale())

    app.jinja_env.filters["kb_category_name"] = kb_category_name
