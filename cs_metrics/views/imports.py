"""CS pages: CSV imports (upload, progress, row report) and the health recompute a CSM starts
after them (progress), see the package docstring.

The upload only stores the file and queues the job (``service.start_import``); the import runs
in a Celery task, and the job page polls a small JSON status until it finishes (a meta refresh
does the same without JavaScript)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from babel.lists import format_list
from flask import jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField
from wtforms.fields.choices import SelectChoice

from cs_metrics import importers, service
from cs_metrics.access import require_cs
from cs_metrics.export import csv_response
from cs_metrics.models import ImportJob, JobStatus, RecomputeRun
from cs_metrics.views import bp, nav_item
from cs_metrics.views.labels import BAND_LABELS
from portal.core.db import db
from portal.core.errors import NotFound
from portal.core.i18n import current_locale
from portal.core.identity import User
from portal.core.pagecache import ChangeClearedCache
from portal.core.permissions import Action, can
from portal.core.sessions import background
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


def _joined(names: Any) -> str:
    return ", ".join(str(n) for n in names)


def _out_of_range(p: Mapping[str, Any]) -> str:
    if p.get("min") is not None and p.get("max") is not None:
        return _("Must be between %(min)s and %(max)s.", min=p["min"], max=p["max"])
    if p.get("max") is not None:
        return _("Too large: at most %(max)s.", max=p["max"])
    return _("Must be at least %(min)s.", min=p["min"])


def _invalid_choice(p: Mapping[str, Any]) -> str:
    if "urgent" in p["choices"]:
        return _("Must be 1-4 (1 = urgent) or urgent, high, medium or low.")
    return _("Must be one of: %(choices)s.", choices=_joined(p["choices"]))


def _cells(p: Mapping[str, Any]) -> str:
    return _(
        "%(found)s cells; the header has %(expected)s.", found=p["found"], expected=p["expected"]
    )


def _dates_read_as(p: Mapping[str, Any]) -> str:
    return str(_l("day/month/year") if p["day_first"] else _l("month/day/year"))


# The row report is stored with each problem's code, its English message and (since this map
# came in) its parameters; a page shows the words for the code in the reader's language. A code
# not here, or one stored without the parameters its words need, shows the stored message.
REPORT_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    # cells
    "required": lambda p: _("Required."),
    "not_a_number": lambda p: (
        _("Digit groups must be of three (1,234,567.89).") if "value" in p else _("Not a number.")
    ),
    "negative": lambda p: _("Must not be negative."),
    "out_of_range": _out_of_range,
    "not_an_integer": lambda p: _("Must be a whole number."),
    "invalid_email": lambda p: _("Not an email address."),
    "too_long": lambda p: _("Longer than %(max)s characters.", max=p["max_length"]),
    "invalid_domain": lambda p: _("Not a domain name (example.com)."),
    "invalid_choice": _invalid_choice,
    "invalid_date": lambda p: _("Not a date (2026-03-01, 2026/3/1, 2026年3月1日)."),
    "two_digit_year": lambda p: _("Write the year with four digits."),
    "formula": lambda p: _("A spreadsheet formula, not a value."),
    "in_future": lambda p: _("The date is in the future."),
    "ambiguous_date": lambda p: _(
        "Ambiguous date: this column has day-first dates (line %(dmy)s) and month-first dates "
        "(line %(mdy)s); write YYYY-MM-DD.",
        dmy=p["day_first_line"],
        mdy=p["month_first_line"],
    ),
    # rows
    "too_few_cells": _cells,
    "too_many_cells": _cells,
    "duplicate_id": lambda p: _("The same id as line %(line)s.", line=p["first_line"]),
    "before_contract_start": lambda p: _("The renewal date is before the contract start."),
    "closed_before_opened": lambda p: _("Closed before it was opened."),
    "due_before_order": lambda p: _("The due date is before the order date."),
    "unknown_csm": lambda p: _("No vendor staff member has this email."),
    "unknown_account": lambda p: _("No account has this id: import the accounts first."),
    # the file
    "empty_file": lambda p: _("The file is empty or has no header row."),
    "not_csv": lambda p: _("This is an Excel workbook, not CSV: save it as CSV UTF-8."),
    "too_large": lambda p: _("The file is larger than %(mb)s MB.", mb=p["max_mb"]),
    "nul_byte": lambda p: _(
        "The file contains NUL bytes: it is binary, or UTF-16 without a byte order mark."
    ),
    "undecodable": lambda p: _(
        "Line %(line)s cannot be read as %(encoding)s (nor as GB18030): save the file as CSV "
        "UTF-8.",
        line=p["line"],
        encoding=p["encoding"],
    ),
    "malformed_csv": lambda p: _("Line %(line)s: broken CSV quoting.", line=p["line"]),
    "date_order_changed": lambda p: _(
        "The date order of %(columns)s is clear only from later lines: import again with that "
        "order chosen, or with YYYY-MM-DD dates.",
        columns=_joined(p["fields"]),
    ),
    "missing_columns": lambda p: _(
        "Required columns are missing: %(columns)s.", columns=_joined(p["columns"])
    ),
    "duplicate_columns": lambda p: _(
        "Several columns for one field: %(columns)s.",
        columns="; ".join(f"{f} ({_joined(names)})" for f, names in p["columns"].items()),
    ),
    # warnings
    "unknown_columns": lambda p: _("Columns ignored: %(columns)s.", columns=_joined(p["columns"])),
    "unnamed_columns": lambda p: _("%(count)s columns without a name ignored.", count=p["count"]),
    "no_data_rows": lambda p: _("The file has no data rows."),
    "date_order_conflict": lambda p: _(
        "Line %(line)s: %(value)s can only be read the other way round; other dates were read "
        "as %(order)s.",
        line=p["line"],
        value=p["value"],
        order=_dates_read_as(p),
    ),
    "date_order_from_file": lambda p: _(
        "%(column)s: dates were read as %(order)s, as line %(line)s (%(value)s) shows.",
        column=p["field"],
        order=_dates_read_as(p),
        line=p["line"],
        value=p["value"],
    ),
    "ambiguous_dates": lambda p: _(
        "%(count)s dates such as %(value)s (line %(line)s) were read as %(order)s.",
        count=p["count"],
        value=p["value"],
        line=p["line"],
        order=_dates_read_as(p),
    ),
    "formula_text": lambda p: _(
        "Line %(line)s: cells starting with = were kept as text.", line=p["line"]
    ),
}


def report_message(entry: Mapping[str, Any]) -> str:
    """A stored row error, file error or warning in the reader's language."""
    words = REPORT_MESSAGES.get(entry.get("code") or "")
    if words is not None:
        try:
            return words(entry.get("params") or {})
        except (KeyError, TypeError, AttributeError):
            pass  # stored before its parameters were: the message as it was written
    return str(entry.get("message") or "")


