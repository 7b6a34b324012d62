"""marshmallow schemas: the API's request and response shapes, and its OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal.core.api import Id, PageIn, PageMeta, StrictSchema


def _role_names(user: object) -> list[str]:
    return sorted(str(r) for r in user.roles)  # type: ignore[attr-defined]


class OrganizationOut(Schema):
    id = fields.Int(required=True)
    name = fields.Str(required=True)
    slug = fields.Str(required=True)
    kind = fields.Str(required=True)
    domains = fields.Method("get_domains", dump_only=True)

    def get_domains(self, org: object) -> list[str]:
        return [d.domain for d in org.domains if d.verified]  # type: ignore[attr-defined]


class UserOut(Schema):
    id = fields.Int(required=True)
    email = fields.Str(required=True)
    display_name = fields.Str(required=True)
    locale = fields.Str(required=True)
    timezone = fields.Str(required=True)
    trust_level = fields.Int(required=True)
    roles = fields.Function(_role_names, dump_only=True)
    organization_id = fields.Int(required=True)


class MeOut(UserOut):
    organization = fields.Nested(OrganizationOut, required=True)


class MemberOut(Schema):
    id = fields.Int(required=True)
    display_name = fields.Str(required=True)
    email = fields.Str(required=True)
    active = fields.Bool(required=True)
    roles = fields.Function(_role_names, dump_only=True)


class MemberPageOut(Schema):
    items = fields.List(fields.Nested(MemberOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class ProfileIn(StrictSchema):
    display_name = fields.Str(validate=validate.Length(min=1, max=80))
    locale = fields.Str(validate=validate.OneOf(["en", "zh_CN"]))
    timezone = fields.Str(validate=validate.Length(min=1, max=64))


class ModerationItemOut(Schema):
    id = fields.Int(required=True)
    kind = fields.Str(required=True)
    object_id = fields.Int(required=True)
    state = fields.Str(required=True)
    held_reasons = fields.List(fields.Str(), required=True)
    summary = fields.Str(required=True)
    source = fields.Str(required=True)
    preview_html = fields.Str(required=True)
    organization_id = fields.Int(allow_none=True)
    author_id = fields.Int(allow_none=True)
    submitted_at = fields.DateTime(required=True)
    flag_weight = fields.Float(required=True)


class ModerationQueueIn(PageIn):
    kind = fields.Str(validate=validate.Length(max=40))
    org = fields.Int(validate=validate.Range(min=1))
    reason = fields.Str(validate=validate.Length(max=40))
    older_than = fields.Int(validate=validate.Range(min=0, max=100_000))


class ModerationPageOut(Schema):
    items = fields.List(fields.Nested(ModerationItemOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class DecisionIn(StrictSchema):
    action = fields.Str(
        required=True, validate=validate.OneOf(["approve", "reject", "edit", "restore", "remove"])
    )
    reason = fields.Str(validate=validate.Length(max=2000))
    text = fields.Str(validate=validate.Length(min=1, max=100_000))


class FlagIn(StrictSchema):
    reason = fields.Str(
        required=True, validate=validate.OneOf(["spam", "offensive", "off_topic", "other"])
    )
    note = fields.Str(validate=validate.Length(max=500), load_default="")


class FlagContentIn(FlagIn):
    """A flag by what pages and clients know of the content: its kind (``question``,
    ``answer``, ``qa_comment``, ``idea``, ``idea_comment``, ``template``, ``template_version``,
    ``template_review``, ``profile_about``) and its own id."""

    kind = fields.Str(required=True, validate=validate.Length(min=1, max=40))
    object_id = Id(required=True)


class FlagOut(Schema):
    id = fields.Int(required=True)
    item_id = fields.Int(required=True)
    reason = fields.Str(required=True)
    weight = fields.Float(required=True)
