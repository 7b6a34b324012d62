from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from flask_login import current_user
from marshmallow import Schema
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from portal.accounts import service as accounts
from portal.api import schemas
from portal.api.openapi import build_spec, endpoint
from portal.core.db import db
from portal.core.errors import DomainError, PermissionDenied
from portal.core.extensions import csrf, limiter
from portal.core.i18n import LOCALES
from portal.core.identity import User
from portal.core.pagination import paginate
from portal.core.permissions import Action

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # token-authenticated; session-authenticated calls may only read

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


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


def api_user() -> User:
    return g.api_user


def load(schema: type[Schema], data: Any) -> dict[str, Any]:
    """Validate input; a ValidationError becomes a 422 naming each field (app error handler)."""
    return schema().load(data)


def json_body() -> Any:
    if not request.data:
        return {}
    try:
        return request.get_json(force=False)
    except BadRequest as error:
        raise DomainError("The request body is not valid JSON.") from error


@bp.route("/openapi.json")
@limiter.exempt
def openapi() -> Response:
    return jsonify(build_spec())


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
    query=schemas.PageIn,
    path_params={"org_id": "integer"},
    errors=(401, 403, 404),
)
def organization_members(org_id: int) -> Response:
    org = accounts.get_organization(db.session, api_user(), org_id, Action.MANAGE_MEMBERS)
    args = load(schemas.PageIn, request.args.to_dict())
    page = paginate(db.session, accounts.members_query(org), args["page"], args["per_page"])
    return jsonify(
        schemas.MemberPageOut().dump(
            {
                "items": page.items,
                "meta": {
                    "page": page.page,
                    "per_page": page.per_page,
                    "total": page.total,
                    "pages": page.pages,
                },
            }
        )
    )
