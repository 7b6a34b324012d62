"""Gallery endpoints on the one API blueprint (imported by ``feature.init_app`` before it is
registered). Thin: load, call the service, commit, dump. Uploads are multipart: the file part
is streamed through the same checks as the web form."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from portal.core.api import api_user, bp, endpoint, form_body, json_body, load, page_out
from portal.core.db import db
from portal.gallery import schemas, service
from portal.gallery.views import MEDIA_TYPES, send_version, stored_upload

ID = {"template_id": "integer"}


class _WithVersions:
    """The template as the detail schema reads it, with the versions this viewer may see."""

    def __init__(self, template: Any, versions: list[Any]) -> None:
        self._template, self.versions = template, versions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._template, name)


def _detail(template_id: int) -> dict[str, Any]:
    view = service.template_view(db.session, api_user(), template_id)
    return schemas.TemplateDetailOut().dump(_WithVersions(view.template, view.versions))


@bp.route("/templates")
@endpoint(
    "/templates",
    "get",
    "Templates you can see: popular, top rated or newest; filter by category, industry, tag, "
    "or compatible with your organization's product version",
    schemas.TemplatePageOut,
    query=schemas.TemplateListIn,
    errors=(401,),
)
def list_templates() -> Response:
    args = load(schemas.TemplateListIn, request.args.to_dict())
    filters = service.ListFilters(
        sort=args["sort"],
        category=args.get("category"),
        industry=args.get("industry"),
        tag=(args.get("tag") or "").lower() or None,
        compatible=args["compatible"],
    )
    page = service.list_templates(db.session, api_user(), filters, args["page"], args["per_page"])
    out = page_out(page)
    out["items"] = [row.template for row in page.items]
    return jsonify(schemas.TemplatePageOut().dump(out))


@bp.route("/templates", methods=["POST"])
@endpoint(
    "/templates",
    "post",
    "Share a template (multipart/form-data with `file`): published at once or held for review",
    schemas.TemplateDetailOut,
    body=schemas.TemplateUploadIn,
    body_type="multipart/form-data",
    status=201,
    scope="write",
    errors=(400, 401, 403, 413),
)
def share() -> Response:
    data = load(schemas.TemplateUploadIn, form_body())
    with stored_upload(data.pop("file")) as upload:
        template = service.share(db.session, api_user(), upload=upload, **data)
        db.session.commit()
    response = jsonify(_detail(template.id))
    response.status_code = 201
    return response


@bp.route("/templates/<int:template_id>")
@endpoint(
    "/templates/{template_id}",
    "get",
    "A template with its versions (newest first), manifests and download links",
    schemas.TemplateDetailOut,
    path_params=ID,
)
def get_template(template_id: int) -> Response:
    return jsonify(_detail(template_id))


@bp.route("/templates/<int:template_id>/versions", methods=["POST"])
@endpoint(
    "/templates/{template_id}/versions",
    "post",
    "Upload a new version (multipart/form-data with `file`; author only; moderated)",
    schemas.VersionOut,
    body=schemas.VersionUploadIn,
    body_type="multipart/form-data",
    status=201,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404, 413),
)
def upload_version(template_id: int) -> Response:
    data = load(schemas.VersionUploadIn, form_body())
    with stored_upload(data.pop("file")) as upload:
        version = service.add_version(db.session, api_user(), template_id, upload=upload, **data)
        db.session.commit()
    response = jsonify(schemas.VersionOut().dump(version))
    response.status_code = 201
    return response


@bp.route("/templates/<int:template_id>/download")
@endpoint(
    "/templates/{template_id}/download",
    "get",
    "Download the current version (or `?version=<id>`) as an attachment; recorded as adoption",
    None,
    files=(*MEDIA_TYPES.values(), "application/octet-stream"),
    path_params=ID,
    errors=(401, 403, 404),
)
def download(template_id: int) -> Response:
    raw = request.args.get("version", "")
    version_id = int(raw) if raw.isdigit() else None
    version = service.download(db.session, api_user(), template_id, version_id)
    db.session.commit()
    return send_version(version)


@bp.route("/templates/<int:template_id>/rating", methods=["PUT"])
@endpoint(
    "/templates/{template_id}/rating",
    "put",
    "Rate a template 1-5 stars (once per user; a new rating replaces yours)",
    schemas.RatingOut,
    body=schemas.RateIn,
    scope="write",
    path_params=ID,
    errors=(400, 401, 403, 404),
)
def rate(template_id: int) -> Response:
    data = load(schemas.RateIn, json_body())
    template = service.rate(db.session, api_user(), template_id, data["stars"])
    db.session.commit()
    return jsonify(
        schemas.RatingOut().dump(
            {
                "stars": data["stars"],
                "rating_count": template.rating_count,
                "score": template.bayes_score,
            }
        )
    )
