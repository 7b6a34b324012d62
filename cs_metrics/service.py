"""Customer-success services: CSV ingest, health recompute, overrides and health models.

Services take the session (and the acting user) and never commit; the task, CLI command or
view that calls them owns the transaction. The one exception is ``run_import``, which is a
job runner: it takes a *session factory* because an import needs two kinds of transaction --
one for all the data (all-or-nothing) and short ones that publish progress for a UI to poll.
"""

from __future__ import annotations

import os
import pickle
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Column, MetaData, Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cs_metrics import health, importers, signals, worklist
from cs_metrics.models import (
    AccountProfile,
    AlertStatus,
    Contact,
    HealthAlert,
    HealthModelVersion,
    HealthOverride,
    HealthSnapshot,
    ImportJob,
    Invoice,
    JobStatus,
    NpsResponse,
    NpsSource,
    Ticket,
    UsageEvent,
)
from portal.core.activity import record_activity, register_verbs
from portal.core.db import utcnow
from portal.core.errors import DomainError, NotFound, PermissionDenied
from portal.core.identity import Organization, OrgKind, User
from portal.core.permissions import Action, can

register_verbs("cs.alert_raised", "cs.override_set", "cs.health_model_saved")

BATCH_SIZE = 1000
REPORT_ERRORS = 200  # errors kept in the job's report (the full list is in the CSV download)
MAX_OVERRIDE_DAYS = 180
MAX_REASON = 2000
ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Permissions
# --------------------------------------------------------------------------------------------


def is_cs_staff(user: User | None) -> bool:
    """CSMs and vendor admins change CS data; product managers only read."""
    return can(user, Action.MANAGE_CS)


def _require_cs_staff(user: User | None) -> None:
    if not is_cs_staff(user):
        raise PermissionDenied(str(_l("Only customer success managers can do this.")))


def _require_vendor_admin(user: User | None) -> None:
    if not can(user, Action.CONFIGURE_CS):
        raise PermissionDenied(str(_l("Only vendor admins can change the health model.")))


# --------------------------------------------------------------------------------------------
# Imports: queue
# --------------------------------------------------------------------------------------------


def import_path(job_id: int) -> Path:
    """Where the uploaded file of job ``job_id`` is kept (outside the database)."""
    return Path(current_app.config["UPLOAD_DIR"]) / "imports" / f"{job_id}.csv"


def queue_import(
    session: Session,
    kind: str,
    filename: str,
    stream: IO[bytes],
    *,
    created_by: User | None = None,
    skip_invalid: bool = False,
    day_first: bool = False,
    max_bytes: int | None = importers.DEFAULT_MAX_BYTES,
) -> ImportJob:
    """Create a job and keep its file; no permission check (``start_import`` and the CLI do).

    The file is copied in chunks and refused past ``max_bytes`` before anything is parsed, so
    a 2 GB upload never reaches the parser or the database.
    """
    if kind not in importers.KINDS:
        raise DomainError(str(_l("Unknown import kind.")), field="kind")
    job = ImportJob(
        kind=kind,
        filename=os.path.basename(filename or "upload.csv")[:255] or "upload.csv",
        status=JobStatus.QUEUED,
        created_by_id=created_by.id if created_by is not None else None,
        options={
            "on_errors": "skip_rows" if skip_invalid else "reject_file",
            "day_first": bool(day_first),
        },
        report={},
    )
    session.add(job)
    session.flush()
    path = import_path(job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "wb") as out:
        while chunk := stream.read(1024 * 1024):
            written += len(chunk)
            if max_bytes is not None and written > max_bytes:
                out.close()
                path.unlink(missing_ok=True)
                raise DomainError(
                    str(
                        _l(
                            "The file is larger than %(mb)s MB.",
                            mb=round(max_bytes / 1024 / 1024),
                        )
                    ),
                    field="file",
                )
            out.write(chunk)
    return job


def start_import(
    session: Session,
    actor: User | None,
    kind: str,
    filename: str,
    stream: IO[bytes],
    *,
    skip_invalid: bool = False,
    day_first: bool = False,
) -> ImportJob:
    """A CSM uploads a file: keep it, and import it in a task once this transaction commits."""
    _require_cs_staff(actor)
    from cs_metrics.tasks import run_import_task  # tasks import this module
    from portal.core.tasks import enqueue_after_commit

    job = queue_import(
        session,
        kind,
        filename,
        stream,
        created_by=actor,
        skip_invalid=skip_invalid,
        day_first=day_first,
    )
    enqueue_after_commit(session, run_import_task, job.id)
    return job


