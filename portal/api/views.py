from __future__ import annotations

from flask import g, jsonify, request
from flask_login import current_user
from werkzeug.wrappers import Response

from moderation import service as moderation
from portal.accounts import service as accounts
from portal.api import schemas
from portal.core.api import (
    SAFE_METHODS,
    PageIn,
    Unauthorized,
    api_user,
    bp,
    endpoint,
    json_body,
    load,
    page_out,
)
from portal.core.db import db
from portal.core.errors import DomainError, PermissionDenied
from portal.core.i18n import LOCALES
from portal.core.pagination import paginate
from portal.core.permissions import Action


@bp.before_request
def authenticate() -> None:
    g.api_user, g.api_scope = None, None
    if request.endpoint == "api.openapi":
        return
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = accounts.authenticate_token(db.session, header.removeprefix("Bearer ").strip())
        if token is None:
            raise Unauthorized("The access token is missing, revoked or wrong.")
        db.session.commit()  # last_used_at
        g.api_user, g.api_scope = token.user, token.scope
    elif current_user.is_authenticated and request.method in SAFE_METHODS:
        g.api_user, g.api_scope = current_user._get_current_object(), "read"
    else:
        raise Unauthorized("Send a personal access token: Authorization: Bearer <token>.")
    if request.method not in SAFE_METHODS and g.api_scope != "write":
        raise PermissionDenied("This token is read-only; create a token with write access.")


@bp.route("/me")
@endpoint("/me", "get", "The signed-in user and their organization", schemas.MeOut, errors=(401,))
def me() -> Response:
    return jsonify(schemas.MeOut().dump(api_user()))


@bp.route("/me", methods=["PATCH"])
@endpoint(
    "/me",
    "patch",
    "Change your name, language or time zone",
    schemas.MeOut,
    body=schemas.ProfileIn,
    scope="write",
    errors=(400, 401, 403),
)
def update_me() -> Response:
    user = api_user()
    changes = load(schemas.ProfileIn, json_body())
    if "locale" in changes and changes["locale"] not in LOCALES:
        raise DomainError("Unknown language.", field="locale")
    accounts.update_profile(
        db.session,
        user,
        changes.get("display_name", user.display_name),
        changes.get("locale", user.locale),
        changes.get("timezone", user.timezone),
    )
    db.session.commit()
    return jsonify(schemas.MeOut().dump(user))


@bp.route("/organizations/<int:org_id>")
@endpoint(
    "/organizations/{org_id}",
    "get",
    "An organization you belong to (staff: any)",
    schemas.OrganizationOut,
    path_params={"org_id": "integer"},
)
def organization(org_id: int) -> Response:
    org = accounts.get_organization(db.session, api_user(), org_id, Action.VIEW_ORG)
    return jsonify(schemas.OrganizationOut().dump(org))


@bp.route("/organizations/<int:org_id>/members")
@endpoint(
    "/organizations/{org_id}/members",
    "get",
    "Members of an organization you administer",
    schemas.MemberPageOut,
    query=PageIn,
    path_params={"org_id": "integer"},
    errors=(401, 403, 404),
)
def organization_members(org_id: int) -> Response:
    org = accounts.get_organization(db.session, api_user(), org_id, Action.MANAGE_MEMBERS)
    args = load(PageIn, request.args.to_dict())
    page = paginate(db.session, accounts.members_query(org), args["page"], args["per_page"])
    return jsonify(schemas.MemberPageOut().dump(page_out(page)))


@bp.route("/moderation/queue")
@endpoint(
    "/moderation/queue",
    "get",
    "Items awaiting review, oldest first (moderators)",
    schemas.ModerationPageOut,
    query=schemas.ModerationQueueIn,
    errors=(401, 403),
)
def moderation_queue() -> Response:
    args = load(schemas.ModerationQueueIn, request.args.to_dict())
    filters = moderation.QueueFilters(
        kind=args.get("kind"),
        organization_id=args.get("org"),
        reason=args.get("reason"),
        older_than_hours=args.get("older_than"),
    )
    page = moderation.queue_page(db.session, api_user(), filters, args["page"], args["per_page"])
    return jsonify(schemas.ModerationPageOut().dump(page_out(page)))


@bp.route("/moderation/items/<int:item_id>/decision", methods=["POST"])
@endpoint(
    "/moderation/items/{item_id}/decision",
    "post",
    "Approve, reject, edit-and-approve, restore or remove",
    schemas.ModerationItemOut,
    body=schemas.DecisionIn,
    scope="write",
    path_params={"item_id": "integer"},
    errors=(400, 401, 403, 404, 409),
)
def moderation_decision(item_id: int) -> Response:
    moderation.require_moderator(api_user())
    data = load(schemas.DecisionIn, json_body())
    action = data["action"]
    user = api_user()
    if action == "approve":
        item = moderation.approve(db.session, user, item_id)
    elif action == "edit":
        if "text" not in data:
            raise DomainError("Send the edited text.", field="text")
        item = moderation.approve(db.session, user, item_id, new_text=data["text"])
    elif action == "reject":
        item = moderation.reject(db.session, user, item_id, data.get("reason", ""))
    elif action == "restore":
        item = moderation.restore(db.session, user, item_id)
    else:
        item = moderation.remove(db.session, user, item_id, data.get("reason", ""))
    db.session.commit()
    return jsonify(schemas.ModerationItemOut().dump(item))


@bp.route("/moderation/items/<int:item_id>/flags", methods=["POST"])
@endpoint(
    "/moderation/items/{item_id}/flags",
    "post",
    "Flag published content (once per item)",
    schemas.FlagOut,
    body=schemas.FlagIn,
    scope="write",
    path_params={"item_id": "integer"},
    errors=(400, 401, 403, 404, 409),
)
def flag_item(item_id: int) -> Response:
    data = load(schemas.FlagIn, json_body())
    entry = moderation.flag(db.session, api_user(), item_id, data["reason"], data["note"])
    db.session.commit()
    return jsonify(schemas.FlagOut().dump(entry))


@bp.route("/flags", methods=["POST"])
@endpoint(
    "/flags",
    "post",
    "Flag published content by its kind and id (once per item)",
    schemas.FlagOut,
    body=schemas.FlagContentIn,
    scope="write",
    errors=(400, 401, 403, 404, 409),
)
def flag_content() -> Response:
    data = load(schemas.FlagContentIn, json_body())
    entry = moderation.flag_content(
        db.session, api_user(), data["kind"], data["object_id"], data["reason"], data["note"]
    )
    db.session.commit()
    return jsonify(schemas.FlagOut().dump(entry))
