"""Wires the feature into the app: blueprints, moderation kinds, search sources, schedules."""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory (before the API blueprint is registered)."""
    from portal.search import (
        api,  # noqa: F401  (adds /api/v1/search to the API blueprint)
        index,
    )
    from portal.search.views import bp

    app.register_blueprint(bp)
    app.extensions["celery"].conf.beat_schedule.update(index.BEAT_SCHEDULE)
    root = Path(app.config["SEARCH_INDEX_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    if index.current_name(root) is not None:
        # The database is the truth: a broken index is reported here and rebuilt by
        # `cocreate search reindex`; searches meanwhile answer "not available".
        index.startup_check(root)
