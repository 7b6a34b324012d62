"""Q&A endpoints on the one API blueprint (imported by ``feature.init_app`` before it is
registered). Thin: load, call the service, commit, dump."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from portal.core.api import api_user, bp, endpoint, json_body, load, page_out
from portal.core.db import db
from portal.qa import schemas, service

ID = {"question_id": "integer"}


def _detail(question_id: int) -> dict[str, Any]:
    view = service.question_view(db.session, api_user(), question_id)
    data = schemas.QuestionDetailOut().dump(view.question)
    data["answers"] = schemas.AnswerOut(many=True).dump(view.answers)
    return data


@bp.route("/questions")
@endpoint(
    "/questions",
    "get",
    "Questions you can see: newest, active, votes or unanswered; filter by tag, area, status",
    schemas.QuestionPageOut,
    query=schemas.QuestionListIn,
    errors=(401,),
)
def list_questions() -> Response:
    args = load(schemas.QuestionListIn, request.args.to_dict())
    filters = service.ListFilters(
        sort=args["sort"],
        tag=(args.get("tag") or "").lower() or None,
        product_area=args.get("area"),
        status=args.get("status"),
    )
    page = service.list_questions(db.session, api_user(), filters, args["page"], args["per_page"])
    return jsonify(schemas.QuestionPageOut().dump(page_out(page)))


@bp.route("/questions", methods=["POST"])
@endpoint(
    "/questions",
    "post",
    "Ask a question (published at once or held for review: see `published`)",
    schemas.QuestionDetailOut,
    body=schemas.QuestionIn,
    scope="write",
    errors=(400, 401, 403),
    status=201,
)
def ask() -> Response:
    data = load(schemas.QuestionIn, json_body())
    question = service.ask(
        db.session,
        api_user(),
        data["title"],
        data["body"],
        data["tags"],
        data["product_area"],
        data["private"],
    )
    db.session.commit()
    response = jsonify(_detail(question.id))
    response.status_code = 201
    return response


@bp.route("/questions/<int:question_id>")
@endpoint(
    "/questions/{question_id}",
    "get",
    "A question with its answers (accepted first, then by score)",
    schemas.QuestionDetailOut,
    path_params=ID,
)
def question(question_id: int) -> Response:
    return jsonify(_detail(question_id))


@bp.route("/questions/<int:question_id>/answers", methods=["POST"])
@endpoint(
    "/questions/{question_id}/answers",
    "post",
    "Answer a question (409 when it is closed)",
    schemas.AnswerOut,
    body=schemas.AnswerIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 409),
    status=201,
)
def post_answer(question_id: int) -> Response:
    data = load(schemas.AnswerIn, json_body())
    reply = service.answer(db.session, api_user(), question_id, data["body"])
    db.session.commit()
    response = jsonify(schemas.AnswerOut().dump(reply))
    response.status_code = 201
    return response


@bp.route("/questions/<int:question_id>/vote", methods=["POST"])
@endpoint(
    "/questions/{question_id}/vote",
    "post",
    "Vote on a question: 1 up, -1 down, 0 retract (the same vote again retracts)",
    schemas.VoteOut,
    body=schemas.VoteIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 409),
)
def vote_question(question_id: int) -> Response:
    data = load(schemas.VoteIn, json_body())
    result = service.vote(db.session, api_user(), data["value"], question_id=question_id)
    db.session.commit()
    return jsonify(schemas.VoteOut().dump(result))


@bp.route("/answers/<int:answer_id>/vote", methods=["POST"])
@endpoint(
    "/answers/{answer_id}/vote",
    "post",
    "Vote on an answer: 1 up, -1 down, 0 retract",
    schemas.VoteOut,
    body=schemas.VoteIn,
    scope="write",
    path_params={"answer_id": "integer"},
    errors=(400, 401, 403, 404, 409),
)
def vote_answer(answer_id: int) -> Response:
    data = load(schemas.VoteIn, json_body())
    result = service.vote(db.session, api_user(), data["value"], answer_id=answer_id)
    db.session.commit()
    return jsonify(schemas.VoteOut().dump(result))


@bp.route("/questions/<int:question_id>/accept", methods=["POST"])
@endpoint(
    "/questions/{question_id}/accept",
    "post",
    "Accept an answer, or un-accept with null (asker or moderator)",
    schemas.QuestionDetailOut,
    body=schemas.AcceptIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404),
)
def accept(question_id: int) -> Response:
    data = load(schemas.AcceptIn, json_body())
    service.accept(db.session, api_user(), question_id, data["answer_id"])
    db.session.commit()
    return jsonify(_detail(question_id))
