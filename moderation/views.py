"""The moderator's queue, watched words, and flagging (for every signed-in user)."""

from __future__ import annotations

import difflib
import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, get_timezone, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from moderation import service
from moderation.labels import TRUST_FACT_LABELS
from moderation.models import FlagReason, ModerationItem, ReasonTemplate, WatchedWordEntry
from moderation.registry import kinds
from moderation.rules import WordAction
from portal.core.db import db, utcnow
from portal.core.errors import DomainError
from portal.core.fragments import FragmentCache
from portal.core.i18n import minute_text
from portal.core.identity import Organization, User, shown_name
from portal.core.pagecache import cache_seconds
from portal.core.pagination import clamp_page_args
from portal.core.urls import is_safe_next
from portal.core.web import id_arg, perform

bp = Blueprint("moderation", __name__, url_prefix="/moderation")


@bp.before_request
def _moderators_only() -> Any:
    if request.endpoint in FLAG_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.sign_in", next=request.full_path))
    if not service.is_moderator(current_user):
        abort(403)
    return None


# Older than this many hours is every item there is (ten years); a larger number in the URL
# would overflow the date arithmetic.
MAX_AGE_HOURS = 24 * 3660


def _int_arg(name: str) -> int | None:
    return id_arg(request.args.get(name))


def diff_html(before: str | None, after: str) -> Markup | None:
    """A word-level diff of an edit, escaped, with <ins>/<del> marks."""
    if before is None or before == after:
        return None
    a, b = before.split(" "), after.split(" ")
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            out.append(f"<del>{escape(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{escape(' '.join(b[j1:j2]))}</ins>")
        if op == "equal":
            out.append(str(escape(" ".join(a[i1:i2]))))
    return Markup(" ".join(out))  # noqa: S704 - every piece above is escaped  # nosec B704


# The queue's page is kept this long at most: the change key covers every decision and
# submission, the lifetime what it does not (an author renamed, a reason template edited).
QUEUE_CACHE_DEFAULT_SECONDS = 30.0
_queue_pages = FragmentCache("moderation/queue.html", max_entries=256)