def _report_wording() -> importers.ReportWording:
    """The downloadable row report in the reader's language, as the job page words it."""
    return importers.ReportWording(
        header=(_("Line"), _("Column"), _("Code"), _("Reason"), _("Value")),
        message=lambda code, message, params: report_message(
            {"code": code, "message": message, "params": params}
        ),
        more_errors=lambda count: ngettext(
            "%(num)d more error not listed.", "%(num)d more errors not listed.", count
        ),
    )


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


OUTCOME_LABELS = {
    "file_refused": _l("File refused"),
    "no_data": _l("No data rows: nothing imported"),
}


def outcome(job: ImportJob) -> str | None:
    """How a finished job ended, for a summary that does not contradict itself:
    ``file_refused`` (the file itself was refused, no row was judged), ``no_data`` (a header
    and no rows), ``rows_refused``, ``partial`` or ``complete``; None while running."""
    if job.status not in service.FINISHED:
        return None
    report = job.report or {}
    if report.get("file_error"):
        return "file_refused"
    if not job.rows_total and not job.error_count:
        return "no_data"
    if job.status == JobStatus.FAILED:
        return "rows_refused"
    return "partial" if job.error_count else "complete"


def progress(job: ImportJob) -> dict[str, Any]:
    """What the job page and its JSON status show; ``percent`` is None while unknown."""
    done = service.import_progress(job)
    ended = outcome(job)
    return {
        "id": job.id,
        "status": job.status,
        "status_label": str(
            OUTCOME_LABELS.get(ended or "") or STATUS_LABELS.get(job.status, job.status)
        ),
        "finished": done.finished,
        "outcome": ended,
        "percent": done.percent,
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
        recompute=recompute_state(_user()) if job.status in service.FINISHED else None,
        kind_labels=KIND_LABELS,
        report=job.report or {},
        message=report_message,
    )


