"""CS pages: CSV imports (upload, progress, row report), see the package docstring.

The upload only stores the file and queues the job (``service.start_import``); the import runs
in a Celery task, and the job page polls a small JSON status until it finishes (a meta refresh
does the same without JavaScript)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField
from wtforms.fields.choices import SelectChoice

from cs_metrics import importers, service
from cs_metrics.access import require_cs
from cs_metrics.export import csv_response
from cs_metrics.models import ImportJob, JobStatus
from cs_metrics.views import bp, nav_item
from portal.core.db import db
from portal.core.errors import NotFound
from portal.core.identity import User
from portal.core.permissions import Action, can
from portal.core.web import Form, render_form, submit

nav_item("cs.imports", _l("Imports"), Action.MANAGE_CS)

RECENT_JOBS = 20
KIND_LABELS = {
    "accounts": _l("Accounts"),
    "contacts": _l("Contacts"),
    "usage_events": _l("Usage events"),
    "tickets": _l("Support tickets"),
    "invoices": _l("Invoices"),
    "nps_responses": _l("NPS responses"),
}
STATUS_LABELS = {
    JobStatus.QUEUED: _l("Queued"),
    JobStatus.VALIDATING: _l("Checking the file"),
    JobStatus.IMPORTING: _l("Importing"),
    JobStatus.DONE: _l("Done"),
    JobStatus.FAILED: _l("Nothing imported"),
}
FINISHED = (JobStatus.DONE, JobStatus.FAILED)


class ImportForm(Form):
    kind = SelectField(
        _l("What the file holds"),
        choices=[SelectChoice(k, KIND_LABELS.get(k, k)) for k in importers.KINDS],  # type: ignore[attr-defined]
    )
    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))])
    skip_invalid = BooleanField(_l("Import the valid rows even if some rows have errors"))
    day_first = BooleanField(_l("Dates are day first (31/12/2026)"))


def _user() -> User:
    return current_user._get_current_object()


def _job(job_id: int) -> ImportJob:
    job = db.session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(str(_l("No such import.")))
    return job


def progress(job: ImportJob) -> dict[str, Any]:
    """What the job page and its JSON status show; ``percent`` is None while unknown."""
    finished = job.status in FINISHED
    percent: int | None = None
    if finished:
        percent = 100
    elif job.status == JobStatus.IMPORTING and job.rows_valid:
        percent = min(99, int(100 * job.rows_done / job.rows_valid))
    elif job.status == JobStatus.QUEUED:
        percent = 0
    return {
        "id": job.id,
        "status": job.status,
        "status_label": str(STATUS_LABELS.get(job.status, job.status)),
        "finished": finished,
        "percent": percent,
        "rows_total": job.rows_total,
        "rows_valid": job.rows_valid,
        "rows_done": job.rows_done,
        "error_count": job.error_count,
    }


@bp.route("/imports", methods=["GET", "POST"])
@login_required
def imports() -> Any:
    user = require_cs(_user())
    form = ImportForm()
    if request.method == "POST":
        require_cs(user, Action.MANAGE_CS)
    created: list[ImportJob] = []
    if request.method == "POST" and submit(
        form,
        lambda: created.append(
            service.start_import(
                db.session,
                user,
                form.kind.data,
                form.file.data.filename or "upload.csv",
                form.file.data.stream,
                skip_invalid=bool(form.skip_invalid.data),
                day_first=bool(form.day_first.data),
            )
        ),
    ):
        return redirect(url_for("cs.import_job", job_id=created[0].id))
    jobs = db.session.scalars(
        select(ImportJob).order_by(ImportJob.id.desc()).limit(RECENT_JOBS)
    ).all()
    return render_form(
        "cs/imports.html",
        form,
        jobs=jobs,
        kinds=importers.KINDS,
        kind_labels=KIND_LABELS,
        status_labels=STATUS_LABELS,
        may_import=can(user, Action.MANAGE_CS),
    )


@bp.route("/imports/<int:job_id>")
@login_required
def import_job(job_id: int) -> str:
    require_cs(_user())
    job = _job(job_id)
    return render_template(
        "cs/import_job.html",
        job=job,
        progress=progress(job),
        kind_labels=KIND_LABELS,
        report=job.report or {},
    )


@bp.route("/imports/<int:job_id>/status.json")
@login_required
def import_status(job_id: int) -> Response:
    require_cs(_user())
    response = jsonify(progress(_job(job_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/imports/<int:job_id>/errors.csv")
@login_required
def import_errors(job_id: int) -> Response:
    require_cs(_user())
    job = _job(job_id)
    return Response(
        service.import_errors_csv(job),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="import-{job.id}-errors.csv"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.route("/imports.csv")
@login_required
def imports_export() -> Response:
    require_cs(_user())
    jobs = db.session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(1000))
    return csv_response(
        "imports.csv",
        [_("File"), _("Kind"), _("Status"), _("Rows"), _("Valid rows"), _("Imported"),
         _("Errors"), _("Started"), _("Finished")],
        [(j.filename, j.kind, j.status, j.rows_total, j.rows_valid, j.rows_done, j.error_count,
          j.created_at, j.finished_at) for j in jobs],
    )  # fmt: skip
