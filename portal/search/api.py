"""``GET /api/v1/search``: routes added to the API blueprint at import (see feature.py)."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.wrappers import Response

from portal.core.api import api_user, bp, endpoint, load
from portal.core.db import db
from portal.core.errors import DomainError, Unavailable
from portal.search import query, service
from portal.search.registry import sources
from portal.search.schemas import SearchIn, SearchOut


@bp.route("/search")
@endpoint(
    "/search",
    "get",
    "Search what you may see: questions, answers, articles (AND of the words, OR fallback)",
    SearchOut,
    query=SearchIn,
    errors=(400, 401, 503),
)
def search() -> Response:
    args = load(SearchIn, request.args.to_dict())
    kind = args.get("kind")
    if kind is not None and kind not in sources():
        raise DomainError(f"Unknown kind; one of: {', '.join(sorted(sources()))}.", field="kind")
    user = api_user()
    filters = query.Filters(
        kinds=[kind] if kind else [], tags=[args["tag"].lower()] if args.get("tag") else []
    )
    found = query.search(db.session, user, args["q"], args["page"], args["per_page"], filters)
    if found.unavailable:
        raise Unavailable(found.message)
    if args["q"].strip() and args["page"] == 1:
        service.log_search(db.session, user, "", "api", args["q"], found.total)
        db.session.commit()
    body = {
        "query": found.query,
        "items": [
            {
                "kind": h.kind,
                "id": h.id,
                "title": h.title,
                "url": h.url,
                "snippet_html": str(h.snippet),
                "tags": h.tags,
            }
            for h in found.hits
        ],
        "meta": {
            "page": found.page,
            "per_page": found.per_page,
            "total": found.total,
            "pages": found.pages,
        },
        "kinds": [{"value": k, "count": n} for k, n in found.kind_counts.items()],
        "tags": [{"value": t, "count": n} for t, n in found.tag_counts],
        "suggestion": found.suggestion,
        "any_word": found.any_word,
        "message": found.message,
    }
    return jsonify(SearchOut().dump(body))
