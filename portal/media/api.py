"""Image upload on the one API blueprint (imported by ``feature.init_app`` before it is
registered): a script posting a question with a screenshot uploads it here first."""

from __future__ import annotations

from flask import jsonify
from werkzeug.wrappers import Response

from portal.core.api import api_user, bp, endpoint, form_body, load
from portal.media.schemas import ImageOut, ImageUploadIn
from portal.media.views import receive_image


@bp.route("/images", methods=["POST"])
@endpoint(
    "/images",
    "post",
    "Upload an image for a post (multipart/form-data with `file`: PNG, JPEG, GIF or WebP); "
    "answers its path and the Markdown that shows it",
    ImageOut,
    body=ImageUploadIn,
    body_type="multipart/form-data",
    status=201,
    scope="write",
    errors=(400, 401, 403, 413, 422, 429),
)
def upload_image() -> Response:
    data = load(ImageUploadIn, form_body())
    response = jsonify(receive_image(api_user(), data["file"]))
    response.status_code = 201
    return response