def import_errors_csv(job: ImportJob) -> bytes:
    """The job's row report as CSV (``importers.errors_csv``: formula-safe, UTF-8 with BOM)."""
    report = importers.ValidationReport(kind=job.kind, complete=True)
    stored = job.report or {}
    file_error = stored.get("file_error")
    if file_error:
        report.file_error = importers.ImportFileError(
            file_error.get("field", "file"),
            file_error.get("code", ""),
            file_error.get("message", ""),
            {"line": file_error["line"]} if file_error.get("line") else None,
        )
    for e in stored.get("errors", []):
        report.errors.append(
            importers.RowError(
                e["line"], e["column"], e.get("field"), e["code"], e["message"], e["value"]
            )
        )
    report.error_count = job.error_count
    return importers.errors_csv(report)


# --------------------------------------------------------------------------------------------
# Imports: run
# --------------------------------------------------------------------------------------------


@dataclass
class _Lookups:
    """External ids resolved so far (bounded by the number of accounts and staff)."""

    orgs: dict[str, int | None] = field(default_factory=dict)
    staff: dict[str, int | None] = field(default_factory=dict)


def _report_json(report: importers.ValidationReport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "encoding": report.encoding,
        "delimiter": report.delimiter,
        "columns": list(report.columns),
        "rows_blank": report.rows_blank,
        "errors": [
            {
                "line": e.line,
                "column": e.column,
                "field": e.field,
                "code": e.code,
                "message": e.message,
                "value": e.value,
            }
            for e in report.errors[:REPORT_ERRORS]
        ],
        "errors_truncated": report.error_count > min(len(report.errors), REPORT_ERRORS),
        "warnings": [{"code": w.code, "message": w.message} for w in report.warnings],
    }
    if report.file_error is not None:
        error = report.file_error
        out["file_error"] = {
            "field": error.field,
            "code": error.code,
            "message": error.message,
            "line": error.params.get("line"),
        }
    return out


def _row_error(
    report: importers.ValidationReport, record: Any, column: str, field_name: str, code: str,
    message: str, value: str,
) -> None:  # fmt: skip
    report.error_count += 1
    report.rows_valid -= 1
    if len(report.errors) < report.max_errors:
        report.errors.append(
            importers.RowError(record.line, column, field_name, code, message, value)
        )


def _resolve_orgs(session: Session, ids: Iterable[str], lookups: _Lookups) -> None:
    wanted = {i for i in ids if i not in lookups.orgs}
    if not wanted:
        return
    found = dict(
        session.execute(
            select(AccountProfile.external_id, AccountProfile.organization_id).where(
                AccountProfile.external_id.in_(wanted)
            )
        ).all()
    )
    for ext in wanted:
        lookups.orgs[ext] = found.get(ext)


def _resolve_staff(session: Session, emails: Iterable[str], lookups: _Lookups) -> None:
    wanted = {e for e in emails if e not in lookups.staff}
    if not wanted:
        return
    found = dict(
        session.execute(
            select(User.email, User.id)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.email.in_(wanted), Organization.kind == OrgKind.VENDOR)
        ).all()
    )
    for email in wanted:
        lookups.staff[email] = found.get(email)


def _check_references(
    session: Session,
    kind: str,
    batch: Sequence[Any],
    report: importers.ValidationReport,
    lookups: _Lookups,
    bad_lines: set[int],
) -> None:
    """Row errors the file alone cannot show: unknown account ids and unknown CSM emails."""
    if kind == "accounts":
        if "csm_email" not in report.columns:
            return
        _resolve_staff(session, (r.csm_email for r in batch if r.csm_email), lookups)
        for r in batch:
            if r.csm_email and lookups.staff[r.csm_email] is None:
                bad_lines.add(r.line)
                _row_error(
                    report, r, "csm_email", "csm_email", "unknown_csm",
                    "no vendor staff member has this email", r.csm_email,
                )  # fmt: skip
        return
    _resolve_orgs(session, (r.account_external_id for r in batch), lookups)
    for r in batch:
        if lookups.orgs[r.account_external_id] is None:
            bad_lines.add(r.line)
            _row_error(
                report, r, "account_external_id", "account_external_id", "unknown_account",
                "no account has this id: import the accounts first", r.account_external_id,
            )  # fmt: skip


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are written for PostgreSQL and SQLite, not {dialect}")


