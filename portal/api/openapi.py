"""Each endpoint declares its schemas once, in :func:`endpoint`; the document is built from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from portal.api.schemas import ErrorOut


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
        if op.response is not None:
            responses[200] = {
                "description": "OK",
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
                "content": {"application/json": {"schema": op.body}},
            }
        paths.setdefault(op.path, {})[op.method] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
