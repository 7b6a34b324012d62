"""Signed-in sessions end: 12 hours after signing in whatever the activity (absolute), and
after 30 minutes without a request (idle), both configurable (OWASP ASVS 3.3). A person who
ticked *remember me* is signed in again from that cookie, which is what they asked for.

The times live in the signed session cookie; the last-seen time is rewritten at most once a
minute, so an active page does not send a new cookie with every response, and each process
checks a cookie's signature once (``_SessionInterface.open_session``).

Requests a page sends in the background (as-you-type suggestions, a search click, a progress
poll) never write the cookie (:func:`background`): one is often in flight beside a form post or
a navigation, and its late response would put back the session as it was before the post,
losing what the post stored there (its flash message).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import logout_user, user_loaded_from_cookie, user_logged_in
from itsdangerous import BadSignature

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


# Cookies whose signature this process has checked, per app: cookie -> (values, signed at).
_VERIFIED = "cocreate_verified_sessions"
VERIFIED_MAX_ENTRIES = 4096  # ~1.1 KB each (tracemalloc): ~4.5 MB at most; emptied when full
_PLAIN_VALUES = (str, int, float, bool, type(None))


class _SessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Any) -> SecureCookieSession | None:
        """The signed cookie's session, its signature checked once per process: checking it
        and decoding its tagged JSON took 120 µs of every signed-in request, and a person
        sends the same cookie until it changes (at most once a minute, see ``SEEN_AT``).

        The cookie itself is the key, so only a cookie that passed the check is found; its
        age is checked on every request as ``loads`` checks it. Each request gets its own
        copy of the values, a deep one when they hold more than plain values (the survey
        state's list, flashed messages), which the request may change in place."""
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return super().open_session(app, request)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        verified: dict[str, tuple[dict[str, Any], int, bool]] = app.extensions.setdefault(
            _VERIFIED, {}
        )
        kept = verified.get(cookie)
        if kept is not None:
            values, signed_at, plain = kept
            if 0 <= int(_now()) - signed_at <= max_age:
                return self.session_class(values if plain else copy.deepcopy(values))
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        try:
            values, signed = serializer.loads(cookie, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if not isinstance(values, dict):
            return self.session_class()  # as SecureCookieSession(values) would fail
        if len(verified) >= VERIFIED_MAX_ENTRIES:
            verified.clear()
        plain = all(type(v) in _PLAIN_VALUES for v in values.values())
        verified[cookie] = (values, int(signed.timestamp()), plain)
        return self.session_class(values if plain else copy.deepcopy(values))

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
