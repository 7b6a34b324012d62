"""Wires the feature into the app: blueprints, moderation kinds, search sources, schedules."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session


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
    if not app.config["SEARCH_STARTUP_CHECK"]:
        return
    from portal.search.registry import sources

    if sources():
        startup_check(app)
        return
    # The first app of a process registers the search sources after this: open the index
    # now, and compare it with the database at the first request, once.
    if index.current_name(root) is not None:
        index.startup_check(root)
    engine = app.extensions["cocreate_engine"]
    pending = [True]
    lock = threading.Lock()

    @app.before_request
    def _check_once() -> None:
        if not pending:
            return
        with lock:
            if not pending:
                return
            pending.clear()
        # The app's own engine, not the request's session: the check's reads stay out of
        # the request's transaction.
        with Session(bind=engine) as session:
            index.startup_check(root, session)
        engine.dispose()  # the check's connection is not kept for the app


def startup_check(app: Flask) -> bool:
    """The database is the truth: an index that is broken, or whose document counts per kind
    differ from the database's, is logged naming `cocreate search reindex`; searches say
    search is being rebuilt while it cannot answer. Needs every feature's search source
    registered (the app factory may call this after the features)."""
    from portal.search import index

    engine = app.extensions["cocreate_engine"]
    try:
        with app.app_context(), Session(bind=engine) as session:
            return index.startup_check(Path(app.config["SEARCH_INDEX_DIR"]), session)
    finally:
        # No connection is kept open by the check: an app that never uses its own engine
        # (a test binding another, a CLI command) leaves none behind.
        engine.dispose()
