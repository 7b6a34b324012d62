"""Gallery API shapes: In schemas validate requests (422 naming the field), Out schemas dump."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.core.api import PageIn, PageMeta, StrictSchema
from portal.gallery.service import (
    CATEGORIES,
    INDUSTRIES,
    LICENSES,
    MAX_CHANGELOG,
    MAX_DESCRIPTION,
    SORTS,
    TITLE_MAX,
    TITLE_MIN,
    VISIBILITIES,
)


class TemplateListIn(PageIn):
    sort = fields.Str(load_default="popular", validate=validate.OneOf(SORTS))
    category = fields.Str(validate=validate.OneOf(list(CATEGORIES)))
    industry = fields.Str(validate=validate.OneOf(list(INDUSTRIES)))
    tag = fields.Str(validate=validate.Length(min=1, max=40))
    compatible = fields.Bool(load_default=False)


class VersionUploadIn(StrictSchema):
    """Multipart form fields beside ``file`` (the template file itself)."""

    file = fields.Raw(
        required=True, metadata={"type": "string", "format": "binary"}, load_only=True
    )
    version = fields.Str(load_default=None, validate=validate.Length(max=60))
    changelog = fields.Str(required=True, validate=validate.Length(min=1, max=MAX_CHANGELOG))
    product_range = fields.Str(load_default=None, validate=validate.Length(max=100))


class TemplateUploadIn(StrictSchema):
    file = fields.Raw(
        required=True, metadata={"type": "string", "format": "binary"}, load_only=True
    )
    title = fields.Str(required=True, validate=validate.Length(min=TITLE_MIN, max=TITLE_MAX))
    description = fields.Str(load_default="", validate=validate.Length(max=MAX_DESCRIPTION))
    category = fields.Str(load_default="report", validate=validate.OneOf(list(CATEGORIES)))
    industry = fields.Str(load_default="general", validate=validate.OneOf(list(INDUSTRIES)))
    tags = fields.Str(load_default="", validate=validate.Length(max=400))
    license = fields.Str(load_default=LICENSES[0], validate=validate.OneOf(LICENSES))
    visibility = fields.Str(load_default="public", validate=validate.OneOf(list(VISIBILITIES)))
    version = fields.Str(load_default=None, validate=validate.Length(max=60))
    changelog = fields.Str(load_default="", validate=validate.Length(max=MAX_CHANGELOG))
    product_range = fields.Str(load_default=None, validate=validate.Length(max=100))


class RateIn(StrictSchema):
    stars = fields.Int(required=True, strict=True, validate=validate.Range(min=1, max=5))


class VersionOut(Schema):
    id = fields.Int(required=True)
    version = fields.Str(required=True)
    changelog_html = fields.Str(required=True)
    product_range = fields.Str(allow_none=True)
    manifest = fields.Dict(required=True)
    file_name = fields.Str(required=True)
    file_kind = fields.Str(required=True)
    file_size = fields.Int(required=True)
    file_sha256 = fields.Str(required=True)
    published = fields.Bool(required=True)
    created_at = fields.DateTime(required=True)
    download_url = fields.Function(
        lambda v: f"/api/v1/templates/{v.template_id}/download?version={v.id}", dump_only=True
    )


class TemplateOut(Schema):
    id = fields.Int(required=True)
    title = fields.Str(required=True)
    category = fields.Str(required=True)
    industry = fields.Str(allow_none=True)
    tags = fields.List(fields.Str(), required=True)
    license = fields.Str(required=True)
    visibility = fields.Str(required=True)
    organization = fields.Function(lambda t: t.organization.name, dump_only=True)
    latest_version = fields.Str(allow_none=True)
    product_range = fields.Str(allow_none=True)
    published = fields.Bool(attribute="listed", required=True)
    rating_count = fields.Int(required=True)
    rating_average = fields.Function(
        lambda t: round(t.rating_sum / t.rating_count, 2) if t.rating_count else None,
        dump_only=True,
    )
    score = fields.Float(attribute="bayes_score", required=True)
    download_count = fields.Int(required=True)
    organizations_using = fields.Int(attribute="org_count", required=True)
    url = fields.Function(lambda t: f"/gallery/templates/{t.id}", dump_only=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class TemplateDetailOut(TemplateOut):
    description_html = fields.Str(required=True)
    versions = fields.List(fields.Nested(VersionOut), required=True)


class TemplatePageOut(Schema):
    items = fields.List(fields.Nested(TemplateOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class RatingOut(Schema):
    stars = fields.Int(required=True)
    rating_count = fields.Int(required=True)
    score = fields.Float(required=True)
