from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import force_locale
from flask_login import current_user, login_required
from marshmallow import fields, validate
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.core import home as home_page
from portal.core import mail
from portal.core.api import StrictSchema, load
from portal.core.db import db
from portal.core.extensions import csrf, limiter, per_signed_in_user
from portal.core.html import MAX_MARKDOWN_CHARS, render_markdown
from portal.core.i18n import LOCALES
from portal.core.identity import User
from portal.core.notifications import Notification, mark_read
from portal.core.pagination import clamp_page_args, paginate
from portal.core.urls import is_safe_next
from portal.core.web import id_arg

bp = Blueprint("main", __name__)


@bp.route("/")
def home() -> str:
    viewer = current_user._get_current_object() if current_user.is_authenticated else None
    return render_template("main/home.html", sections=home_page.render_sections(db.session, viewer))


@bp.route("/healthz")
def healthz() -> Response:
    """Liveness probe, and the trivial endpoint benchmarks compare pages against."""
    return Response("ok\n", mimetype="text/plain")


@bp.route("/favicon.ico")
def favicon() -> Response:
    """Pages name their icon in ``<head>``; this is for the clients that ask this address
    anyway (feed readers, bookmarks, older browsers), which were served a 404 page."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


class PreviewIn(StrictSchema):
    source = fields.Str(required=True, validate=validate.Length(max=MAX_MARKDOWN_CHARS))
    images = fields.Bool(load_default=False)


@bp.route("/preview", methods=["POST"])
@login_required
@limiter.limit("30 per minute", key_func=per_signed_in_user)
def preview() -> Response:
    """What a post will look like, rendered by the same policy as saving it. ``images``: the
    field keeps images when saved (questions, answers, ideas, templates, articles); the
    policy still shows only images from the portal's own uploads."""
    data = load(PreviewIn, request.get_json(silent=True) or {})
    return jsonify({"html": render_markdown(data["source"], allow_images=data["images"])})


@bp.route("/mail/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed token is the proof; mail providers POST it without a page (RFC 8058)
def unsubscribe(token: str) -> str:
    """The link every topic mail ends with. Opening it only asks (mail scanners open links);
    the page's button, or the provider's one-click POST, turns the topic off."""
    found = mail.read_unsubscribe_token(token)
    person = db.session.get(User, found[0]) if found is not None else None
    if found is None or person is None or not person.active:
        abort(404)
    user_id, name = found
    if request.method == "POST":
        mail.turn_off(db.session, user_id, name)
        db.session.commit()
    stopped = name in mail.topics_off(db.session, user_id)
    # Opened from the mail, most often signed out: in the language the mail was written in.
    language = nullcontext() if current_user.is_authenticated else force_locale(person.locale)
    with language:
        return render_template(
            "main/unsubscribe.html", topic=mail.topic(name), stopped=stopped, token=token
        )


@bp.route("/locale", methods=["POST"])
def set_locale() -> Response:
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        abort(400)
    session["locale"] = locale
    if current_user.is_authenticated:
        current_user.locale = locale
        db.session.commit()
    target = request.form.get("next", "")
    return redirect(target if is_safe_next(target) else url_for("main.home"))


@bp.route("/notifications")
@login_required
def notifications() -> str:
    page, per_page = clamp_page_args(request.args.get("page", 1))
    statement = (
        select(Notification)
        .where(Notification.user_id == current_user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )
    return render_template(
        "main/notifications.html", notifications=paginate(db.session, statement, page, per_page)
    )


@bp.route("/notifications/read", methods=["POST"])
@login_required
def read_notifications() -> Response:
    notification_id = id_arg(request.form.get("id"))  # none: every notification
    mark_read(db.session, current_user, notification_id)
    db.session.commit()
    target = request.form.get("next", "")
    return redirect(target if is_safe_next(target) else url_for("main.notifications"))


@bp.route("/dev/outbox")
def dev_outbox() -> Any:
    """Mail as it would be sent, so links can be clicked locally. Off in production."""
    if not current_app.config["DEV_OUTBOX"]:
        abort(404)
    page, per_page = clamp_page_args(request.args.get("page", 1))
    statement = select(mail.OutboxMessage).order_by(mail.OutboxMessage.id.desc())
    return render_template(
        "main/outbox.html", messages=paginate(db.session, statement, page, per_page)
    )
