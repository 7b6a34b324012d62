"""The JSON API's kernel: its blueprint, input/output helpers, shared schemas and the OpenAPI
document.

Every feature (``portal.qa``, ``cs_metrics``, ...) adds its routes to :data:`bp` from its own
``api.py`` and declares each one once with :func:`endpoint`; the document is built from those
declarations. Authentication (personal access tokens) is attached by ``portal.api.views``, which
owns the token model's service; features only read :func:`api_user`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, g, jsonify, request
from marshmallow import RAISE, Schema, fields, validate
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from portal.core.errors import DomainError
from portal.core.extensions import csrf, limiter
from portal.core.identity import User
from portal.core.pagination import MAX_PAGE

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # token-authenticated; session-authenticated calls may only read

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# --- schemas every API shares --------------------------------------------------------------


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE  # an unknown field is an error naming it, never silently dropped


# The largest id the database holds (PostgreSQL ``integer``): a larger one sent in a request is a
# 422 naming the field (in a URL, ``portal.core.web.IdConverter`` makes it a 404), never a 500.
ID_MAX = 2**31 - 1


def Id(**kwargs: Any) -> fields.Int:  # noqa: N802 - a field type, named like one
    """An id sent in a request body or query: a positive integer the database can hold."""
    return fields.Int(validate=validate.Range(min=1, max=ID_MAX), **kwargs)


class PageIn(StrictSchema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Int(load_default=20, validate=validate.Range(min=1, max=100))


class PageMeta(Schema):
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)
    pages = fields.Int(required=True)


class ErrorBody(Schema):
    code = fields.Str(required=True)
    message = fields.Str(required=True)
    fields = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))


class ErrorOut(Schema):
    error = fields.Nested(ErrorBody, required=True)


# --- request helpers -----------------------------------------------------------------------


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


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


def form_body() -> dict[str, Any]:
    """A multipart request's fields and its ``file`` part, for a schema to load."""
    data: dict[str, Any] = request.form.to_dict()
    if "file" in request.files:
        data["file"] = request.files["file"]
    return data


def page_out(page: Any) -> dict[str, Any]:
    return {
        "items": page.items,
        "meta": {
            "page": page.page,
            "per_page": page.per_page,
            "total": page.total,
            "pages": page.pages,
        },
    }


# --- the OpenAPI document ------------------------------------------------------------------


@dataclass
class Operation:
    path: str
    method: str
    summary: str
    response: type[Schema] | None
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    scope: str = "read"
    errors: tuple[int, ...] = (401, 404)
    path_params: dict[str, str] = field(default_factory=dict)
    status: int = 200  # the success status (201 created, 202 accepted for background work)
    body_type: str = "application/json"  # or "multipart/form-data" for uploads
    files: tuple[str, ...] = ()  # a file download: the media types it may answer with


OPERATIONS: list[Operation] = []


def endpoint(
    path: str, method: str, summary: str, response: type[Schema] | None, **kwargs: Any
) -> Callable:
    """Record an operation for the document; the view itself is routed by the blueprint."""

    def decorator(view: Callable) -> Callable:
        OPERATIONS.append(
            Operation(
                path=path, method=method.lower(), summary=summary, response=response, **kwargs
            )
        )
        return view

    return decorator


SUCCESS_TEXT = {200: "OK", 201: "Created", 202: "Accepted: the work runs in the background"}

ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid token",
    403: "Not allowed (for example a read-only token)",
    404: "Not found, or not yours",
    422: "Validation failed; `fields` names each bad field",
    429: "Too many requests",
}


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Cocreate API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        servers=[{"url": "/api/v1"}],
        info={"description": "Authenticate with `Authorization: Bearer <personal access token>`."},
    )
    spec.components.security_scheme("token", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorOut)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        responses: dict[str | int, Any] = {}
        if op.files:
            binary = {"schema": {"type": "string", "format": "binary"}}
            responses[op.status] = {
                "description": "The file, as an attachment",
                # a JSON file is any JSON document; the other kinds are bytes
                "content": {m: {"schema": {}} if m.endswith("json") else binary for m in op.files},
            }
        elif op.response is not None:
            responses[op.status] = {
                "description": SUCCESS_TEXT.get(op.status, "OK"),
                "content": {"application/json": {"schema": op.response}},
            }
        else:
            responses[204] = {"description": "Done"}
        for status in sorted({*op.errors, 401, 429, *((422,) if op.body or op.query else ())}):
            responses[status] = {
                "description": ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": "Error"}},
            }
        operation: dict[str, Any] = {
            "summary": op.summary,
            "security": [{"token": []}],
            "responses": responses,
            "x-scope": op.scope,
        }
        parameters: list[dict[str, Any]] = [
            {"in": "path", "name": name, "required": True, "schema": {"type": kind}}
            for name, kind in op.path_params.items()
        ]
        if op.query is not None:
            parameters.append({"in": "query", "schema": op.query})
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {op.body_type: {"schema": op.body}},
            }
        paths.setdefault(op.path, {})[op.method] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.route("/openapi.json")
@limiter.exempt
def openapi() -> Response:
    return jsonify(build_spec())