@bp.route("/imports/<int:job_id>/status.json")
@login_required
@background
def import_status(job_id: int) -> Response:
    require_cs(_user())
    return _polled(progress(_job(job_id)))


def _polled(status: dict[str, Any]) -> Response:
    """A job's JSON status, which its page polls: never kept by a cache on the way."""
    response = jsonify(status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/imports/<int:job_id>/errors.csv")
@login_required
def import_errors(job_id: int) -> Response:
    require_cs(_user())
    job = _job(job_id)
    return Response(
        service.import_errors_csv(job, _report_wording()),
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


# --------------------------------------------------------------------------------------------
# Recompute now: fresh scores after an import, without waiting for the nightly run
# --------------------------------------------------------------------------------------------

RUN_STATUS_LABELS = {
    JobStatus.QUEUED: _l("Waiting to start"),
    JobStatus.RUNNING: _l("Computing health scores"),
    JobStatus.DONE: _l("Done"),
    JobStatus.FAILED: _l("Failed"),
}


def _run(run_id: int) -> RecomputeRun:
    run = db.session.get(RecomputeRun, run_id)
    if run is None:
        raise NotFound(str(_l("No such recompute.")))
    return run


def run_progress(run: RecomputeRun) -> dict[str, Any]:
    """What the run page and its JSON status show; ``percent`` is None until the accounts are
    counted."""
    done = service.run_progress(run)
    return {
        "id": run.id,
        "status": done.status,
        "status_label": str(RUN_STATUS_LABELS.get(done.status, done.status)),
        "finished": done.finished,
        "percent": done.percent,
        "accounts_done": run.accounts_done,
        "accounts_total": run.accounts_total,
    }


# The runs the portfolio's status line names, kept like the portfolio's body: a kept portfolio
# request reads the signed-in user and nothing else. Another process's run (a worker's) shows
# here within the TTL.
recompute_runs_cache: ChangeClearedCache[tuple[dict[str, Any] | None, ...]] = ChangeClearedCache(
    "cs_recompute_runs", (RecomputeRun,), "CS_PORTFOLIO_CACHE_SECONDS"
)


def _brief(run: RecomputeRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": service.run_state(run),
        "finished_at": run.finished_at or run.started_at,
    }


def recompute_state(user: User) -> dict[str, Any]:
    """What ``cs/_recompute_status.html`` shows: the run in progress or waiting, the last
    finished one, and whether ``user`` may start one."""
    unfinished, finished = recompute_runs_cache.kept(
        "latest", lambda: tuple(_brief(run) for run in service.recompute_runs(db.session))
    )
    return {
        "unfinished": unfinished,
        "finished": finished,
        "may_start": can(user, Action.MANAGE_CS),
    }


@bp.route("/recompute", methods=["POST"])
@login_required
def recompute_now() -> Response:
    """Queue today's recompute (or join the one waiting to start) and show its progress."""
    user = require_cs(_user(), Action.MANAGE_CS)
    run = service.start_recompute(db.session, user)
    run_id = run.id
    db.session.commit()  # the task is sent once the run is committed
    return redirect(url_for("cs.recompute_run", run_id=run_id))


@bp.route("/recompute/<int:run_id>")
@login_required
def recompute_run(run_id: int) -> str:
    require_cs(_user())
    run = _run(run_id)
    requested_by = db.session.get(User, run.requested_by_id) if run.requested_by_id else None
    counts = (run.summary or {}).get("bands") or {}
    bands = [f"{BAND_LABELS[b]} {counts[b]}" for b in ("green", "yellow", "red") if counts.get(b)]
    return render_template(
        "cs/recompute_run.html",
        run=run,
        progress=run_progress(run),
        requested_by=requested_by,
        bands=format_list(bands, locale=current_locale()) if bands else None,
    )


@bp.route("/recompute/<int:run_id>/status.json")
@login_required
@background
def recompute_status(run_id: int) -> Response:
    require_cs(_user())
    return _polled(run_progress(_run(run_id)))
