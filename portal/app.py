"""The app factory: configuration, extensions, blueprints, error pages, CLI and Celery."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, has_request_context, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_bootstrap import Bootstrap5
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from portal.config import load_config
from portal.core import home, i18n, sessions, signed_in
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.extensions import csrf, limiter, login_manager
from portal.core.fragments import NAVIGATION_SLOT, Navigation, navigation_bar
from portal.core.identity import shown_name
from portal.core.notifications import unread_badge, unread_count
from portal.core.tasks import celery_init_app
from portal.core.urls import template_url_for
from portal.core.web import IdConverter, PortalRequest, TextConverter, remember_retry_after

ROOT = Path(__file__).resolve().parent.parent

# The policy every page is served with: nothing but our own origin, no inline code.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)

ERROR_TITLES = {
    400: _l("Bad request"),
    401: _l("Please sign in"),
    403: _l("Not allowed"),
    404: _l("Page not found"),
    405: _l("Not allowed"),
    409: _l("Conflict"),
    413: _l("Too large"),
    422: _l("Please check your input"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
    503: _l("Busy"),
}
ERROR_MESSAGES = {
    400: _l("The request could not be understood."),
    401: _l("Sign in to see this page."),
    403: _l("You do not have permission to do this."),
    404: _l("There is nothing here, or it is not yours to see."),
    405: _l("This address does not accept that kind of request."),
    413: _l("The upload or form is larger than this site accepts."),
    429: _l("You have made too many requests. Wait a moment and try again."),
    500: _l("We could not finish your request. It has been logged; please try again later."),
    503: _l("Someone changed this at the same moment. Nothing was saved; please try again."),
}
# A database that is away (restarting, unreachable), as opposed to a lost race for a lock.
UNAVAILABLE_TITLE = _l("Temporarily unavailable")
UNAVAILABLE_MESSAGE = _l(
    "The service is briefly unavailable. Nothing was saved; please try again in a moment."
)
# SQLSTATEs of a lost race: serialization failure, deadlock, lock not available.
LOCK_CONFLICT_CODES = frozenset({"40001", "40P01", "55P03"})


def _lost_a_race(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in LOCK_CONFLICT_CODES or "locked" in str(error.orig).lower()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    instance_path = os.environ.get("COCREATE_INSTANCE_PATH") or str(ROOT / "instance")
    app = Flask(
        "portal",
        instance_path=(config or {}).get("INSTANCE_PATH", instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(Path(__file__).parent / "static"),
    )
    app.url_map.converters["int"] = IdConverter  # before any route is added
    app.url_map.converters["default"] = app.url_map.converters["string"] = TextConverter
    app.request_class = PortalRequest
    app.config.update(load_config(app.instance_path, config))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if proxies := int(os.environ.get("COCREATE_PROXY_COUNT", "0")):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    db.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    _init_login(app)
    sessions.init_app(app)
    i18n.init_app(app)
    Bootstrap5(app)
    celery_init_app(app)
    _register_features(app)
    _register_error_handlers(app)
    _register_response_hooks(app)
    _register_template_helpers(app)
    return app


def _init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "accounts.sign_in"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    login_manager.user_loader(signed_in.load_user)


def _register_features(app: Flask) -> None:
    from cs_metrics import feature as cs_feature
    from moderation import personal_data as moderation_personal_data
    from moderation.service import DECISION_MAIL
    from moderation.tasks import BEAT_SCHEDULE as moderation_beat
    from moderation.views import bp as moderation_bp
    from moderation.views import home_section as moderation_home
    from portal.accounts import moderation as accounts_moderation
    from portal.accounts import personal_data as accounts_personal_data
    from portal.accounts.views import bp as accounts_bp
    from portal.api.views import bp as api_bp
    from portal.core.mail import register_topic
    from portal.gallery import feature as gallery_feature
    from portal.kb import feature as kb_feature
    from portal.main.views import bp as main_bp
    from portal.media import feature as media_feature
    from portal.privacy import feature as privacy_feature
    from portal.qa import feature as qa_feature
    from portal.roadmap import feature as roadmap_feature
    from portal.search import feature as search_feature

    accounts_moderation.register()
    accounts_personal_data.register()
    moderation_personal_data.register()
    register_topic(DECISION_MAIL, _l("Moderators' decisions on my posts"))
    qa_feature.init_app(app)
    kb_feature.init_app(app)
    gallery_feature.init_app(app)
    roadmap_feature.init_app(app)
    cs_feature.init_app(app)
    privacy_feature.init_app(app)
    media_feature.init_app(app)
    search_feature.init_app(app)  # last: its start-up check counts every registered kind
    app.extensions["celery"].conf.beat_schedule.update(moderation_beat)
    app.register_blueprint(main_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(moderation_bp)
    home.register("moderation", 0, moderation_home, wide=True)


def _wants_json() -> bool:
    """The API, and the page scripts that ask for JSON (preview, image upload): their errors
    are the API's JSON body naming the field. A browser loading a page asks for HTML first."""
    if request.path.startswith("/api/"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    )


