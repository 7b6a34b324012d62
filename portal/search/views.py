"""Search pages: results, as-you-type suggestions, click recording, insights for staff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request, session
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from portal.core.db import db, utcnow
from portal.core.errors import DomainError
from portal.core.i18n import current_locale
from portal.core.pagination import clamp_page_args
from portal.core.permissions import Action, permission_required
from portal.core.sessions import SEEN_RESOLUTION, SIGNED_IN_AT, background
from portal.core.web import best_effort, id_arg
from portal.search import index, query, service
from portal.search.registry import sources

bp = Blueprint("search", __name__)

PER_PAGE = 10
SUGGEST_LIMIT = 8
PERIODS = (7, 30, 90)
RENDERED_PER_SEARCH = 8  # languages x ways of typing the same search, kept per result
RETRY_AFTER = 60  # seconds: a reindex of 100k documents takes about a minute
_KEY, _KEY_AT = "search_session", "search_session_at"


def search_session_key() -> str:
    """The visit's search-session key, kept in the Flask session for signed-in users (anonymous
    pages stay cookie-free, so their searches are logged without one). Background requests
    (suggestions, clicks) derive it without storing it (``sessions.background``): derived from
    what the cookie holds, it is the same for each of them and for the page that stores it."""
    if not current_user.is_authenticated:
        return ""
    now = utcnow().timestamp()
    key = session.get(_KEY)
    last = float(session.get(_KEY_AT, 0))
    if not key or now - last > service.VISIT_IDLE.total_seconds():
        key = service.visit_key(
            current_app.config["SECRET_KEY"], current_user.id, session.get(SIGNED_IN_AT), last
        )
        session[_KEY] = key
        session[_KEY_AT] = now
    elif now - last >= SEEN_RESOLUTION:
        # At most once a minute, as the sign-in's last-seen time: fewer cookies to send.
        session[_KEY_AT] = now
    return key


def _viewer() -> Any:
    return current_user if current_user.is_authenticated else None


@bp.route("/search")
def results() -> Any:
    text = request.args.get("q", "")
    page, _ = clamp_page_args(request.args.get("page", 1), PER_PAGE)
    picked = query.Filters(
        kinds=[k for k in request.args.getlist("kind") if k in sources()],
        tags=[t.lower() for t in request.args.getlist("tag") if t.strip()][:5],
    )
    found = query.search(db.session, _viewer(), text, page, PER_PAGE, picked)
    log_id = None
    if (text.strip() or picked.kinds or picked.tags) and page == 1:
        log_id = best_effort(
            lambda: service.log_search(
                db.session, _viewer(), search_session_key(), "page", text, found.total
            ),
            "search log",
        )
    body = render_template(
        "search/results.html",
        q=text,
        found=found,
        picked=picked,
        log_id=log_id,
        section=_results_section(text, found, picked),
    )
    if found.unavailable:
        # The whole page with its message, as 503: monitoring sees the outage, crawlers
        # keep the old page, and the Retry-After says when to look again.
        return body, 503, {"Retry-After": str(RETRY_AFTER)}
    return body


def _results_section(text: str, found: query.SearchResults, picked: query.Filters) -> Markup:
    """The results, facets and pager, rendered once per language and query as typed for as
    long as the index is unchanged (``found.rendered`` is remembered with the results)."""
    if not (text or picked.kinds or picked.tags):
        return Markup()
    slot = (current_locale(), text, tuple(picked.kinds), tuple(picked.tags))
    section = found.rendered.get(slot)
    if section is None:
        labels = {kind: source.label for kind, source in sources().items()}
        section = Markup(  # noqa: S704 - a rendered template, autoescaped  # nosec B704
            render_template(
                "search/_results.html",
                q=text,
                found=found,
                labels=labels,
                picked=picked,
                facet_sample=query.FACET_SAMPLE,
            )
        )
        if len(found.rendered) >= RENDERED_PER_SEARCH:
            found.rendered.clear()
        found.rendered[slot] = section
    return section


@bp.route("/search/suggest")
@background
def suggest() -> Response:
    text = request.args.get("q", "")[:200]
    source = "ask" if request.args.get("source") == "ask" else "suggest"
    kinds = [k for k in request.args.getlist("kind") if k in sources()]
    try:
        found = query.suggest(_viewer(), text, SUGGEST_LIMIT, kinds=kinds, strict=True)
    except index.IndexUnavailable:
        response = jsonify(
            {"query": text, "log_id": None, "results": [], "message": str(query.REBUILDING)}
        )
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response
    log_id = None
    key = search_session_key()
    if key and len(text.strip()) >= 2:
        log_id = best_effort(
            lambda: service.log_search(db.session, _viewer(), key, source, text, len(found)),
            "search log",
        )
    return jsonify(
        {
            "query": text,
            "log_id": log_id,
            "results": [
                {"kind": s.kind, "id": s.id, "title": s.title, "url": s.url} for s in found
            ],
        }
    )


@bp.route("/search/click", methods=["POST"])
@background
def click() -> Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise DomainError(_("Send JSON with log_id, kind and id."))
    numbers = {}
    for name in ("log_id", "id"):
        value = data.get(name)
        number = (
            None if isinstance(value, bool) or not isinstance(value, int | str) else id_arg(value)
        )
        if number is None:
            raise DomainError(_("Send a number."), field=name)
        numbers[name] = number
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise DomainError(_("Send a kind."), field="kind")
    # The visit's key as suggestions derive it (they never store it), or the one a search
    # page stored: a click on either's results counts.
    keys = (search_session_key(), session.get(_KEY, "")) if current_user.is_authenticated else ()
    service.record_click(
        db.session,
        _viewer(),
        keys,
        numbers["log_id"],
        kind,
        numbers["id"],
    )
    db.session.commit()
    return Response(status=204)


@bp.route("/search/insights")
@permission_required(Action.VIEW_SEARCH_INSIGHTS)
def insights() -> Any:
    try:
        days = int(request.args.get("days", 30))
    except ValueError:
        days = 30
    if days not in PERIODS:
        days = 30
    report = service.insights(db.session, utcnow() - timedelta(days=days))
    return render_template("search/insights.html", report=report, days=days, periods=PERIODS)
