"""Gallery pages: parse, call the service, commit once, redirect or render.

Files are only ever sent as attachments, with ``nosniff`` and a CSP that forbids everything,
whatever their type: an upload can never run as a page of the portal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from portal.core import home
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.i18n import current_locale
from portal.core.identity import User
from portal.core.pagination import clamp_page_args
from portal.core.storage import storage_for
from portal.core.web import id_arg, perform, render_form, submit
from portal.gallery import forms, listcache, service, uploads
from portal.gallery import manifest as manifests
from portal.gallery.models import TemplateVersion

bp = Blueprint("gallery", __name__, url_prefix="/gallery")


@bp.app_template_filter("product_versions")
def product_versions(template: Any) -> str:
    """The product versions a template works with, in words rather than as the ">=5.2, <6"
    its author typed (pages keep that next to it for those who want the rule itself)."""
    low, high = template.product_min, template.product_max
    if low is not None and high is not None:
        return _(
            "%(low)s and later, before %(high)s",
            low=manifests.key_version(low),
            high=manifests.key_version(high),
        )
    if low is not None:
        return _("%(low)s and later", low=manifests.key_version(low))
    if high is not None:
        return _("before %(high)s", high=manifests.key_version(high))
    return _("any version")


DOWNLOAD_CSP = "default-src 'none'; sandbox"
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
}


def _viewer() -> Any:
    return current_user._get_current_object() if current_user.is_authenticated else None


def max_upload_bytes() -> int:
    return int(current_app.config.get("GALLERY_MAX_UPLOAD_BYTES", uploads.DEFAULT_MAX_BYTES))


def storage() -> Any:
    return storage_for(current_app.config["UPLOAD_DIR"], "gallery")


def receive_file(file: Any) -> uploads.Upload:
    """Stream a posted file into storage (or UploadRefused on the ``file`` field)."""
    if not isinstance(file, FileStorage) or not file.filename:
        raise uploads.UploadRefused(_("Choose a file."))
    return uploads.receive(file.stream, file.filename, storage(), max_upload_bytes())


@contextmanager
def stored_upload(file: Any) -> Iterator[uploads.Upload]:
    """Receive a file for a service call; when the call refuses, the blob goes again unless
    another version already uses the same bytes (nothing is kept for a refused form)."""
    upload = receive_file(file)
    try:
        yield upload
    except BaseException:
        db.session.rollback()
        used = db.session.scalar(
            select(TemplateVersion.id).where(TemplateVersion.file_key == upload.key).limit(1)
        )
        if used is None:
            storage().delete(upload.key)
        raise


def send_version(version: TemplateVersion) -> Response:
    handle = storage().open(version.file_key)
    response = send_file(
        handle,
        mimetype=MEDIA_TYPES.get(version.file_kind, "application/octet-stream"),
        as_attachment=True,
        download_name=version.file_name,
        max_age=0,
        etag=version.file_sha256,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- lists -------------------------------------------------------------------------------


def list_filters(args: Any) -> service.ListFilters:
    def pick(name: str, allowed: Any) -> str | None:
        value = (args.get(name) or "").strip()
        return value if value in allowed else None

    tag = (args.get("tag") or "").strip().lower()[:40] or None
    return service.ListFilters(
        sort=pick("sort", service.SORTS) or "popular",
        category=pick("category", service.CATEGORIES),
        industry=pick("industry", service.INDUSTRIES),
        tag=tag,
        compatible=args.get("compatible") in {"1", "true", "on", "y"},
    )


def _scope(viewer: Any) -> str:
    """Who sees the same list: everyone anonymous, one organization (its private templates
    and its product version), or vendor staff."""
    if viewer is None:
        return "public"
    return "staff" if viewer.is_staff else f"org:{viewer.organization_id}"


@bp.route("/")
def index() -> Any:
    viewer = _viewer()
    filters = list_filters(request.args)
    page_number, per_page = clamp_page_args(
        request.args.get("page", 1), request.args.get("per_page", 20)
    )
    key = (_scope(viewer), current_locale(), filters, page_number, per_page)

    def render() -> str:
        page = service.list_templates(db.session, viewer, filters, page_number, per_page)
        link_args = {
            k: v
            for k, v in {
                "category": filters.category,
                "industry": filters.industry,
                "tag": filters.tag,
                "compatible": "1" if filters.compatible else None,
            }.items()
            if v
        }
        here = url_for("gallery.index")
        return render_template(
            "gallery/_list_body.html",
            page=page,
            filters=filters,
            link_args={**link_args, "sort": filters.sort},
            sort_links=[
                (s, f"{here}?{urlencode({**link_args, 'sort': s})}") for s in service.SORTS
            ],
            categories={k: str(v) for k, v in service.CATEGORIES.items()},
            industries={k: str(v) for k, v in service.INDUSTRIES.items()},
        )

    body = listcache.kept(key, render)
    return render_template(
        "gallery/index.html",
        body=Markup(body),  # noqa: S704 - our own template output, escaped when rendered  # nosec B704
    )


@bp.route("/manifest.schema.json")
def manifest_json_schema() -> Response:
    response = jsonify(
        manifests.manifest_schema(url_for("gallery.manifest_json_schema", _external=True))
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.route("/mine")
@login_required
def mine() -> Any:
    return render_template(
        "gallery/mine.html", templates=service.my_templates(db.session, _viewer())
    )


# --- sharing -------------------------------------------------------------------------------


def _share(form: forms.ShareForm) -> Any:
    with stored_upload(form.file.data) as upload:
        return _share_with(form, upload)


def _share_with(form: forms.ShareForm, upload: uploads.Upload) -> Any:
    return service.share(
        db.session,
        _viewer(),
        title=form.title.data,
        description=form.description.data,
        category=form.category.data,
        industry=form.industry.data,
        tags=form.tags.data,
        license=form.license.data,
        visibility=form.visibility.data,
        upload=upload,
        version=form.version.data,
        changelog=form.changelog.data,
        product_range=form.product_range.data,
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    form = forms.ShareForm()
    created: list[Any] = []
    if submit(form, lambda: created.append(_share(form))):
        template = created[0]
        if template.listed:
            flash(_("Your template is published."), "success")
        else:
            flash(_("Thanks! Your template will appear once a moderator approves it."), "info")
        return redirect(url_for("gallery.template", template_id=template.id))
    return render_form("gallery/new.html", form, max_mb=max_upload_bytes() // (1024 * 1024))


@bp.route("/templates/<int:template_id>/versions/new", methods=["GET", "POST"])
@login_required
def new_version(template_id: int) -> Any:
    try:
        template = service.get_template(db.session, _viewer(), template_id)
    except DomainError:
        abort(404)
    if not service.can_manage(_viewer(), template):
        abort(403)
    form = forms.NewVersionForm()

    def action() -> Any:
        with stored_upload(form.file.data) as upload:
            version = service.add_version(
                db.session,
                _viewer(),
                template_id,
                upload=upload,
                version=form.version.data,
                changelog=form.changelog.data,
                product_range=form.product_range.data,
            )
            db.session.flush()
            return version

    created: list[Any] = []
    if submit(form, lambda: created.append(action())):
        if created[0].published:
            flash(_("Version %(v)s is published.", v=created[0].version), "success")
        else:
            flash(
                _("Version %(v)s will appear once a moderator approves it.", v=created[0].version),
                "info",
            )
        return redirect(url_for("gallery.template", template_id=template_id))
    return render_form(
        "gallery/new_version.html",
        form,
        t=template,
        max_mb=max_upload_bytes() // (1024 * 1024),
    )


# --- a template ------------------------------------------------------------------------------


@bp.route("/templates/<int:template_id>")
def template(template_id: int) -> Any:
    try:
        view = service.template_view(db.session, _viewer(), template_id)
    except DomainError:
        abort(404)
    rate_form = forms.RateForm(stars=view.my_rating)
    review_form = forms.ReviewForm()
    return render_template(
        "gallery/template.html",
        view=view,
        t=view.template,
        rate_form=rate_form,
        review_form=review_form,
        categories={k: str(v) for k, v in service.CATEGORIES.items()},
        industries={k: str(v) for k, v in service.INDUSTRIES.items()},
    )


@bp.route("/templates/<int:template_id>/rate", methods=["POST"])
@login_required
def rate(template_id: int) -> Response:
    form = forms.RateForm()
    if form.validate_on_submit():
        perform(
            lambda: service.rate(db.session, _viewer(), template_id, form.stars.data),
            _("Thanks for rating."),
        )
    else:
        flash(_("Give 1 to 5 stars."), "danger")
    return redirect(url_for("gallery.template", template_id=template_id, _anchor="ratings"))


@bp.route("/templates/<int:template_id>/review", methods=["POST"])
@login_required
def review(template_id: int) -> Response:
    form = forms.ReviewForm()
    if form.validate_on_submit():
        perform(
            lambda: service.review(db.session, _viewer(), template_id, form.body.data),
            _("Thanks! Your review appears once it is approved."),
        )
    else:  # what is wrong with it, as the form would say beside the field: empty, too long
        flash(next(iter(form.errors.values()))[0], "danger")
    return redirect(url_for("gallery.template", template_id=template_id, _anchor="reviews"))


@bp.route("/templates/<int:template_id>/download")
@login_required
def download(template_id: int) -> Response:
    version_id = id_arg(request.args.get("version"))
    try:
        version = service.download(db.session, _viewer(), template_id, version_id)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        abort(error.status_code if error.status_code in {403, 404} else 400)
    return send_version(version)


def home_section(session: Session, viewer: User | None) -> str:
    """The home page's templates most organizations downloaded lately, as ``viewer`` may
    see them (``portal.core.home``)."""

    def render() -> str:
        filters = service.ListFilters(sort="popular")
        page = service.list_templates(session, viewer, filters, 1, home.ROWS)
        return render_template("gallery/_home.html", rows=page.items)

    # kept like the gallery's list, per scope
    return listcache.kept(("home", _scope(viewer), current_locale()), render)
