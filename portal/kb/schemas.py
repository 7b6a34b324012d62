"""API shapes for the knowledge base (In/Out pairs)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.core.api import Id, PageIn, PageMeta, StrictSchema
from portal.core.html import MAX_MARKDOWN_CHARS
from portal.kb.service import LANGUAGES


class CategoryOut(Schema):
    id = fields.Int(required=True)
    slug = fields.Str(required=True)
    name = fields.Str(required=True)
    name_zh = fields.Str(required=True)


class ArticleSummaryOut(Schema):
    id = fields.Int(required=True)
    title = fields.Str(required=True)
    language = fields.Str(required=True)
    category = fields.Nested(CategoryOut, allow_none=True)
    tags = fields.Function(lambda a: a.tags.split() if a.tags else [], dump_only=True)
    published = fields.Bool(required=True)
    version = fields.Int(required=True)
    helpful_yes = fields.Int(required=True)
    helpful_no = fields.Int(required=True)
    source_answer_id = fields.Int(allow_none=True)
    url = fields.Function(lambda a: f"/kb/articles/{a.id}", dump_only=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ArticleOut(ArticleSummaryOut):
    body_source = fields.Str(required=True)
    body_html = fields.Str(required=True)


class ArticlePageOut(Schema):
    items = fields.List(fields.Nested(ArticleSummaryOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class ArticleListIn(PageIn):
    category = fields.Str(validate=validate.Length(min=1, max=64))  # the category's slug
    language = fields.Str(validate=validate.OneOf(LANGUAGES))


class ArticleIn(StrictSchema):
    title = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    body = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_MARKDOWN_CHARS))
    language = fields.Str(required=True, validate=validate.OneOf(LANGUAGES))
    category_id = Id(allow_none=True, load_default=None)
    tags = fields.List(fields.Str(validate=validate.Length(min=1, max=40)), load_default=list)
    published = fields.Bool(load_default=True)


class ArticlePatchIn(StrictSchema):
    title = fields.Str(validate=validate.Length(min=1, max=200))
    body = fields.Str(validate=validate.Length(min=1, max=MAX_MARKDOWN_CHARS))
    language = fields.Str(validate=validate.OneOf(LANGUAGES))
    category_id = Id(allow_none=True)
    tags = fields.List(fields.Str(validate=validate.Length(min=1, max=40)))
    published = fields.Bool()


class FeedbackIn(StrictSchema):
    helpful = fields.Bool(required=True)
    comment = fields.Str(load_default="", validate=validate.Length(max=2000))


class FeedbackOut(Schema):
    article_id = fields.Int(required=True)
    helpful = fields.Bool(required=True)
    comment = fields.Str(allow_none=True)
    helpful_yes = fields.Int(required=True)
    helpful_no = fields.Int(required=True)
