"""Roadmap endpoints on the one API blueprint (imported by ``feature.init_app`` before it is
registered). Thin: load, call the service, commit, dump."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from portal.core.api import api_user, bp, endpoint, json_body, load, page_out
from portal.core.db import db
from portal.roadmap import schemas, service

ID = {"idea_id": "integer"}


def _detail(idea_id: int) -> dict[str, Any]:
    view = service.idea_view(db.session, api_user(), idea_id)
    data = schemas.IdeaDetailOut().dump(view.idea)
    data["my_importance"] = view.my_vote.importance if view.my_vote else None
    data["history"] = schemas.RoadmapStatusChangeOut(many=True).dump(view.history)
    data["comments"] = schemas.RoadmapCommentOut(many=True).dump(view.comments)
    return data


def _created(data: dict[str, Any]) -> Response:
    response = jsonify(data)
    response.status_code = 201
    return response


@bp.route("/ideas")
@endpoint(
    "/ideas",
    "get",
    "Roadmap ideas: top, trending, new or mine; filter by status, area, tag",
    schemas.IdeaPageOut,
    query=schemas.IdeaListIn,
    errors=(401, 422),
)
def list_ideas() -> Response:
    args = load(schemas.IdeaListIn, request.args.to_dict())
    filters = service.BoardFilters(
        sort=args["sort"],
        status=args.get("status"),
        product_area=args.get("area"),
        tag=(args.get("tag") or "").lower() or None,
    )
    page = service.board(db.session, api_user(), filters, args["page"], args["per_page"])
    return jsonify(schemas.IdeaPageOut().dump(page_out(page)))


@bp.route("/ideas", methods=["POST"])
@endpoint(
    "/ideas",
    "post",
    "Suggest an idea (published at once or held for review: see `published`)",
    schemas.IdeaDetailOut,
    body=schemas.IdeaIn,
    scope="write",
    errors=(400, 401, 403, 422),
    status=201,
)
def create_idea() -> Response:
    data = load(schemas.IdeaIn, json_body())
    idea = service.submit_idea(
        db.session,
        api_user(),
        data["title"],
        data["description"],
        data["product_area"],
        data["tags"],
    )
    db.session.commit()
    return _created(_detail(idea.id))


@bp.route("/ideas/<int:idea_id>")
@endpoint(
    "/ideas/{idea_id}",
    "get",
    "An idea with its status history and comments",
    schemas.IdeaDetailOut,
    path_params=ID,
    errors=(401, 404),
)
def get_idea(idea_id: int) -> Response:
    return jsonify(_detail(idea_id))


@bp.route("/ideas/<int:idea_id>/vote", methods=["POST"])
@endpoint(
    "/ideas/{idea_id}/vote",
    "post",
    "Vote with an importance (1 nice to have, 2 important, 3 critical); idempotent. "
    "Staff may vote on behalf of a customer contact. A merged idea's vote lands on its target",
    schemas.RoadmapVoteOut,
    body=schemas.RoadmapVoteIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 409, 422),
)
def vote(idea_id: int) -> Response:
    data = load(schemas.RoadmapVoteIn, json_body())
    result = service.vote(
        db.session, api_user(), idea_id, data["importance"], on_behalf_of=data["on_behalf_of"]
    )
    db.session.commit()
    return jsonify(schemas.RoadmapVoteOut().dump(result))


@bp.route("/ideas/<int:idea_id>/vote", methods=["DELETE"])
@endpoint(
    "/ideas/{idea_id}/vote",
    "delete",
    "Remove your vote (idempotent)",
    schemas.RoadmapVoteOut,
    scope="write",
    path_params=ID,
    errors=(401, 403, 404),
)
def unvote(idea_id: int) -> Response:
    result = service.unvote(db.session, api_user(), idea_id)
    db.session.commit()
    return jsonify(schemas.RoadmapVoteOut().dump(result))


@bp.route("/ideas/<int:idea_id>/comments", methods=["POST"])
@endpoint(
    "/ideas/{idea_id}/comments",
    "post",
    "Comment on an idea (moderated)",
    schemas.RoadmapCommentOut,
    body=schemas.RoadmapCommentIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 422),
    status=201,
)
def comment(idea_id: int) -> Response:
    data = load(schemas.RoadmapCommentIn, json_body())
    note = service.comment(db.session, api_user(), idea_id, data["body"])
    db.session.commit()
    return _created(schemas.RoadmapCommentOut().dump(note))


@bp.route("/ideas/<int:idea_id>/status", methods=["POST"])
@endpoint(
    "/ideas/{idea_id}/status",
    "post",
    "Change an idea's status with a public response (product managers, vendor admins)",
    schemas.IdeaDetailOut,
    body=schemas.RoadmapStatusIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 409, 422),
)
def change_status(idea_id: int) -> Response:
    data = load(schemas.RoadmapStatusIn, json_body())
    service.change_status(
        db.session, api_user(), idea_id, data["status"], data["response"], data["release_notes"]
    )
    db.session.commit()
    return jsonify(_detail(idea_id))


@bp.route("/ideas/<int:idea_id>/merge", methods=["POST"])
@endpoint(
    "/ideas/{idea_id}/merge",
    "post",
    "Merge this idea into another (staff); votes move without counting anyone twice",
    schemas.IdeaDetailOut,
    body=schemas.RoadmapMergeIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 409, 422),
)
def merge(idea_id: int) -> Response:
    data = load(schemas.RoadmapMergeIn, json_body())
    record = service.merge(db.session, api_user(), idea_id, data["target_id"])
    db.session.commit()
    return jsonify(_detail(record.target_id))


@bp.route("/ideas/<int:idea_id>/unmerge", methods=["POST"])
@endpoint(
    "/ideas/{idea_id}/unmerge",
    "post",
    "Undo this idea's merge, restoring exactly what was there (staff)",
    schemas.IdeaDetailOut,
    scope="write",
    path_params=ID,
    errors=(401, 403, 404, 409),
)
def unmerge(idea_id: int) -> Response:
    service.unmerge(db.session, api_user(), idea_id)
    db.session.commit()
    return jsonify(_detail(idea_id))