@bp.route("/queue")
@login_required
def queue() -> str:
    """The review queue. The page is rendered once per (queue change, filters, page,
    language, time zone, what the layout shows) and kept: reading the change key is one
    indexed query, rendering the page five queries and twenty items."""
    filters = service.QueueFilters(
        kind=request.args.get("kind") or None,
        organization_id=_int_arg("org"),
        reason=request.args.get("reason") or None,
        older_than_hours=min(MAX_AGE_HOURS, _int_arg("older_than") or 0) or None,
        newest_first=request.args.get("order") == "newest",
    )
    page, per_page = clamp_page_args(request.args.get("page", 1), request.args.get("per_page", 20))
    change = service.queue_change_key(db.session)
    seconds = cache_seconds("MODERATION_QUEUE_CACHE_SECONDS", QUEUE_CACHE_DEFAULT_SECONDS)
    key = None
    if seconds > 0:
        period = int(time.monotonic() // seconds)
        zone = str(get_timezone())
        key = (change, filters, page, per_page, str(get_locale()), zone, period)
    g.moderation_change_key = change  # the navigation's badge counts under the key just read
    return _queue_pages.render_page(key, lambda: _queue_values(filters, page, per_page, change))


def _queue_values(
    filters: service.QueueFilters, page: int, per_page: int, change: tuple[Any, ...]
) -> dict[str, Any]:
    items, history = service.queue_rows(db.session, current_user, filters, page, per_page, change)
    # Everything translated or formatted once per page, not once per item: a gettext or a
    # Babel date through Flask-Babel costs 20-90 µs, and the page shows 20 items.
    trust = _("trust level %(n)d")
    before = _("%(p)d published, %(r)d rejected before")
    when = _short_datetime()
    return {
        "items": items,
        "filters": filters,
        "bylines": {
            item.id: _byline(item, history.get(item.author_id or 0, {}), trust, before)
            for item in items.items
        },
        "times": {item.id: when(item.submitted_at) for item in items.items},
        "kinds": {name: str(kind.label) for name, kind in kinds().items()},
        "diffs": {i.id: diff_html(i.previous_source, i.source) for i in items.items},
        "organizations": db.session.execute(
            select(Organization.id, Organization.name).order_by(Organization.name)
        ).all(),
        "reason_templates": db.session.execute(
            select(ReasonTemplate.title, ReasonTemplate.text).order_by(ReasonTemplate.title)
        ).all(),
        "reasons": {code: str(label) for code, label in REASON_LABELS.items()},
        "items_url": url_for("moderation.approve", item_id=0).removesuffix("0/approve"),
    }


def _byline(item: Any, history: dict[str, int], trust: str, before: str) -> str | None:
    """Who wrote it, their trust level and their record: "Nora · Acme · trust level 0 · ..."."""
    if item.author_id is None:
        return None
    return " · ".join(
        [
            shown_name(item.author_name),
            item.author_organization or "",
            trust % {"n": item.author_trust_level},
            before % {"p": history.get("published", 0), "r": history.get("rejected", 0)},
        ]
    )


def _short_datetime() -> Any:
    """The ``datetime`` filter (``minute_text``) with the locale and time zone looked up once,
    and each minute formatted once."""
    locale, zone = get_locale(), get_timezone()
    done: dict[Any, str] = {}

    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        minute = value.replace(second=0, microsecond=0)
        text = done.get(minute)
        if text is None:
            text = done[minute] = minute_text(minute, locale, zone)
        return text

    return when


REASON_LABELS = {
    "new_user": _l("New user"),
    "watched_word": _l("Watched word"),
    "link_by_new_user": _l("Link by a new user"),
    "image_by_new_user": _l("Image by a new user"),
    "upload": _l("Upload"),
    "kb_candidate": _l("Knowledge-base candidate"),
    "flags": _l("Hidden by flags"),
}


def _back() -> Response:
    target = request.form.get("next", "")
    if target.startswith("/moderation/"):
        return redirect(target)
    return redirect(url_for("moderation.queue"))


def _decide(action: Any, success: str) -> Response:
    error = perform(action, success)
    if error is not None and request.accept_mimetypes.best == "application/json":
        abort(error.status_code)
    return _back()


@bp.route("/items/<int:item_id>/approve", methods=["POST"])
@login_required
def approve(item_id: int) -> Any:
    text = request.form.get("text")
    if text is None:
        return _decide(lambda: service.approve(db.session, current_user, item_id), _("Approved."))
    try:  # a refused edit shows the text again beside why; other refusals go through _decide
        service.checked_edit(db.session, item_id, text)
    except DomainError as error:
        if error.field is not None:
            return _edit_refused(item_id, text, error)
    return _decide(
        lambda: service.approve(db.session, current_user, item_id, new_text=text),
        _("Edited and approved."),
    )


# What the feature calls the field a refused edit broke: the queue shows one text box for
# "title, blank line, body", so the message says which part it is about.
EDIT_FIELD_LABELS = {
    "title": _l("Title"),
    "body": _l("Body"),
    "description": _l("Description"),
    "changelog": _l("Changelog"),
    "about": _l("About you"),
}


def _edit_refused(item_id: int, text: str, error: DomainError) -> tuple[str, int]:
    """The moderator's edit again, with why it was refused beside it (4xx): nothing was saved
    and the item still waits, so they can correct the text and send it once more."""
    item = db.session.get(ModerationItem, item_id)
    if item is None:
        abort(404)
    kind = kinds().get(item.kind)
    label = EDIT_FIELD_LABELS.get(error.field or "")
    message = _("%(field)s: %(message)s", field=label, message=error.message) if label else None
    target = request.form.get("next", "")
    return (
        render_template(
            "moderation/edit.html",
            item=item,
            kind=kind.label if kind is not None else item.kind,
            text=text,
            error=message or error.message,
            next=target if target.startswith("/moderation/") else url_for("moderation.queue"),
        ),
        error.status_code if error.status_code != 400 else 422,
    )


@bp.route("/items/<int:item_id>/reject", methods=["POST"])
@login_required
def reject(item_id: int) -> Response:
    reason = request.form.get("reason", "")
    return _decide(
        lambda: service.reject(db.session, current_user, item_id, reason), _("Rejected.")
    )


@bp.route("/items/<int:item_id>/restore", methods=["POST"])
@login_required
def restore(item_id: int) -> Response:
    return _decide(lambda: service.restore(db.session, current_user, item_id), _("Restored."))


@bp.route("/items/<int:item_id>/remove", methods=["POST"])
@login_required
def remove(item_id: int) -> Response:
    reason = request.form.get("reason", "")
    return _decide(lambda: service.remove(db.session, current_user, item_id, reason), _("Removed."))


@bp.route("/bulk", methods=["POST"])
@login_required
def bulk() -> Response:
    ids = [n for n in map(id_arg, request.form.getlist("ids")) if n]
    action = request.form.get("action")
    reason = request.form.get("reason", "")
    if not ids or action not in {"approve", "reject"}:
        flash(_("Select items and an action."), "warning")
        return _back()
    if action == "reject" and not reason.strip():
        flash(_("Give the author a reason."), "danger")
        return _back()
    done, conflicts = 0, []
    for item_id in ids:
        try:
            with db.session.begin_nested():
                if action == "approve":
                    service.approve(db.session, current_user, item_id)
                else:
                    service.reject(db.session, current_user, item_id, reason)
            done += 1
        except DomainError as error:
            conflicts.append(error.message)
    db.session.commit()
    flash(ngettext("%(num)d item decided.", "%(num)d items decided.", done), "success")
    for message in conflicts[:5]:
        flash(message, "warning")
    return _back()


# Open to every signed-in user, not only moderators.
FLAG_ENDPOINTS = frozenset({"moderation.flag", "moderation.flag_content"})


def _flagged(action: Any) -> Response:
    """Run a flag, say how it went (received, or why not), and go back to the page."""
    perform(action, _("Thank you. The moderators will look at it."), failure="warning")
    target = request.form.get("next", "")
    return redirect(target if is_safe_next(target) else url_for("main.home"))


@bp.route("/items/<int:item_id>/flag", methods=["POST"])
@login_required
def flag(item_id: int) -> Response:
    return _flagged(
        lambda: service.flag(
            db.session,
            current_user,
            item_id,
            request.form.get("reason", ""),
            request.form.get("note", ""),
        )
    )


@bp.route("/flags/<kind>/<int:object_id>", methods=["POST"])
@login_required
def flag_content(kind: str, object_id: int) -> Response:
    """The "Flag" control of every post (``macros/flag.html``): pages know a post's kind and
    id, not its moderation item; the service finds the item and checks who may flag it."""
    return _flagged(
        lambda: service.flag_content(
            db.session,
            current_user,
            kind,
            object_id,
            request.form.get("reason", ""),
            request.form.get("note", ""),
        )
    )


@bp.route("/words", methods=["GET", "POST"])
@login_required
def words() -> Any:
    status = 200
    typed: dict[str, str] = {}  # a refused entry comes back as it was typed
    if request.method == "POST":
        try:
            service.add_watched_word(
                db.session,
                current_user,
                request.form.get("pattern", ""),
                request.form.get("action", ""),
                request.form.get("replacement", ""),
                request.form.get("is_regex") == "1",
            )
            db.session.commit()
            flash(_("Added."), "success")
            return redirect(url_for("moderation.words"))
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "danger")
            status = error.status_code
            typed = request.form.to_dict()
    entries = db.session.scalars(select(WatchedWordEntry).order_by(WatchedWordEntry.pattern)).all()
    return render_template(
        "moderation/words.html", entries=entries, actions=ACTION_LABELS, typed=typed
    ), status


