"""Privacy pages: download one's data, erase an account, export or delete an organization."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user
from werkzeug.wrappers import Response

from portal.core.db import db
from portal.core.permissions import Action, can
from portal.core.web import perform, render_form, submit
from portal.privacy import forms, service

bp = Blueprint("privacy", __name__, url_prefix="/privacy")


def _page(erase_form: forms.EraseSelfForm | None = None) -> Any:
    return render_form(
        "privacy/index.html",
        erase_form or forms.EraseSelfForm(formdata=None),
        exports=service.my_exports(db.session, current_user),
        can_export_org=can(current_user, Action.MANAGE_MEMBERS, current_user.organization),
        export_days=service.EXPORT_DAYS,
    )


@bp.route("/")
@login_required
def index() -> Any:
    return _page()


@bp.route("/exports", methods=["POST"])
@login_required
def request_export() -> Response:
    perform(
        lambda: service.request_export(db.session, current_user),
        _("Your export is being prepared. You will get a notification when it is ready."),
    )
    return redirect(url_for("privacy.index"))


@bp.route("/org-exports", methods=["POST"])
@login_required
def request_org_export() -> Response:
    # Not ``perform``: a member who is not an admin gets a 403, not a flashed message.
    service.request_org_export(db.session, current_user)
    db.session.commit()
    flash(_("The organization's export is being prepared. You will get a notification."), "success")
    return redirect(url_for("privacy.index"))


@bp.route("/exports/<int:export_id>/download")
@login_required
def download(export_id: int) -> Response:
    path, name = service.download_path(
        db.session, current_user, export_id, current_app.config["UPLOAD_DIR"]
    )
    response = send_file(path, mimetype="application/zip", as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/erase", methods=["POST"])
@login_required
def erase_self() -> Any:
    form = forms.EraseSelfForm()
    user_id = current_user.id
    if submit(
        form,
        lambda: service.erase_account(
            db.session, current_user, user_id, form.content.data, form.password.data
        ),
    ):
        logout_user()
        flash(_("Your account was deleted."), "info")
        return redirect(url_for("accounts.sign_in"))
    return _page(form)


@bp.route("/users/<int:user_id>/erase", methods=["GET", "POST"])
@login_required
def erase_member(user_id: int) -> Any:
    person = service.erasable_user(db.session, current_user, user_id)
    form = forms.EraseMemberForm()
    org_id = person.organization_id
    if submit(
        form,
        lambda: service.erase_account(db.session, current_user, user_id, form.content.data),
    ):
        flash(_("The account was deleted."), "success")
        if can(current_user, Action.VIEW_ORG, person.organization):
            return redirect(url_for("accounts.members", org_id=org_id))
        return redirect(url_for("privacy.index"))
    return render_form("privacy/erase_member.html", form, person=person)


@bp.route("/orgs/<int:org_id>/delete", methods=["GET", "POST"])
@login_required
def delete_organization(org_id: int) -> Any:
    org = service.deletable_org(db.session, current_user, org_id)
    name = org.name
    form = forms.DeleteOrganizationForm()
    done: list[service.DeletionSummary] = []
    if submit(
        form,
        lambda: done.append(
            service.delete_organization(db.session, current_user, org_id, form.confirmation.data)
        ),
    ):
        return render_template("privacy/org_deleted.html", summary=done[0])
    return render_form("privacy/delete_org.html", form, org_name=name, org_id=org_id)
