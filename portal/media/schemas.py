"""The image upload's request and answer, for the web page's script and the API alike."""

from __future__ import annotations

from marshmallow import Schema, fields

from portal.core.api import StrictSchema


class ImageUploadIn(StrictSchema):
    file = fields.Raw(
        required=True, metadata={"type": "string", "format": "binary"}, load_only=True
    )


class ImageOut(Schema):
    url = fields.Str(
        required=True,
        metadata={"description": "The image's path on this portal, as Markdown in a post uses it"},
    )
    markdown = fields.Str(
        required=True, metadata={"description": "`![name](url)`, ready to put in a post"}
    )
    content_type = fields.Str(required=True)
    width = fields.Int(required=True)
    height = fields.Int(required=True)
