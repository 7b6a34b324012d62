"""Signed-in sessions end: 12 hours after signing in whatever the activity (absolute), and
after 30 minutes without a request (idle), both configurable (OWASP ASVS 3.3). A person who
ticked *remember me* is signed in again from that cookie, which is what they asked for.

The times live in the signed session cookie; the last-seen time is rewritten at most once a
minute, so an active page does not send a new cookie with every response.

Requests a page sends in the background (as-you-type suggestions, a search click, a progress
poll) never write the cookie (:func:`background`): one is often in flight beside a form post or
a navigation, and its late response would put back the session as it was before the post,
losing what the post stored there (its flash message).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import logout_user, user_loaded_from_cookie, user_logged_in

F = TypeVar("F", bound=Callable[..., Any])

SIGNED_IN_AT = "_signed_in_at"
SEEN_AT = "_seen_at"
SEEN_RESOLUTION = 60  # seconds


def _now() -> float:
    return time.time()


def _start(*_args: object, **_kwargs: object) -> None:
    now = _now()
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now


def background(view: F) -> F:
    """Mark a view as a background request: its response never sets the session cookie."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.session_untouched = True
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _SessionInterface(SecureCookieSessionInterface):
    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if g.get("session_untouched"):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = _SessionInterface()
    user_logged_in.connect(_start, app)
    user_loaded_from_cookie.connect(_start, app)

    @app.before_request
    def _end_expired_sessions() -> None:
        if "_user_id" not in session or request.endpoint == "static":
            return
        now = _now()
        signed_in = session.get(SIGNED_IN_AT)
        seen = session.get(SEEN_AT, signed_in)
        if signed_in is None:
            _start()  # signed in before this rule existed
            return
        lifetime = app.config["SESSION_LIFETIME_HOURS"] * 3600
        idle = app.config["SESSION_IDLE_MINUTES"] * 60
        if now - signed_in > lifetime or (idle and seen is not None and now - seen > idle):
            logout_user()
            session.pop(SIGNED_IN_AT, None)
            session.pop(SEEN_AT, None)
            return
        if seen is None or now - seen >= SEEN_RESOLUTION:
            session[SEEN_AT] = now
