"""Uploading an image from the Markdown editor, and serving it to readers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from portal.core.db import db
from portal.core.identity import User
from portal.core.storage import LocalStorage, storage_for
from portal.media import service
from portal.media.schemas import ImageOut

bp = Blueprint("media", __name__)

# Served with the page's own origin: nothing in the file may run if it is opened on its own.
IMAGE_CSP = "default-src 'none'; sandbox"
YEAR = 365 * 24 * 3600


def storage() -> LocalStorage:
    return storage_for(current_app.config["UPLOAD_DIR"], service.AREA)


def receive_image(uploader: User, file: object) -> dict[str, Any]:
    """Keep a posted image and commit; the answer both the page's script and the API give."""
    if not isinstance(file, FileStorage) or not file.filename:
        raise service.ImageRefused(_("Choose an image."))
    image = service.store_image(
        db.session, uploader, file.stream, storage(), current_app.config["MEDIA_MAX_IMAGE_BYTES"]
    )
    db.session.commit()
    url = url_for("media.image", name=image.name)
    return ImageOut().dump(
        {
            "url": url,
            "markdown": service.markdown_for(url, file.filename),
            "content_type": image.content_type,
            "width": image.width,
            "height": image.height,
        }
    )


@bp.route("/uploads", methods=["POST"])
@login_required
def upload() -> tuple[Response, int]:
    """Answers JSON: the image's URL and the Markdown that shows it."""
    return jsonify(
        receive_image(current_user._get_current_object(), request.files.get("file"))
    ), 201


@bp.route("/uploads/<name>")
def image(name: str) -> Response:
    found = service.find(db.session, name)
    if found is None or not service.may_see(current_user, found):
        abort(404)
    response = send_file(
        storage().open(found.storage_key),
        mimetype=found.content_type,
        etag=found.storage_key.rsplit("/", 1)[-1],
        max_age=YEAR,
        conditional=True,
    )
    # The bytes never change; only a public image may be kept by shared caches.
    scope = "public" if found.is_public else "private"
    response.headers["Cache-Control"] = f"{scope}, max-age={YEAR}, immutable"
    response.headers["Content-Security-Policy"] = IMAGE_CSP
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