def json_error(
    status: int, code: str, message: str, fields: dict[str, Any] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def _error_page(status: int, message: str | None = None) -> tuple[str, int]:
    title = ERROR_TITLES.get(status, ERROR_TITLES[400 if status < 500 else 500])
    text = message or ERROR_MESSAGES.get(status, ERROR_MESSAGES[400 if status < 500 else 500])
    return render_template("errors/error.html", status=status, title=title, message=text), status


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Any:
        db.session.rollback()
        remember_retry_after(error)
        if _wants_json():
            return json_error(error.status_code, error.code, error.message, error.fields)
        return _error_page(error.status_code, error.message if error.status_code != 404 else None)

    @app.errorhandler(OperationalError)
    def database_busy(error: OperationalError) -> Any:
        """A write that lost a race for a lock (SQLite's "database is locked") or a database
        that is briefly away: nothing was saved, and trying again will work."""
        db.session.rollback()
        # Answer as to a visitor: the layout and the response hooks would otherwise load the
        # signed-in user from the unreachable database again, and the 503 would become a bare
        # 500. Not logout_user(): the session cookie stays, so the user is still signed in after.
        login_manager._update_request_context_with_user()
        app.logger.warning("database busy on %s %s: %s", request.method, request.path, error.orig)
        busy = _lost_a_race(error)
        message = ERROR_MESSAGES[503] if busy else UNAVAILABLE_MESSAGE
        if _wants_json():
            response = json_error(503, "busy" if busy else "unavailable", str(message))
        else:
            title = ERROR_TITLES[503] if busy else UNAVAILABLE_TITLE
            body = render_template("errors/error.html", status=503, title=title, message=message)
            response = app.make_response((body, 503))
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError) -> Any:
        db.session.rollback()
        messages = (
            error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        )
        return json_error(422, "validation_error", "Some fields are not valid.", messages)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        message = _l(
            "This form has expired or was not sent from this site. Reload the page and try again."
        )
        if _wants_json():
            return json_error(400, "csrf", str(message))
        return _error_page(400, str(message))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        if _wants_json():
            code = (error.name or "error").lower().replace(" ", "_")
            response = json_error(status, code, error.description or error.name)
        else:
            body, _status = _error_page(status)
            response = app.make_response((body, status))
        original = error.get_response()
        for header in (
            "Retry-After",
            "Allow",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ):
            if header in original.headers:
                response.headers[header] = original.headers[header]
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Any:
        if app.testing:
            raise error  # tests see the real traceback; the 500 page is tested with TESTING off
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        if _wants_json():
            return json_error(500, "internal_error", "Something went wrong on our side.")
        return _error_page(500)


def _register_response_hooks(app: Flask) -> None:
    production = app.config["ENV"] == "production"

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if response.status_code in (429, 503) and g.get("retry_after"):
            headers.setdefault("Retry-After", str(g.retry_after))
        if production:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if response.mimetype == "text/html" and current_user.is_authenticated:
            headers.setdefault("Cache-Control", "private, no-store")
        return response


def _register_template_helpers(app: Flask) -> None:
    from flask_babel import format_timedelta
    from flask_wtf.csrf import generate_csrf

    from moderation.service import is_moderator, queue_counts
    from portal.core.i18n import current_locale
    from portal.core.permissions import Action, can

    @app.context_processor
    def layout_context() -> dict[str, Any]:
        signed_in = has_request_context() and current_user.is_authenticated
        unread = 0
        if signed_in:
            unread = getattr(current_user, "unread_notifications", None)
            if unread is None:
                unread = unread_count(db.session, current_user)
        locale = current_locale()

        def navigation() -> Markup:
            if g.get("layout_slots"):  # a kept page: FragmentCache.render_page fills it in
                return escape(NAVIGATION_SLOT)  # no markup characters in it
            nav = Navigation(locale=locale, script_root=request.script_root)
            if signed_in:
                user = current_user._get_current_object()
                queue = None
                if is_moderator(user):
                    # Counted once per queue change; a page that read the change key says so.
                    queue = g.get("moderation_queue_count")
                    if queue is None:
                        queue = queue_counts(db.session, g.get("moderation_change_key"))
                nav = replace(
                    nav,
                    signed_in=True,
                    display_name=user.display_name,
                    organization_id=user.organization_id,
                    manage_members=can(user, Action.MANAGE_MEMBERS, user.organization),
                    view_cs=can(user, Action.VIEW_CS),
                    view_search_insights=can(user, Action.VIEW_SEARCH_INSIGHTS),
                    queue=queue,
                    unread=unread or 0,
                )
            next_path = request.full_path if request.method == "GET" else ""
            return navigation_bar.render(nav, lambda: {"nav": nav}, generate_csrf(), next_path)

        return {
            "unread_notifications": unread,
            "can": can,
            "Action": Action,
            "current_locale": locale,
            "navigation": navigation,
            # What base.html shows besides the page's content, the navigation, flashed
            # messages and the survey: the key of a kept page (FragmentCache.render_page).
            "layout_key": (
                locale,
                request.script_root if has_request_context() else None,
                current_user.get_id() if signed_in else None,
                bool(app.config.get("DEV_OUTBOX")),
            ),
        }

    app.jinja_env.globals["url_for"] = template_url_for
    app.jinja_env.filters["person_name"] = shown_name
    app.jinja_env.filters["unread_badge"] = unread_badge
    app.jinja_env.filters["datetime"] = i18n.when
    app.jinja_env.filters["date"] = i18n.day
    # A span of minutes in the reader's words ("2 hours", "3 天"), rounded as people say it.
    app.jinja_env.filters["minutes"] = lambda value: (
        format_timedelta(timedelta(minutes=value), granularity="minute")
        if value is not None
        else "–"
    )
