"""marshmallow shapes of the search API (request and response, also the OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.core.api import PageMeta, StrictSchema


class SearchIn(StrictSchema):
    q = fields.Str(load_default="", validate=validate.Length(max=10_000))
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=50))
    per_page = fields.Int(load_default=10, validate=validate.Range(min=1, max=100))
    kind = fields.Str(validate=validate.Length(min=1, max=40))
    tag = fields.Str(validate=validate.Length(min=1, max=80))


class SearchHitOut(Schema):
    kind = fields.Str(required=True)
    id = fields.Int(required=True)
    title = fields.Str(required=True)
    url = fields.Str(required=True)
    snippet_html = fields.Str(required=True, metadata={"description": "escaped text with <mark>"})
    tags = fields.List(fields.Str(), required=True)


class FacetOut(Schema):
    value = fields.Str(required=True)
    count = fields.Int(required=True)


class SearchOut(Schema):
    query = fields.Str(required=True)
    items = fields.List(fields.Nested(SearchHitOut), required=True)
    meta = fields.Nested(PageMeta, required=True)
    kinds = fields.List(fields.Nested(FacetOut), required=True)
    tags = fields.List(fields.Nested(FacetOut), required=True)
    suggestion = fields.Str(allow_none=True, required=True)
    any_word = fields.Bool(required=True, metadata={"description": "AND found nothing: OR"})
    message = fields.Str(allow_none=True, required=True)