def _upsert(
    session: Session,
    model: Any,
    rows: list[dict[str, Any]],
    keys: Sequence[str],
    update_columns: Sequence[str],
    extra_set: Mapping[str, Any] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the given columns, only where a value differs,
    so a re-import of the same file writes nothing (no dead rows, ``updated_at`` kept)."""
    if not rows:
        return
    table: Table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        _upsert_via_copy(session, table, rows, keys, update_columns, extra_set)
        return
    stmt = _insert(session, table)
    excluded = stmt.excluded
    cols = [c for c in update_columns if c not in keys]
    if cols:
        set_ = {c: excluded[c] for c in cols}
        set_.update(extra_set or {})
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_=set_,
            where=or_(*(table.c[c].is_distinct_from(excluded[c]) for c in cols)),
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    # RETURNING makes SQLAlchemy send multi-row VALUES pages ("insertmanyvalues") instead of
    # one statement per row: about 5x faster on PostgreSQL.
    session.execute(stmt.returning(table.c[keys[0]]), rows).close()


def _upsert_via_copy(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    keys: Sequence[str],
    update_columns: Sequence[str],
    extra_set: Mapping[str, Any] | None,
) -> None:
    """PostgreSQL: COPY the batch into a session-local staging table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE changed``. Multi-row VALUES spent
    most of its time building and parsing 5,000-parameter statements; COPY has none."""
    names = list(rows[0])  # our column names, never user text: safe to splice into SQL
    staging_name = f"cs_stage_{table.name}"
    connection = session.connection()
    create_sql = (
        f"CREATE TEMP TABLE IF NOT EXISTS {staging_name} AS "  # noqa: S608
        f"SELECT {', '.join(names)} FROM {table.name} WITH NO DATA"
    )
    connection.exec_driver_sql(create_sql)
    driver = connection.connection.driver_connection
    copy_sql = f"COPY {staging_name} ({', '.join(names)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(tuple(row.values()))
    staging = Table(staging_name, MetaData(), *(Column(n, table.c[n].type) for n in names))
    stmt = postgresql.insert(table).from_select(names, select(*(staging.c[n] for n in names)))
    cols = [c for c in update_columns if c not in keys]
    if cols:
        set_ = {c: stmt.excluded[c] for c in cols}
        set_.update(extra_set or {})
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_=set_,
            where=or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in cols)),
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt)
    connection.exec_driver_sql(f"DELETE FROM {staging_name}")  # noqa: S608


_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


def _slug(external_id: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", external_id).encode("ascii", "ignore").decode()
    slug = _SLUG_CHARS.sub("-", ascii_text.lower()).strip("-")[:56]
    return slug or "account"


def _ensure_orgs(
    session: Session, records: Sequence[importers.AccountRow], lookups: _Lookups
) -> None:
    """Create the customer organizations the batch's new accounts need; rename changed ones.

    A new account is linked to an existing customer organization whose slug is the slug of
    its external id and that has no CS profile yet (the demo organizations), else created.
    """
    _resolve_orgs(session, (r.external_id for r in records), lookups)
    known = {lookups.orgs[r.external_id]: r.name for r in records if lookups.orgs[r.external_id]}
    if known:
        names = dict(
            session.execute(
                select(Organization.id, Organization.name).where(Organization.id.in_(known))
            ).all()
        )
        renames = [
            {"id": org_id, "name": name[:120]}
            for org_id, name in known.items()
            if names.get(org_id) != name[:120]
        ]
        if renames:
            session.execute(update(Organization), renames)
    new = [r for r in records if lookups.orgs[r.external_id] is None]
    if not new:
        return
    wanted = {r.external_id: _slug(r.external_id) for r in new}
    taken = _slugs_taken(session, set(wanted.values()))
    to_create: list[dict[str, Any]] = []
    used: set[str] = set()
    for r in new:
        base = wanted[r.external_id]
        match = taken.get(base)
        linkable = match is not None and match[1] is None and match[2] == OrgKind.CUSTOMER
        if linkable and base not in used:
            assert match is not None
            lookups.orgs[r.external_id] = match[0]
            used.add(base)
            continue
        slug = base
        if slug in taken or slug in used:
            taken.update(_slugs_taken(session, {f"{base}-{n}" for n in range(2, 1000)}))
            slug = next(f"{base}-{n}" for n in range(2, 10**6) if f"{base}-{n}" not in taken
                        and f"{base}-{n}" not in used)  # fmt: skip
        used.add(slug)
        to_create.append({"name": r.name[:120], "slug": slug, "kind": OrgKind.CUSTOMER})
    if to_create:
        created = session.execute(
            _insert(session, Organization.__table__).returning(
                Organization.__table__.c.id, Organization.__table__.c.slug
            ),
            to_create,
        ).all()
        by_slug = {slug: org_id for org_id, slug in created}
        it = iter(to_create)
        for r in new:
            if lookups.orgs[r.external_id] is None:
                lookups.orgs[r.external_id] = by_slug[next(it)["slug"]]


def _slugs_taken(session: Session, slugs: set[str]) -> dict[str, tuple[int, int | None, str]]:
    """slug -> (organization id, its CS profile's organization id or None, kind)."""
    rows = session.execute(
        select(
            Organization.slug, Organization.id, AccountProfile.organization_id, Organization.kind
        )
        .outerjoin(AccountProfile, AccountProfile.organization_id == Organization.id)
        .where(Organization.slug.in_(slugs))
    )
    return {slug: (org_id, profile, kind) for slug, org_id, profile, kind in rows}


def _account_rows(
    records: Sequence[importers.AccountRow], columns: Sequence[str], lookups: _Lookups
) -> tuple[list[dict[str, Any]], list[str]]:
    present = [c for c in columns if c not in ("name", "csm_email")]
    if "csm_email" in columns:
        present.append("csm_id")
    rows = []
    now = utcnow()
    for r in records:
        row: dict[str, Any] = {
            "organization_id": lookups.orgs[r.external_id],
            "external_id": r.external_id,
            "updated_at": now,
        }
        for c in present:
            row[c] = (
                lookups.staff.get(r.csm_email)
                if c == "csm_id" and r.csm_email
                else (None if c == "csm_id" else getattr(r, c))
            )
        rows.append(row)
    return rows, present


def _record_rows(
    kind: str, records: Sequence[Any], columns: Sequence[str], lookups: _Lookups
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(rows, conflict keys, columns to update) for a non-account kind."""
    present = [c for c in columns if c != "account_external_id"] + ["organization_id"]
    rows = []
    for r in records:
        row = r._asdict()
        del row["line"]
        row["organization_id"] = lookups.orgs[row.pop("account_external_id")]
        if kind == "usage_events":
            row["value"] = float(row["value"])
        elif kind == "nps_responses":
            row["source"] = NpsSource.IMPORT
        rows.append(row)
    keys = ["organization_id", "day", "metric"] if kind == "usage_events" else ["external_id"]
    return rows, keys, present


_MODELS: dict[str, Any] = {
    "contacts": Contact,
    "usage_events": UsageEvent,
    "tickets": Ticket,
    "invoices": Invoice,
    "nps_responses": NpsResponse,
}


def _dedupe(kind: str, batch: Sequence[Any], lookups: _Lookups) -> list[Any]:
    """Later rows win within a batch (ON CONFLICT cannot touch one row twice in a statement)."""
    if kind == "usage_events":
        keyed = {(lookups.orgs[r.account_external_id], r.day, r.metric): r for r in batch}
    else:
        keyed = {r.external_id: r for r in batch}
    return list(keyed.values())


def _import_batch(
    session: Session, kind: str, batch: Sequence[Any], columns: Sequence[str], lookups: _Lookups
) -> None:
    if kind == "accounts":
        records = _dedupe(kind, batch, lookups)
        _ensure_orgs(session, records, lookups)
        rows, present = _account_rows(records, columns, lookups)
        _upsert(session, AccountProfile, rows, ["organization_id"], ["external_id", *present],
                {"updated_at": utcnow()})  # fmt: skip
        return
    _resolve_orgs(session, (r.account_external_id for r in batch), lookups)
    batch = [r for r in batch if lookups.orgs[r.account_external_id] is not None]
    rows, keys, present = _record_rows(kind, _dedupe(kind, batch, lookups), columns, lookups)
    _upsert(session, _MODELS[kind], rows, keys, present)


def _set_job(session_factory: Callable[[], Session], job_id: int, **values: Any) -> None:
    with session_factory() as s:
        s.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))
        s.commit()


def _open(path: Path) -> IO[bytes]:
    return open(path, "rb")  # noqa: SIM115 - closed by the callers' with blocks


def _spooled(path: Path) -> Iterator[list[Any]]:
    """The batches pass 1 validated, read back from the spool file (one batch in memory)."""
    with open(path, "rb") as spool:
        while True:
            try:
                yield pickle.load(spool)  # noqa: S301 - our own file, written just before
            except EOFError:
                return


def run_import(
    session_factory: Callable[[], Session],
    job_id: int,
    progress_callback: ProgressCallback | None = None,
) -> ImportJob:
    """Validate the whole file, then upsert it in batches; returns the finished job (detached).

    1. Validation pass: every row parsed and checked, account ids (and CSM emails) looked up
       one query per batch. With errors and ``reject_file`` the job fails here and nothing is
       written. The valid records are spooled to a pickle file beside the upload (batch by
       batch, bounded memory) so the second pass does not parse the CSV again: parsing is
       most of the cost (see bench/cs_import.py).
    2. Import pass: the spooled batches are upserted ``BATCH_SIZE`` rows at a time in
       ONE data transaction, committed at the end together with the job's ``done`` status; a
       database error rolls all of it back and fails the job.
    3. Progress (``rows_total`` while validating, ``rows_done`` while importing) is committed
       after each batch in separate short transactions, except on SQLite where a second writer
       would wait for the data transaction's lock (there it is only reported to
       ``progress_callback``).

    Safe to run again (a retried task): finished jobs are returned as they are, and upserts by
    external id make a half-done run harmless.
    """
    with session_factory() as s:
        job = s.get(ImportJob, job_id)
        if job is None:
            raise NotFound(str(_l("No such import.")))
        if job.status in (JobStatus.DONE, JobStatus.FAILED):
            s.expunge(job)
            return job
        kind, options = job.kind, dict(job.options or {})
        job.status, job.started_at = JobStatus.VALIDATING, utcnow()
        s.commit()
        dialect = s.get_bind().dialect.name
    publish = dialect != "sqlite"
    path = import_path(job_id)
    reject = options.get("on_errors", "reject_file") == "reject_file"
    day_first = bool(options.get("day_first"))
    lookups = _Lookups()
    bad_lines: set[int] = set()

    def finish(status: str, report: importers.ValidationReport, **extra: Any) -> ImportJob:
        with session_factory() as s:
            s.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    status=status,
                    rows_total=report.rows_total,
                    rows_valid=report.rows_valid,
                    error_count=report.error_count,
                    report=_report_json(report),
                    finished_at=utcnow(),
                    **extra,
                )
            )
            s.commit()
            done = s.get(ImportJob, job_id)
            assert done is not None
            s.expunge(done)
            return done

    # -- pass 1: validate everything, spooling the valid records -----------------------------
    report = importers.ValidationReport(kind=kind)
    spool_path = path.with_suffix(".spool")
    try:
        with _open(path) as f, session_factory() as s, open(spool_path, "wb") as spool:
            vs = importers.validate_stream(kind, f, day_first=day_first, max_bytes=None)
            report = vs.report
            for batch in vs.batches(BATCH_SIZE):
                _check_references(s, kind, batch, report, lookups, bad_lines)
                if bad_lines:
                    batch = [r for r in batch if r.line not in bad_lines]
                if not (report.error_count and reject):
                    pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
                if publish:
                    _set_job(session_factory, job_id, rows_total=report.rows_total)
            s.rollback()
    except importers.ImportFileError as error:
        spool_path.unlink(missing_ok=True)
        report.file_error = error
        report.complete = True
        return finish(JobStatus.FAILED, report)
    except OSError:
        spool_path.unlink(missing_ok=True)
        report.file_error = importers.ImportFileError(
            "file", "missing_file", "the uploaded file is no longer available"
        )
        return finish(JobStatus.FAILED, report)
    if report.error_count and reject:
        spool_path.unlink(missing_ok=True)
        return finish(JobStatus.FAILED, report)

    # -- pass 2: import in one transaction -----------------------------------------------------
    valid_total = report.rows_valid
    if publish:
        _set_job(
            session_factory, job_id, status=JobStatus.IMPORTING, rows_total=report.rows_total,
            rows_valid=valid_total,
        )  # fmt: skip
    done = 0
    data = session_factory()
    try:
        columns = report.columns
        for batch in _spooled(spool_path):
            _import_batch(data, kind, batch, columns, lookups)
            done += len(batch)
            if publish:
                _set_job(session_factory, job_id, rows_done=done)
            if progress_callback is not None:
                progress_callback(done, valid_total)
        if kind == "nps_responses":
            # Detractors just imported get their close-the-loop task now, not tonight.
            worklist.open_loop_tasks(data, utcnow() - worklist.LOOKBACK)
        data.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                status=JobStatus.DONE,
                rows_total=report.rows_total,
                rows_valid=report.rows_valid,
                rows_done=done,
                error_count=report.error_count,
                report=_report_json(report),
                finished_at=utcnow(),
            )
        )
        data.commit()
    except (SQLAlchemyError, importers.ImportFileError, OSError) as error:
        data.rollback()
        data.close()
        spool_path.unlink(missing_ok=True)
        report.file_error = importers.ImportFileError(
            "file", "database_error", f"nothing was imported: {type(error).__name__}"
        )
        return finish(JobStatus.FAILED, report, rows_done=0)
    data.close()
    spool_path.unlink(missing_ok=True)
    with session_factory() as s:
        finished = s.get(ImportJob, job_id)
        assert finished is not None
        s.expunge(finished)
    return finished


# --------------------------------------------------------------------------------------------
# Health models
# --------------------------------------------------------------------------------------------


def model_to_config(model: health.HealthModel) -> dict[str, Any]:
    """A JSON-ready form of a model (what ``HealthModelVersion.config`` stores)."""
    components = []
    for c in model.components:
        if isinstance(c.scale, health.Linear):
            scale: dict[str, Any] = {
                "type": "linear", "at_0": c.scale.at_0, "at_100": c.scale.at_100,
            }  # fmt: skip
        else:
            scale = {"type": "thresholds", "steps": [list(s) for s in c.scale.steps]}
        components.append({"name": c.name, "weight": c.weight, "scale": scale})
    return {
        "components": components,
        "bands": {"green_min": model.bands.green_min, "yellow_min": model.bands.yellow_min},
    }


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise health.HealthModelError(where, "not_a_number", "must be a number")
    return float(value)


def model_from_config(version: str, config: Mapping[str, Any]) -> health.HealthModel:
    """Build (and so validate) a model; ``HealthModelError`` names the offending field."""
    if not isinstance(config, Mapping):
        raise health.HealthModelError("config", "not_an_object", "must be an object")
    raw_components = config.get("components")
    if not isinstance(raw_components, list):
        raise health.HealthModelError("components", "not_a_list", "must be a list")
    components = []
    for i, raw in enumerate(raw_components):
        where = f"components[{i}]"
        if not isinstance(raw, Mapping):
            raise health.HealthModelError(where, "not_an_object", "must be an object")
        scale_raw = raw.get("scale")
        if not isinstance(scale_raw, Mapping):
            raise health.HealthModelError(f"{where}.scale", "not_an_object", "must be an object")
        scale: health.Linear | health.Thresholds
        if scale_raw.get("type") == "linear":
            scale = health.Linear(
                _number(scale_raw.get("at_0"), f"{where}.scale.at_0"),
                _number(scale_raw.get("at_100"), f"{where}.scale.at_100"),
            )
        elif scale_raw.get("type") == "thresholds":
            steps = scale_raw.get("steps")
            if not isinstance(steps, list) or not all(
                isinstance(s, list | tuple) and len(s) == 2 for s in steps
            ):
                raise health.HealthModelError(
                    f"{where}.scale.steps", "not_pairs", "must be a list of [bound, score]"
                )
            scale = health.Thresholds(
                tuple(
                    (
                        _number(b, f"{where}.scale.steps[{j}].bound"),
                        _number(s, f"{where}.scale.steps[{j}].score"),
                    )
                    for j, (b, s) in enumerate(steps)
                )
            )
        else:
            raise health.HealthModelError(
                f"{where}.scale.type", "unknown_scale", "must be linear or thresholds"
            )
        components.append(
            health.Component(
                str(raw.get("name", "")), _number(raw.get("weight"), f"{where}.weight"), scale
            )
        )
    bands_raw = config.get("bands") or {}
    if not isinstance(bands_raw, Mapping):
        raise health.HealthModelError("bands", "not_an_object", "must be an object")
    bands = health.Bands(
        _number(bands_raw.get("green_min", health.DEFAULT_BANDS.green_min), "bands.green_min"),
        _number(bands_raw.get("yellow_min", health.DEFAULT_BANDS.yellow_min), "bands.yellow_min"),
    )
    return health.HealthModel(version, tuple(components), bands)


def active_model(session: Session) -> health.HealthModel:
    row = session.scalars(
        select(HealthModelVersion)
        .where(HealthModelVersion.active.is_(True))
        .order_by(HealthModelVersion.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return health.DEFAULT_MODEL
    return model_from_config(row.version, row.config)


def save_health_model(
    session: Session, actor: User | None, config: Mapping[str, Any]
) -> HealthModelVersion:
    """Validate and store a new model version and make it the active one.

    Snapshots keep the version they were computed with, so charts can mark the change; the
    previous versions stay for that reason (deactivated, never edited).
    """
    _require_vendor_admin(actor)
    assert actor is not None
    count = session.scalar(select(HealthModelVersion.id).order_by(HealthModelVersion.id.desc()))
    version = f"v{(count or 0) + 1}"
    try:
        model = model_from_config(version, config)
    except health.HealthModelError as error:
        raise DomainError(
            str(
                _l(
                    "The health model is not valid: %(field)s %(reason)s",
                    field=error.field,
                    reason=error.message,
                )
            ),
            field=error.field,
        ) from None
    session.execute(
        update(HealthModelVersion).where(HealthModelVersion.active.is_(True)).values(active=False)
    )
    row = HealthModelVersion(
        version=version, config=model_to_config(model), created_by_id=actor.id, active=True
    )
    session.add(row)
    session.flush()
    record_activity(
        session, actor, actor.organization, "cs.health_model_saved", row, {"version": version}
    )
    return row


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def _customer_org(session: Session, org_id: int) -> Organization:
    org = session.get(Organization, org_id)
    if org is None or org.kind != OrgKind.CUSTOMER:
        raise NotFound(str(_l("No such account.")))
    return org


def active_override(session: Session, org_id: int, now: datetime | None = None) -> HealthOverride:
    now = now or utcnow()
    return session.scalars(
        select(HealthOverride)
        .where(
            HealthOverride.organization_id == org_id,
            HealthOverride.revoked_at.is_(None),
            HealthOverride.expires_at > now,
        )
        .order_by(HealthOverride.id.desc())
        .limit(1)
    ).first()


def set_override(
    session: Session,
    actor: User | None,
    org_id: int,
    score: float,
    reason: str,
    expires_at: datetime,
) -> HealthOverride:
    """A CSM's score for an account until ``expires_at``; replaces the account's active one.

    Kept apart from snapshots, so the nightly recompute applies it again instead of wiping it;
    the latest snapshot is updated at once so the account shows it before the next run.
    """
    _require_cs_staff(actor)
    assert actor is not None
    org = _customer_org(session, org_id)
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(str(_l("Give a reason for the override.")), field="reason")
    if len(reason) > MAX_REASON:
        raise DomainError(
            str(_l("The reason is too long (at most %(n)s characters).", n=MAX_REASON)),
            field="reason",
        )
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 100:
        raise DomainError(str(_l("The score must be between 0 and 100.")), field="score")
    now = utcnow()
    if expires_at.tzinfo is None:
        raise DomainError(str(_l("The expiry needs a time zone.")), field="expires_at")
    if expires_at <= now:
        raise DomainError(str(_l("The expiry must be in the future.")), field="expires_at")
    if expires_at > now + timedelta(days=MAX_OVERRIDE_DAYS):
        raise DomainError(
            str(_l("An override lasts at most %(days)s days.", days=MAX_OVERRIDE_DAYS)),
            field="expires_at",
        )
    session.execute(
        update(HealthOverride)
        .where(
            HealthOverride.organization_id == org_id,
            HealthOverride.revoked_at.is_(None),
            HealthOverride.expires_at > now,
        )
        .values(revoked_at=now)
    )
    override = HealthOverride(
        organization_id=org_id,
        score=float(score),
        reason=reason,
        expires_at=expires_at.astimezone(UTC),
        created_by_id=actor.id,
        created_at=now,
    )
    session.add(override)
    session.flush()
    latest = _latest_snapshot(session, org_id)
    if latest is not None:
        bands = active_model(session).bands
        latest.effective_score = override.score
        latest.effective_band = bands.band(override.score).value
        latest.override_id = override.id
        session.flush()
    record_activity(
        session, actor, org, "cs.override_set", override,
        {"score": override.score, "expires_at": override.expires_at.isoformat()},
    )  # fmt: skip
    return override


def revoke_override(session: Session, actor: User | None, org_id: int) -> None:
    """End the account's active override now (the computed score shows from the next run)."""
    _require_cs_staff(actor)
    _customer_org(session, org_id)
    override = active_override(session, org_id)
    if override is not None:
        override.revoked_at = utcnow()
        latest = _latest_snapshot(session, org_id)
        if latest is not None and latest.override_id == override.id:
            latest.effective_score, latest.effective_band = latest.score, latest.band
            latest.override_id = None
        session.flush()


def _latest_snapshot(session: Session, org_id: int) -> HealthSnapshot | None:
    return session.scalars(
        select(HealthSnapshot)
        .where(HealthSnapshot.organization_id == org_id)
        .order_by(HealthSnapshot.day.desc())
        .limit(1)
    ).first()


# --------------------------------------------------------------------------------------------
# Recompute
# --------------------------------------------------------------------------------------------


@dataclass
class RecomputeResult:
    day: date
    accounts: int = 0
    scored: int = 0
    no_data: int = 0
    overridden: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    alerts_raised: int = 0
    model_version: str = ""


def _explanation(score: health.HealthScore) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "raw": c.raw,
            "score": c.score,
            "weight": c.weight,
            "configured_share": c.configured_share,
            "share": c.share,
            "contribution": c.contribution,
            "missing": c.missing,
        }
        for c in score.components
    ]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def recompute(
    session: Session,
    day: date | None = None,
    progress: ProgressCallback | None = None,
    *,
    progress_every: int = 500,
) -> RecomputeResult:
    """Score every customer account for ``day`` (default today, UTC) and raise alerts.

    Signals come from ``cs_metrics.signals`` (one grouped query each); scoring is pure Python
    (``health.score_account``); snapshots are upserted, so running twice a day replaces the
    day's figures. Active overrides give the effective score beside the computed one. Alerts
    look at the computed scores of the last 31 days (an override must not hide a falling
    account) and open at most one alert per kind per account.
    """
    day = day or utcnow().date()
    now = utcnow()
    model = active_model(session)
    result = RecomputeResult(day=day, model_version=model.version)
    org_ids = list(
        session.scalars(
            select(Organization.id)
            .where(Organization.kind == OrgKind.CUSTOMER)
            .order_by(Organization.id)
        )
    )
    result.accounts = len(org_ids)
    collected = signals.collect(session, day)
    overrides: dict[int, HealthOverride] = {}
    for o in session.scalars(
        select(HealthOverride)
        .where(HealthOverride.revoked_at.is_(None), HealthOverride.expires_at > now)
        .order_by(HealthOverride.id)
    ):
        overrides[o.organization_id] = o  # the newest wins

    rows: list[dict[str, Any]] = []
    for i, org_id in enumerate(org_ids, 1):
        computed = health.score_account(model, collected.for_account(org_id))
        ov = overrides.get(org_id)
        effective = health.effective_health(
            computed,
            health.Override(ov.score, ov.reason, ov.expires_at) if ov is not None else None,
            now,
        )
        if computed.score is None:
            result.no_data += 1
        else:
            result.scored += 1
        if effective.overridden:
            result.overridden += 1
        if effective.band is not None:
            result.bands[effective.band.value] = result.bands.get(effective.band.value, 0) + 1
        rows.append(
            {
                "organization_id": org_id,
                "day": day,
                "score": computed.score,
                "band": computed.band.value if computed.band else None,
                "complete": computed.complete,
                "model_version": model.version,
                "components": _explanation(computed),
                "effective_score": effective.score,
                "effective_band": effective.band.value if effective.band else None,
                "override_id": ov.id if effective.overridden and ov is not None else None,
                "computed_at": now,
            }
        )
        if progress is not None and (i % progress_every == 0 or i == len(org_ids)):
            progress(i, len(org_ids))
    for chunk in _chunks(rows, BATCH_SIZE):
        stmt = _insert(session, HealthSnapshot.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["organization_id", "day"],
            set_={c: stmt.excluded[c] for c in chunk[0] if c not in ("organization_id", "day")},
        )
        session.execute(stmt, list(chunk))
    result.alerts_raised = _raise_alerts(session, day)
    worklist.open_loop_tasks(session, now - worklist.LOOKBACK)
    return result