ACTION_LABELS = {
    WordAction.BLOCK: _l("Block"),
    WordAction.HOLD: _l("Hold for review"),
    WordAction.CENSOR: _l("Censor"),
    WordAction.REPLACE: _l("Replace"),
}


@bp.route("/words/<int:entry_id>/delete", methods=["POST"])
@login_required
def delete_word(entry_id: int) -> Response:
    service.remove_watched_word(db.session, current_user, entry_id)
    db.session.commit()
    flash(_("Removed."), "success")
    return redirect(url_for("moderation.words"))


__all__ = ["bp", "FlagReason", "ModerationItem"]


@bp.route("/stats")
@login_required
def stats() -> str:
    days = min(365, max(1, _int_arg("days") or 30))
    return render_template(
        "moderation/stats.html", stats=service.statistics(db.session, current_user, days), days=days
    )


RULE_FIELDS = ("new_user_hold_posts", "upload_auto_publish_level")
RULE_FLAGS = ("new_user_links_allowed", "new_user_images_allowed")
TRUST_FIELDS = {
    "1": ("minutes_since_sign_up", "days_visited", "items_read"),
    "2": ("days_visited", "items_read", "published_posts", "likes_given", "likes_received"),
}


def _bounded_int(name: str, low: int = 0, high: int = 100_000) -> int:
    raw = request.form.get(name, "").strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise DomainError(
            _("Enter a whole number from %(low)d to %(high)d.", low=low, high=high), field=name
        )
    return int(raw)


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings() -> Any:
    status = 200
    if request.method == "POST":
        try:
            values: dict[str, Any] = {name: _bounded_int(name) for name in RULE_FIELDS}
            values.update({name: request.form.get(name) == "1" for name in RULE_FLAGS})
            values["rate_limits"] = {
                str(level): [
                    _bounded_int(f"rate_{level}_minute"),
                    _bounded_int(f"rate_{level}_day"),
                ]
                for level in range(5)
            }
            trust_values = {
                level: {fact: _bounded_int(f"trust_{level}_{fact}") for fact in facts}
                for level, facts in TRUST_FIELDS.items()
            }
            service.save_rule_settings(db.session, current_user, values)
            service.save_trust_thresholds(db.session, current_user, trust_values)
            db.session.commit()
            flash(_("Settings saved."), "success")
            return redirect(url_for("moderation.settings"))
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "danger")
            status = error.status_code if error.status_code != 400 else 422
    return (
        render_template(
            "moderation/settings.html",
            rules=service.rule_settings(db.session),
            thresholds=service.trust_thresholds(db.session),
            trust_fields=TRUST_FIELDS,
            fact_labels=TRUST_FACT_LABELS,
            can_edit=service.is_vendor_admin(current_user),
        ),
        status,
    )


@bp.route("/users/<int:user_id>/trust", methods=["POST"])
@login_required
def lock_trust(user_id: int) -> Response:
    raw = request.form.get("level", "").strip()
    level = int(raw) if raw in {str(n) for n in range(5)} else None
    if raw and level is None:  # "unlock" sends no level; anything else must be a level
        flash(_("Choose a trust level from 0 to 4."), "danger")
    else:
        perform(
            lambda: service.lock_trust_level(db.session, current_user, user_id, level),
            _("Trust level locked.") if level is not None else _("Trust level unlocked."),
        )
    return redirect(url_for("accounts.public_profile", user_id=user_id))


def home_section(session: Session, viewer: User | None) -> str:
    """A moderator's home page opens on the queue: how many items wait and for how long
    (``portal.core.home``); nobody else sees it."""
    if not service.is_moderator(viewer):
        return ""
    waiting = service.queue_counts(session)
    g.moderation_queue_count = waiting  # the navigation's badge: counted once
    oldest = service.oldest_waiting(session) if waiting else None
    waited = round((utcnow() - oldest).total_seconds() / 60) if oldest else None
    return render_template("moderation/_home.html", waiting=waiting, waited_minutes=waited)
