"""/api/v1/kb: read articles; staff write them with write tokens; readers give feedback.

Imported by ``feature.init_app`` so these routes join the API blueprint before it is
registered."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.wrappers import Response

from portal.core.api import api_user, bp, endpoint, json_body, load, page_out
from portal.core.db import db
from portal.core.pagination import paginate
from portal.kb import schemas, service


@bp.route("/kb/articles")
@endpoint(
    "/kb/articles",
    "get",
    "Published knowledge-base articles, newest change first",
    schemas.ArticlePageOut,
    query=schemas.ArticleListIn,
    errors=(401, 404),
)
def kb_articles() -> Response:
    args = load(schemas.ArticleListIn, request.args.to_dict())
    category_id = None
    if "category" in args:
        category_id = service.category_by_slug(db.session, args["category"]).id
    statement = service.published_articles(category_id, args.get("language"))
    page = paginate(db.session, statement, args["page"], args["per_page"])
    return jsonify(schemas.ArticlePageOut().dump(page_out(page)))


@bp.route("/kb/articles/<int:article_id>")
@endpoint(
    "/kb/articles/{article_id}",
    "get",
    "One article (drafts: staff only)",
    schemas.ArticleOut,
    path_params={"article_id": "integer"},
)
def kb_article(article_id: int) -> Response:
    article = service.get_article(db.session, api_user(), article_id)
    return jsonify(schemas.ArticleOut().dump(article))


@bp.route("/kb/articles", methods=["POST"])
@endpoint(
    "/kb/articles",
    "post",
    "Write an article (staff)",
    schemas.ArticleOut,
    body=schemas.ArticleIn,
    scope="write",
    errors=(400, 401, 403),
    status=201,
)
def kb_create_article() -> tuple[Response, int]:
    data = load(schemas.ArticleIn, json_body())
    article = service.create_article(db.session, api_user(), **data)
    db.session.commit()
    return jsonify(schemas.ArticleOut().dump(article)), 201


@bp.route("/kb/articles/<int:article_id>", methods=["PATCH"])
@endpoint(
    "/kb/articles/{article_id}",
    "patch",
    "Change an article, saving a new version (staff)",
    schemas.ArticleOut,
    body=schemas.ArticlePatchIn,
    scope="write",
    path_params={"article_id": "integer"},
    errors=(400, 401, 403, 404),
)
def kb_update_article(article_id: int) -> Response:
    data = load(schemas.ArticlePatchIn, json_body())
    article = service.update_article(db.session, api_user(), article_id, **data)
    db.session.commit()
    return jsonify(schemas.ArticleOut().dump(article))


@bp.route("/kb/articles/<int:article_id>/feedback", methods=["POST"])
@endpoint(
    "/kb/articles/{article_id}/feedback",
    "post",
    "Say whether an article helped (once per user; sending again changes it)",
    schemas.FeedbackOut,
    body=schemas.FeedbackIn,
    scope="write",
    path_params={"article_id": "integer"},
    errors=(400, 401, 403, 404),
)
def kb_feedback(article_id: int) -> Response:
    data = load(schemas.FeedbackIn, json_body())
    feedback = service.give_feedback(
        db.session, api_user(), article_id, data["helpful"], data["comment"]
    )
    db.session.commit()
    article = service.get_article(db.session, api_user(), article_id)
    return jsonify(
        schemas.FeedbackOut().dump(
            {
                "article_id": article.id,
                "helpful": feedback.helpful,
                "comment": feedback.comment,
                "helpful_yes": article.helpful_yes,
                "helpful_no": article.helpful_no,
            }
        )
    )
