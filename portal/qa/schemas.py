"""Q&A API shapes: In schemas validate requests (422 naming the field), Out schemas dump."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.core.api import Id, PageIn, PageMeta, StrictSchema
from portal.qa.service import (
    MAX_BODY,
    MAX_TAGS,
    PRODUCT_AREAS,
    SORTS,
    STATUSES,
    TITLE_MAX,
    TITLE_MIN,
)


class QuestionListIn(PageIn):
    sort = fields.Str(load_default="newest", validate=validate.OneOf(SORTS))
    tag = fields.Str(validate=validate.Length(min=1, max=40))
    area = fields.Str(validate=validate.OneOf(list(PRODUCT_AREAS)))
    status = fields.Str(validate=validate.OneOf(STATUSES))


class QuestionIn(StrictSchema):
    title = fields.Str(required=True, validate=validate.Length(min=TITLE_MIN, max=TITLE_MAX))
    body = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_BODY))
    tags = fields.List(
        fields.Str(validate=validate.Length(min=1, max=40)),
        load_default=list,
        validate=validate.Length(max=MAX_TAGS),
    )
    product_area = fields.Str(
        load_default=None, allow_none=True, validate=validate.OneOf(list(PRODUCT_AREAS))
    )
    private = fields.Bool(load_default=False)


class AnswerIn(StrictSchema):
    body = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_BODY))


class VoteIn(StrictSchema):
    value = fields.Int(required=True, strict=True, validate=validate.OneOf([-1, 0, 1]))


class AcceptIn(StrictSchema):
    answer_id = Id(required=True, allow_none=True, strict=True)


class AuthorOut(Schema):
    id = fields.Int(required=True)
    display_name = fields.Str(required=True)
    organization = fields.Method("get_organization", dump_only=True)

    def get_organization(self, user: object) -> str:
        name = getattr(user, "organization_name", None)
        return name if name is not None else user.organization.name  # type: ignore[attr-defined]


class AnswerOut(Schema):
    id = fields.Int(required=True)
    question_id = fields.Int(required=True)
    body_html = fields.Str(required=True)
    published = fields.Bool(required=True)
    score = fields.Int(required=True)
    helpful_count = fields.Int(required=True)
    author = fields.Nested(AuthorOut, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class QuestionOut(Schema):
    id = fields.Int(required=True)
    title = fields.Str(required=True)
    tags = fields.Function(
        lambda q: [t if isinstance(t, str) else t.name for t in q.tags], dump_only=True
    )
    product_area = fields.Str(allow_none=True)
    private = fields.Bool(attribute="is_private", required=True)
    published = fields.Bool(required=True)
    status = fields.Str(required=True)
    score = fields.Int(required=True)
    answer_count = fields.Int(required=True)
    view_count = fields.Int(required=True)
    accepted_answer_id = fields.Int(allow_none=True)
    duplicate_of_id = fields.Int(allow_none=True)
    author = fields.Nested(AuthorOut, allow_none=True)
    url = fields.Function(lambda q: f"/questions/{q.id}", dump_only=True)
    created_at = fields.DateTime(required=True)
    last_activity_at = fields.DateTime(required=True)


class QuestionDetailOut(QuestionOut):
    body_html = fields.Str(required=True)
    close_reason = fields.Str(allow_none=True)
    answers = fields.List(fields.Nested(AnswerOut), required=True)


class QuestionPageOut(Schema):
    items = fields.List(fields.Nested(QuestionOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class VoteOut(Schema):
    value = fields.Int(required=True)
    score = fields.Int(required=True)
