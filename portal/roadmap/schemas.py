"""Roadmap API shapes: In schemas validate requests (422 naming the field), Out schemas dump."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.core.api import Id, PageIn, PageMeta, StrictSchema
from portal.roadmap.service import (
    IMPORTANCE_LABELS,
    MAX_BODY,
    MAX_COMMENT,
    MAX_RESPONSE,
    MAX_TAGS,
    PRODUCT_AREAS,
    SORTS,
    STATUSES,
    TITLE_MAX,
    TITLE_MIN,
)


class IdeaListIn(PageIn):
    sort = fields.Str(load_default="top", validate=validate.OneOf(SORTS))
    status = fields.Str(validate=validate.OneOf([str(s) for s in STATUSES]))
    area = fields.Str(validate=validate.OneOf(list(PRODUCT_AREAS)))
    tag = fields.Str(validate=validate.Length(min=1, max=40))


class IdeaIn(StrictSchema):
    title = fields.Str(required=True, validate=validate.Length(min=TITLE_MIN, max=TITLE_MAX))
    description = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_BODY))
    product_area = fields.Str(
        load_default=None, allow_none=True, validate=validate.OneOf(list(PRODUCT_AREAS))
    )
    tags = fields.List(
        fields.Str(validate=validate.Length(min=1, max=40)),
        load_default=list,
        validate=validate.Length(max=MAX_TAGS),
    )


class RoadmapVoteIn(StrictSchema):
    importance = fields.Int(
        load_default=2, strict=True, validate=validate.OneOf(list(IMPORTANCE_LABELS))
    )
    on_behalf_of = Id(load_default=None, allow_none=True, strict=True)


class RoadmapCommentIn(StrictSchema):
    body = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_COMMENT))


class RoadmapStatusIn(StrictSchema):
    status = fields.Str(required=True, validate=validate.OneOf([str(s) for s in STATUSES]))
    response = fields.Str(load_default="", validate=validate.Length(max=MAX_RESPONSE))
    release_notes = fields.Str(
        load_default=None, allow_none=True, validate=validate.Length(max=MAX_BODY)
    )


class RoadmapMergeIn(StrictSchema):
    target_id = Id(required=True, strict=True)


class IdeaOut(Schema):
    id = fields.Int(required=True)
    title = fields.Str(required=True)
    status = fields.Str(required=True)
    product_area = fields.Str(allow_none=True)
    tags = fields.Function(
        lambda i: list(i.tags) if i.tags and isinstance(i.tags[0], str) else i.tag_names,
        dump_only=True,
    )
    vote_count = fields.Int(required=True)
    comment_count = fields.Int(required=True)
    created_at = fields.DateTime(required=True)
    url = fields.Function(lambda i: f"/roadmap/ideas/{i.id}", dump_only=True)


class IdeaPageOut(Schema):
    items = fields.List(fields.Nested(IdeaOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class RoadmapStatusChangeOut(Schema):
    from_status = fields.Str(allow_none=True)
    to_status = fields.Str(required=True)
    response_html = fields.Str(required=True)
    created_at = fields.DateTime(required=True)


class RoadmapCommentOut(Schema):
    id = fields.Int(required=True)
    idea_id = fields.Int(required=True)
    body_html = fields.Str(required=True)
    published = fields.Bool(required=True)
    created_at = fields.DateTime(required=True)


class IdeaDetailOut(IdeaOut):
    description_html = fields.Str(required=True)
    published = fields.Bool(required=True)
    merged_into_id = fields.Int(allow_none=True)
    release_notes_html = fields.Str(allow_none=True)
    shipped_at = fields.DateTime(allow_none=True)
    my_importance = fields.Int(allow_none=True)
    history = fields.List(fields.Nested(RoadmapStatusChangeOut))
    comments = fields.List(fields.Nested(RoadmapCommentOut))


class RoadmapVoteOut(Schema):
    idea_id = fields.Int(required=True)
    voted = fields.Bool(required=True)
    changed = fields.Bool(required=True)
    vote_count = fields.Int(required=True)
    message = fields.Str(required=True)