def _raise_alerts(session: Session, day: date) -> int:
    """The alert rules (``cs_metrics.playbooks``) over the day's metrics: the shipped defaults
    are seeded first (idempotent), among them "health band change or 15-point drop", which
    replaced the hard-coded ``health.check_alerts`` alerts. Returns the alerts opened."""
    from cs_metrics import playbooks

    playbooks.ensure_default_rules(session)
    return playbooks.evaluate_rules(session, day)


def close_alert(session: Session, actor: User | None, alert_id: int) -> HealthAlert:
    """A CSM closes an alert they dealt with (``playbooks.close_alert``: own-book aware)."""
    from cs_metrics import playbooks

    return playbooks.close_alert(session, actor, alert_id)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def explain(session: Session, org_id: int, *, history_days: int = 90) -> dict[str, Any]:
    """An account's latest health with its explanation, its active override, its open alerts
    and the history (each point with its model version, so a chart can mark model changes)."""
    _customer_org(session, org_id)
    latest = _latest_snapshot(session, org_id)
    override = active_override(session, org_id)
    history: list[dict[str, Any]] = []
    if latest is not None:
        history = [
            {
                "day": s.day,
                "score": s.score,
                "band": s.band,
                "effective_score": s.effective_score,
                "effective_band": s.effective_band,
                "overridden": s.override_id is not None,
                "model_version": s.model_version,
            }
            for s in session.scalars(
                select(HealthSnapshot)
                .where(
                    HealthSnapshot.organization_id == org_id,
                    HealthSnapshot.day > latest.day - timedelta(days=history_days),
                )
                .order_by(HealthSnapshot.day)
            )
        ]
    alerts = session.scalars(
        select(HealthAlert)
        .where(HealthAlert.organization_id == org_id, HealthAlert.status == AlertStatus.OPEN)
        .order_by(HealthAlert.day.desc())
    ).all()
    return {
        "organization_id": org_id,
        "latest": None
        if latest is None
        else {
            "day": latest.day,
            "score": latest.score,
            "band": latest.band,
            "complete": latest.complete,
            "model_version": latest.model_version,
            "components": latest.components,
            "effective_score": latest.effective_score,
            "effective_band": latest.effective_band,
        },
        "override": None
        if override is None
        else {
            "score": override.score,
            "reason": override.reason,
            "expires_at": override.expires_at,
            "created_by_id": override.created_by_id,
            "created_at": override.created_at,
        },
        "history": history,
        "alerts": [{"kind": a.kind, "day": a.day, "details": a.details} for a in alerts],
    }


__all__ = [
    "RecomputeResult",
    "active_model",
    "active_override",
    "close_alert",
    "explain",
    "import_errors_csv",
    "import_path",
    "is_cs_staff",
    "model_from_config",
    "model_to_config",
    "queue_import",
    "recompute",
    "revoke_override",
    "run_import",
    "save_health_model",
    "set_override",
    "start_import",
]
