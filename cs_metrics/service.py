"""Customer-success services: CSV ingest, health recompute, overrides and health models.

Services take the session (and the acting user) and never commit; the task, CLI command or
view that calls them owns the transaction. The one exception is ``run_import``, which is a
job runner: it takes a *session factory* because an import needs two kinds of transaction --
one for all the data (all-or-nothing) and short ones that publish progress for a UI to poll.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle  # nosec B403
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Column, Integer, MetaData, Table, func, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from cs_metrics import health, health_messages, importers, signals, worklist
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
    RecomputeRun,
    Ticket,
    UsageEvent,
)
from portal.core.activity import record_activity, register_verbs
from portal.core.bulk import bulk_insert, cycle_collection_paused, dialect_insert
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
# An import or a recompute run in one of these states will not change any more.
FINISHED = (JobStatus.DONE, JobStatus.FAILED)


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


def import_errors_csv(
    job: ImportJob, wording: importers.ReportWording = importers.ENGLISH_REPORT
) -> bytes:
    """The job's row report as CSV (``importers.errors_csv``: formula-safe, UTF-8 with BOM),
    each problem worded by ``wording`` from its stored code and parameters."""
    report = importers.ValidationReport(kind=job.kind, complete=True)
    stored = job.report or {}
    file_error = stored.get("file_error")
    if file_error:
        params = dict(file_error.get("params") or {})
        if file_error.get("line"):
            params.setdefault("line", file_error["line"])
        report.file_error = importers.ImportFileError(
            file_error.get("field", "file"),
            file_error.get("code", ""),
            file_error.get("message", ""),
            params,
        )
    for e in stored.get("errors", []):
        report.errors.append(
            importers.RowError(
                e["line"],
                e["column"],
                e.get("field"),
                e["code"],
                e["message"],
                e["value"],
                e.get("params") or {},
            )
        )
    report.error_count = job.error_count
    return importers.errors_csv(report, wording)


# --------------------------------------------------------------------------------------------
# Imports: run
# --------------------------------------------------------------------------------------------


@dataclass
class _Lookups:
    """External ids resolved so far (bounded by the number of accounts and staff)."""

    orgs: dict[str, int | None] = field(default_factory=dict)
    staff: dict[str, int | None] = field(default_factory=dict)
    all_orgs: bool = False
    """``orgs`` holds every account: an id not in it is unknown, no query needed."""


def _json_params(params: Any) -> dict[str, Any]:
    """A problem's parameters as JSON holds them, for the pages to word it in the reader's
    language (``cs_metrics.views.imports.report_message``)."""
    return json.loads(json.dumps(dict(params or {}), default=str))


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
                "params": _json_params(e.params),
            }
            for e in report.errors[:REPORT_ERRORS]
        ],
        "errors_truncated": report.error_count > min(len(report.errors), REPORT_ERRORS),
        "warnings": [
            {"code": w.code, "message": w.message, "params": _json_params(w.params)}
            for w in report.warnings
        ],
    }
    if report.file_error is not None:
        error = report.file_error
        out["file_error"] = {
            "field": error.field,
            "code": error.code,
            "message": error.message,
            "line": error.params.get("line"),
            "params": _json_params(error.params),
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


PREFETCH_ACCOUNTS = 100_000  # up to this many accounts, an import loads every id up front


def _prefetch_orgs(session: Session, lookups: _Lookups) -> None:
    """Every account id in one query, rather than one query per batch of rows."""
    rows = session.execute(
        select(AccountProfile.external_id, AccountProfile.organization_id).limit(
            PREFETCH_ACCOUNTS + 1
        )
    ).all()
    if len(rows) <= PREFETCH_ACCOUNTS:
        lookups.orgs.update(rows)
        lookups.all_orgs = True


def _resolve_orgs(session: Session, ids: Iterable[str], lookups: _Lookups) -> None:
    wanted = {i for i in ids if i not in lookups.orgs}
    if not wanted:
        return
    if lookups.all_orgs:
        lookups.orgs.update(dict.fromkeys(wanted))
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


def _upsert(
    session: Session,
    model: Any,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]] | bytes,
    keys: Sequence[str],
    update_columns: Sequence[str],
    extra_set: Mapping[str, Any] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the given columns, only where a value differs,
    so a re-import of the same file writes nothing (no dead rows, ``updated_at`` kept).

    Each row is the values of ``names`` followed by its line in the file: when a key repeats
    the last line wins (ON CONFLICT cannot touch one row twice in a statement). On PostgreSQL
    the rows may already be COPY text (``_copy_text``, built while validating)."""
    if not rows:
        return
    table: Table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        payload = rows if isinstance(rows, bytes) else _copy_text(rows)
        _upsert_via_copy(session, table, names, payload, keys, update_columns, extra_set)
        return
    assert not isinstance(rows, bytes)
    at = [names.index(k) for k in keys]
    latest = {tuple(row[i] for i in at): row for row in rows}
    params = [dict(zip(names, row, strict=False)) for row in latest.values()]  # minus the line
    stmt = dialect_insert(session, table)
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
    # one statement per row.
    session.execute(stmt.returning(table.c[keys[0]]), params).close()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):  # StrEnum members too: their value
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, date):  # and datetime: ISO 8601 with its offset
        return value.isoformat()
    return str(value)  # int, float, Decimal


# Per exact type, C-level callables: no Python call per cell on the fast path.
_COPY_FORMATS: dict[type, Callable[[Any], str]] = {
    str: methodcaller("translate", _COPY_ESCAPES),
    int: int.__repr__,
    float: float.__repr__,
    Decimal: Decimal.__str__,
    date: date.isoformat,
    datetime: datetime.isoformat,
    type(None): "\\N".format,
}


def _copy_text(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows in PostgreSQL's COPY text format. Built in the validation pass, so the import pass
    hands PostgreSQL bytes without touching a row in Python."""
    if not rows:
        return b""
    formats = _COPY_FORMATS
    try:
        lines = ["\t".join([formats[v.__class__](v) for v in row]) for row in rows]
    except KeyError:  # a subclass (a StrEnum member, a bool): the slow way
        lines = ["\t".join(map(_copy_cell, row)) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _upsert_via_copy(
    session: Session,
    table: Table,
    names: Sequence[str],
    payload: bytes,
    keys: Sequence[str],
    update_columns: Sequence[str],
    extra_set: Mapping[str, Any] | None,
) -> None:
    """PostgreSQL: COPY the rows into a transaction-local staging table, then one
    ``INSERT ... SELECT DISTINCT ON (keys) ... ON CONFLICT DO UPDATE ... WHERE changed``.
    Multi-row VALUES spent most of its time building and parsing 5,000-parameter statements;
    COPY has none, and tens of thousands of rows per statement make per-statement costs vanish.
    """
    staging_name = f"cs_stage_{table.name}"
    columns = ", ".join(names)  # our column names, never user text: safe to splice into SQL
    connection = session.connection()
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging_name} ON COMMIT DROP AS "  # noqa: S608  # nosec B608
        f"SELECT {columns}, 0 AS line FROM {table.name} WITH NO DATA"
    )
    driver = connection.connection.driver_connection
    copy_sql = f"COPY {staging_name} ({columns}, line) FROM STDIN"
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
            copy.write(payload)
    except dbapi_error as error:  # bypassed SQLAlchemy: wrap it as SQLAlchemy would
        raise DBAPIError.instance(copy_sql, None, error, dbapi_error) from error
    staging = Table(
        staging_name,
        MetaData(),
        *(Column(n, table.c[n].type) for n in names),
        Column("line", Integer),
    )
    latest = (
        select(*(staging.c[n] for n in names))
        .ext(postgresql.distinct_on(*(staging.c[k] for k in keys)))
        .order_by(*(staging.c[k] for k in keys), staging.c.line.desc())
    )
    stmt = postgresql.insert(table).from_select(list(names), latest)
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
    connection.exec_driver_sql(f"TRUNCATE {staging_name}")


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
            dialect_insert(session, Organization.__table__).returning(
                Organization.__table__.c.id, Organization.__table__.c.slug
            ),
            to_create,
        ).all()
        by_slug = {slug: org_id for org_id, slug in created}
        it = iter(to_create)
        for r in new:
            if lookups.orgs[r.external_id] is None:
                lookups.orgs[r.external_id] = by_slug[next(it)["slug"]]


ACCOUNT_IMPORT_LOCK = 0x43534143  # "CSAC": PostgreSQL advisory lock of account imports


def _take_turn_for_accounts(
    session: Session, records: Sequence[importers.AccountRow], lookups: _Lookups
) -> None:
    """Account imports running at once deadlocked on each other's organization rows (renames
    in different file orders), or created the same new accounts and the loser failed whole on
    ``uq_organizations_slug``. On PostgreSQL their data transactions take turns (a lock held
    until commit; validation still runs side by side), and pass 1's "not found" is looked up
    again: the import before us may have created those accounts since."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ACCOUNT_IMPORT_LOCK)))
    unknown = [r.external_id for r in records if lookups.orgs.get(r.external_id) is None]
    if unknown:
        lookups.orgs.update(
            session.execute(
                select(AccountProfile.external_id, AccountProfile.organization_id).where(
                    AccountProfile.external_id.in_(unknown)
                )
            ).all()
        )


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
) -> tuple[list[tuple[Any, ...]], list[str], list[str]]:
    """(rows, their column names, the file's columns to update) for ``_upsert``."""
    present = [c for c in columns if c not in ("external_id", "name", "csm_email")]
    if "csm_email" in columns:
        present.append("csm_id")
    names = ["organization_id", "external_id", "updated_at", *present]
    now = utcnow()
    rows = []
    for r in records:
        values = [lookups.orgs[r.external_id], r.external_id, now]
        for c in present:
            if c == "csm_id":
                values.append(lookups.staff.get(r.csm_email) if r.csm_email else None)
            else:
                values.append(getattr(r, c))
        values.append(r.line)
        rows.append(tuple(values))
    return rows, names, ["external_id", *present]


def _record_columns(kind: str, columns: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(column names of ``_record_rows``, conflict keys, the file's columns to update)."""
    fields = [f for f in importers.KINDS[kind].record._fields[1:] if f != "account_external_id"]
    names = ["organization_id", *fields, *(["source"] if kind == "nps_responses" else [])]
    keys = ["organization_id", "day", "metric"] if kind == "usage_events" else ["external_id"]
    present = [c for c in columns if c != "account_external_id"] + ["organization_id"]
    return names, keys, present


def _record_rows(kind: str, records: Sequence[Any], lookups: _Lookups) -> list[tuple[Any, ...]]:
    """Records of a non-account kind as ``_upsert`` rows (``_record_columns`` names, then the
    line); every account id must be resolved."""
    orgs = lookups.orgs
    if kind == "usage_events":  # the big files: spelled out
        return [(orgs[r.account_external_id], r.day, r.metric, float(r.value), r.line)
                for r in records]  # fmt: skip
    fields = importers.KINDS[kind].record._fields
    skip = ("line", "account_external_id")
    pick = itemgetter(*(i for i, f in enumerate(fields) if f not in skip))
    extra = (NpsSource.IMPORT.value,) if kind == "nps_responses" else ()
    return [(orgs[r.account_external_id], *pick(r), *extra, r.line) for r in records]


def _spool_payload(kind: str, batch: list[Any], lookups: _Lookups, copy: bool) -> Any:
    """What pass 1 keeps of a batch of valid records: account records as they are (pass 2
    creates their organizations), other kinds as ``_upsert`` rows, on PostgreSQL (``copy``)
    already in COPY text."""
    if kind == "accounts":
        return batch
    if copy and kind == "usage_events":  # the big files: straight to text, no tuples
        orgs, escapes = lookups.orgs, _COPY_ESCAPES
        return "".join(  # !s: str() of a date or Decimal is 2-3x cheaper than format()
            [f"{orgs[a]}\t{d!s}\t{m.translate(escapes)}\t{v!s}\t{line}\n"
             for line, a, d, m, v in batch]
        ).encode()  # fmt: skip
    rows = _record_rows(kind, batch, lookups)
    return _copy_text(rows) if copy else rows


_MODELS: dict[str, Any] = {
    "contacts": Contact,
    "usage_events": UsageEvent,
    "tickets": Ticket,
    "invoices": Invoice,
    "nps_responses": NpsResponse,
}


def _dedupe(batch: Sequence[importers.AccountRow]) -> list[importers.AccountRow]:
    """Later rows win: an account must be created or renamed once."""
    return list({r.external_id: r for r in batch}.values())


def _import_batch(
    session: Session, kind: str, batch: Sequence[Any], columns: Sequence[str], lookups: _Lookups
) -> None:
    """Write one chunk of what pass 1 spooled: account records, or the rows of another kind
    (tuples, or COPY text on PostgreSQL), references already resolved."""
    if kind == "accounts":
        records = _dedupe([r for payload in batch for r in payload])
        _take_turn_for_accounts(session, records, lookups)
        _ensure_orgs(session, records, lookups)
        rows, names, present = _account_rows(records, columns, lookups)
        _upsert(session, AccountProfile, names, rows, ["organization_id"], present,
                {"updated_at": utcnow()})  # fmt: skip
        return
    names, keys, present = _record_columns(kind, columns)
    if isinstance(batch[0], bytes):
        _upsert(session, _MODELS[kind], names, b"".join(batch), keys, present)
    else:
        _upsert(session, _MODELS[kind], names, [r for rows in batch for r in rows], keys, present)


STATEMENT_ROWS = 50_000  # rows per upsert statement at most (PostgreSQL sorts them)
IMPORT_STEPS = 20  # chunks of the import pass: per-statement costs vanish, progress still moves
PROGRESS_SECONDS = 0.5  # progress commits at most this often (each one is a transaction)


def _set_job(session_factory: Callable[[], Session], job_id: int, **values: Any) -> None:
    with session_factory() as s:
        s.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))
        s.commit()


def _open(path: Path) -> IO[bytes]:
    return open(path, "rb")  # noqa: SIM115 - closed by the callers' with blocks


def _spooled(path: Path, chunk_rows: int) -> Iterator[tuple[int, list[Any]]]:
    """What pass 1 spooled, read back as (rows, payloads) chunks of at least ``chunk_rows``
    rows (one chunk in memory)."""
    chunk: list[Any] = []
    count = 0
    with open(path, "rb") as spool:
        while True:
            try:
                rows, payload = pickle.load(spool)  # noqa: S301 - our own file, written just before  # nosec B301
            except EOFError:
                break
            chunk.append(payload)
            count += rows
            if count >= chunk_rows:
                yield count, chunk
                chunk, count = [], 0
    if chunk:
        yield count, chunk


IMPORT_RUN_LOCK = 0x43534A42  # "CSJB": PostgreSQL advisory locks of import runs, by job id


def run_import(
    session_factory: Callable[[], Session],
    job_id: int,
    progress_callback: ProgressCallback | None = None,
) -> ImportJob:
    """``_run_import``, unless the same job is being run elsewhere: the task outbox's flush (or
    Redis's visibility timeout) sends the task again when a long import outlasts it, and two
    runs at once would share the job's spool file and overwrite each other's status. On
    PostgreSQL a session lock held for the run says "running"; it goes with its connection, so
    the job of a killed worker runs again. A second run returns the job as it is."""
    with _session_lock(session_factory, IMPORT_RUN_LOCK, job_id, wait=False) as taken:
        if taken:
            return _run_import(session_factory, job_id, progress_callback)
    with session_factory() as s:
        job = s.get(ImportJob, job_id)
        if job is None:
            raise NotFound(str(_l("No such import.")))
        s.expunge(job)
        return job


@contextmanager
def _session_lock(session_factory: Callable[[], Session], *key: int, wait: bool) -> Iterator[bool]:
    """A PostgreSQL session advisory lock on ``key``, on a connection of its own, held for the
    block: whether it was taken (``wait=False`` does not wait for it). It goes with its
    connection, so a killed worker's job can run again. Other databases: always taken (SQLite
    lets one writer at a time anyway)."""
    with session_factory() as s:
        bind = s.get_bind()
    if bind.dialect.name != "postgresql":
        yield True
        return
    with bind.engine.connect() as lock:
        lock.execution_options(isolation_level="AUTOCOMMIT")  # no transaction left open
        take = func.pg_advisory_lock if wait else func.pg_try_advisory_lock
        taken = lock.scalar(select(take(*key))) is not False
        try:
            yield taken
        finally:
            if taken:
                try:
                    lock.scalar(select(func.pg_advisory_unlock(*key)))
                except Exception:
                    lock.invalidate()  # never back to the pool still holding the lock


def _run_import(
    session_factory: Callable[[], Session],
    job_id: int,
    progress_callback: ProgressCallback | None = None,
) -> ImportJob:
    """Validate the whole file, then upsert it in chunks; returns the finished job (detached).

    1. Validation pass: every row parsed and checked, account ids (and CSM emails) looked up
       one query per ``BATCH_SIZE`` rows. With errors and ``reject_file`` the job fails here
       and nothing is written. The valid rows are spooled beside the upload (batch by batch,
       bounded memory) ready to write: references resolved and, on PostgreSQL, already in COPY
       text format, so the second pass neither parses the CSV again nor touches a row in Python.
    2. Import pass: the spool is upserted in about ``IMPORT_STEPS`` chunks (at least
       ``BATCH_SIZE``, at most ``STATEMENT_ROWS`` rows; accounts ``BATCH_SIZE``) in ONE data
       transaction, committed at the end together with the job's ``done`` status; a database
       error rolls all of it back and fails the job.
    3. Progress (``rows_total`` while validating, ``rows_done`` while importing) is committed
       in separate short transactions at most every ``PROGRESS_SECONDS``, except on SQLite
       where a second writer would wait for the data transaction's lock (there it is only
       reported to ``progress_callback``, after each chunk).

    Safe to run again (a retried task): finished jobs are returned as they are, and upserts by
    external id make a half-done run harmless.
    """
    with session_factory() as s:
        job = s.get(ImportJob, job_id)
        if job is None:
            raise NotFound(str(_l("No such import.")))
        if job.status in FINISHED:
            s.expunge(job)
            return job
        kind, options = job.kind, dict(job.options or {})
        job.status, job.started_at = JobStatus.VALIDATING, utcnow()
        s.commit()
        dialect = s.get_bind().dialect.name
    path = import_path(job_id)
    reject = options.get("on_errors", "reject_file") == "reject_file"
    day_first = bool(options.get("day_first"))
    lookups = _Lookups()
    bad_lines: set[int] = set()
    published = time.monotonic()

    def publish(**values: Any) -> None:
        nonlocal published
        if dialect != "sqlite" and time.monotonic() - published >= PROGRESS_SECONDS:
            _set_job(session_factory, job_id, **values)
            published = time.monotonic()

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

    # -- pass 1: validate everything, spooling the valid rows ready to write -----------------
    report = importers.ValidationReport(kind=kind)
    spool_path = path.with_suffix(".spool")
    # A date column whose order (day or month first) shows only after some of its ambiguous
    # dates were read is validated again with that order: rare, and memory stays bounded.
    date_orders: dict[str, importers.ColumnOrder] = {}
    try:
        while True:
            with _open(path) as f, session_factory() as s, open(spool_path, "wb") as spool:
                vs = importers.validate_stream(
                    kind, f, day_first=day_first, max_bytes=None, date_orders=date_orders
                )
                report = vs.report
                _prefetch_orgs(s, lookups)
                for batch in vs.batches(BATCH_SIZE):
                    _check_references(s, kind, batch, report, lookups, bad_lines)
                    if bad_lines:
                        batch = [r for r in batch if r.line not in bad_lines]
                        bad_lines.clear()
                    if batch and not (report.error_count and reject):
                        payload = _spool_payload(kind, batch, lookups, dialect == "postgresql")
                        pickle.dump((len(batch), payload), spool, protocol=pickle.HIGHEST_PROTOCOL)
                    publish(rows_total=report.rows_total)
                s.rollback()
            rerun = vs.rerun_orders()
            if not rerun:
                break
            date_orders.update(rerun)
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
    if dialect != "sqlite":
        _set_job(
            session_factory, job_id, status=JobStatus.IMPORTING, rows_total=report.rows_total,
            rows_valid=valid_total,
        )  # fmt: skip
    chunk_rows = BATCH_SIZE
    if kind != "accounts":
        chunk_rows = max(BATCH_SIZE, min(STATEMENT_ROWS, -(-valid_total // IMPORT_STEPS)))
    done = 0
    data = session_factory()
    try:
        columns = report.columns
        for rows, chunk in _spooled(spool_path, chunk_rows):
            _import_batch(data, kind, chunk, columns, lookups)
            done += rows
            publish(rows_done=done)
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


def model_from_config(
    version: str, config: Mapping[str, Any], *, known_names: bool = True
) -> health.HealthModel:
    """Build (and so validate) a model; ``HealthModelError`` names the offending field.

    A component must be one of ``health.COMPONENT_NAMES`` (the signals there are); a stored
    version is read with ``known_names=False`` so that one saved before that check still loads.
    """
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
        name = str(raw.get("name", "")).strip()
        if known_names and name and name not in health.COMPONENT_NAMES:
            raise health.HealthModelError(
                f"{where}.name",
                "unknown_component",
                f"unknown component {name!r}: use one of {', '.join(health.COMPONENT_NAMES)}",
                {"name": name},
            )
        components.append(
            health.Component(name, _number(raw.get("weight"), f"{where}.weight"), scale)
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
    return model_from_config(row.version, row.config, known_names=False)


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
        if error.code == "unknown_component":
            raise DomainError(
                str(
                    _l(
                        "Unknown component “%(name)s”: use one of %(names)s.",
                        name=error.params["name"],
                        names=", ".join(health.COMPONENT_NAMES),
                    )
                ),
                field=error.field,
            ) from None
        raise DomainError(health_messages.describe(error), field=error.field) from None
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
    if latest is not None and latest.day >= now.date():  # a past day keeps its history
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
        override.revoked_at = now = utcnow()
        latest = _latest_snapshot(session, org_id)
        if (
            latest is not None
            and latest.override_id == override.id
            and latest.day >= now.date()  # it was in force on the days before
        ):
            latest.effective_score, latest.effective_band = latest.score, latest.band
            latest.override_id = None
        session.flush()


def overrides_in_force(
    session: Session, day: date, now: datetime | None = None
) -> tuple[dict[int, HealthOverride], datetime]:
    """The override that counts for each account on ``day`` (the newest when several do), and
    the moment to judge them at.

    For today (or a later day) that is the override active now, so a revoked or expired one no
    longer counts. For a past day it is one that was in force on that day: created on or before
    it, and neither expired nor revoked before it. An override set later never reaches back
    into history (a recomputed past day, the trend, band-change alerts, KPIs).
    """
    now = now or utcnow()
    if day >= now.date():
        as_of = now
        conditions = [HealthOverride.created_at <= now]
    else:
        as_of = datetime.combine(day, datetime.min.time(), UTC)
        conditions = [HealthOverride.created_at < as_of + timedelta(days=1)]
    conditions += [
        HealthOverride.expires_at > as_of,
        or_(HealthOverride.revoked_at.is_(None), HealthOverride.revoked_at > as_of),
    ]
    overrides: dict[int, HealthOverride] = {}
    for o in session.scalars(select(HealthOverride).where(*conditions).order_by(HealthOverride.id)):
        overrides[o.organization_id] = o  # the newest wins
    return overrides, as_of


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


SNAPSHOT_BATCH = 5000  # rows per upsert statement (each column is one array parameter)


def _computed_digest(figures: health.Figures, model_version: str) -> str:
    """What ``HealthSnapshot.computed_digest`` holds: a fingerprint of the computed figures
    (the band and the explanation's names and weights follow from them and the model's
    version), so a rerun that writes nothing builds no explanation for it. Pickled: plain
    tuples of floats pickle exactly and in 2 µs, seven times faster than their ``repr``."""
    figures_data = (figures.score, figures.complete, model_version, figures.scored)
    return hashlib.blake2b(pickle.dumps(figures_data, 5), digest_size=16).hexdigest()


def _stored_snapshots(
    session: Session, day: date
) -> dict[int, tuple[str | None, float | None, str | None, int | None]]:
    """The day's snapshots as the recompute compares them: its computed digest and effective
    figures (an override set or revoked since changes only the latter)."""
    return {
        org_id: tuple(rest)  # type: ignore[misc]
        for org_id, *rest in session.execute(
            select(
                HealthSnapshot.organization_id,
                HealthSnapshot.computed_digest,
                HealthSnapshot.effective_score,
                HealthSnapshot.effective_band,
                HealthSnapshot.override_id,
            ).where(HealthSnapshot.day == day)
        )
    }


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@cycle_collection_paused()
def recompute(
    session: Session,
    day: date | None = None,
    progress: ProgressCallback | None = None,
    *,
    progress_every: int = 500,
) -> RecomputeResult:
    """Score every customer account for ``day`` (default today, UTC) and raise alerts.

    Signals come from ``cs_metrics.signals`` (one grouped query each); scoring is pure Python
    (``health.score_figures``); snapshots are upserted, so running twice a day replaces the
    day's figures. A snapshot whose figures did not change keeps its row and ``computed_at``
    and is not sent at all: the day's stored digests are read first (a same-day rerun sent
    every explanation for PostgreSQL to find it equal); the others go in one statement per
    5,000 accounts. The overrides in force on ``day`` (not ones set later:
    ``overrides_in_force``) give the effective score beside the computed one. Alerts look at
    the computed scores of the last 31 days (an override must not hide a falling account) and
    open at most one alert per kind per account.
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
    overrides, as_of = overrides_in_force(session, day, now)
    stored = _stored_snapshots(session, day)

    rows: list[dict[str, Any]] = []
    scores: dict[int, tuple[float | None, str | None]] = {}
    bands = model.bands
    for i, org_id in enumerate(org_ids, 1):
        computed = health.score_figures(model, collected.for_account(org_id))
        band = computed.band.value if computed.band is not None else None
        effective_score, effective_band, override_id = computed.score, band, None
        ov = overrides.get(org_id)
        if ov is not None:
            forced = health.overridden_score(
                health.Override(ov.score, ov.reason, ov.expires_at), bands, as_of
            )
            if forced is not None:
                effective_score, effective_band, override_id = forced[0], forced[1].value, ov.id
                result.overridden += 1
        if computed.score is None:
            result.no_data += 1
        else:
            result.scored += 1
        if effective_band is not None:
            result.bands[effective_band] = result.bands.get(effective_band, 0) + 1
        scores[org_id] = (computed.score, band)
        digest = _computed_digest(computed, model.version)
        if stored.get(org_id) != (digest, effective_score, effective_band, override_id):
            rows.append(
                {
                    "organization_id": org_id,
                    "day": day,
                    "score": computed.score,
                    "band": band,
                    "complete": computed.complete,
                    "model_version": model.version,
                    "components": health.compact_explanation(computed.scored),
                    "computed_digest": digest,
                    "effective_score": effective_score,
                    "effective_band": effective_band,
                    "override_id": override_id,
                    "computed_at": now,
                }
            )
        if progress is not None and (i % progress_every == 0 or i == len(org_ids)):
            progress(i, len(org_ids))

    for chunk in _chunks(rows, SNAPSHOT_BATCH):
        bulk_insert(
            session,
            HealthSnapshot.__table__,
            chunk,
            conflict=("organization_id", "day"),
            unchanged_if_same=("computed_at",),
        )
    result.alerts_raised = _raise_alerts(session, day, collected, scores)
    worklist.open_loop_tasks(session, now - worklist.LOOKBACK)
    return result


# --------------------------------------------------------------------------------------------
# Recompute runs: the nightly one, the CLI's, and the one a CSM asks for after an import
# --------------------------------------------------------------------------------------------

RECOMPUTE_LOCK = 0x43535243  # "CSRC": PostgreSQL advisory lock held while a run computes
RUN_PROGRESS_SECONDS = 0.5  # a run writes its progress at most this often


def queue_recompute(
    session: Session, requested_by: User | None = None, day: date | None = None
) -> RecomputeRun:
    """A run of ``day`` (default today, UTC) waiting to start; no permission check
    (``start_recompute``, the nightly task and the CLI call it)."""
    run = RecomputeRun(
        day=day or utcnow().date(),
        status=JobStatus.QUEUED,
        requested_by_id=requested_by.id if requested_by is not None else None,
        accounts_done=0,
        accounts_total=0,
        summary={},
    )
    session.add(run)
    session.flush()
    return run


def start_recompute(session: Session, actor: User | None) -> RecomputeRun:
    """A CSM asks for fresh scores (after an import, say): today's run is queued and run in a
    task once this transaction commits. A run already waiting to start is returned instead of
    a second one: it reads everything committed before it starts."""
    _require_cs_staff(actor)
    from cs_metrics.tasks import run_recompute_task  # tasks import this module
    from portal.core.tasks import enqueue_after_commit

    waiting = session.scalars(
        select(RecomputeRun)
        .where(RecomputeRun.status == JobStatus.QUEUED, RecomputeRun.day == utcnow().date())
        .order_by(RecomputeRun.id.desc())
        .limit(1)
    ).first()
    if waiting is not None:
        return waiting
    run = queue_recompute(session, actor)
    enqueue_after_commit(session, run_recompute_task, run.id)
    return run


# A run still "running" this long after it started has lost its process (a killed worker):
# shown as failed, and no longer hiding "Recompute now". 10,000 accounts take seconds.
RUN_ABANDONED_AFTER = timedelta(hours=1)


def _abandoned(now: datetime) -> Any:
    return (RecomputeRun.status == JobStatus.RUNNING) & (
        RecomputeRun.started_at < now - RUN_ABANDONED_AFTER
    )


def run_state(run: RecomputeRun) -> str:
    """The run's status as the portal shows it: an abandoned run (``RUN_ABANDONED_AFTER``) has
    failed."""
    started = run.started_at
    if (
        run.status == JobStatus.RUNNING
        and started is not None
        and started < utcnow() - RUN_ABANDONED_AFTER
    ):
        return JobStatus.FAILED
    return str(run.status)


@dataclass(frozen=True)
class Progress:
    """How far an import or a recompute run has come, as its page, its JSON status and the
    API all show it: finished (failed too: nothing more will happen) is all the way, a job
    waiting to start is at 0, and a job at work before its size is known (an import still
    validating, a run still counting accounts) is unknown."""

    status: str
    finished: bool
    fraction: float | None  # 0..1

    @property
    def percent(self) -> int | None:
        """For a progress bar: 100 only once finished, however close the count is."""
        if self.fraction is None:
            return None
        return 100 if self.finished else min(99, int(100 * self.fraction))


def _progress(status: str, done: int, total: int, counting: bool) -> Progress:
    if status in FINISHED:
        return Progress(status, True, 1.0)
    if status == JobStatus.QUEUED:
        return Progress(status, False, 0.0)
    if counting or not total:
        return Progress(status, False, None)
    return Progress(status, False, min(1.0, done / total))


def run_progress(run: RecomputeRun) -> Progress:
    return _progress(run_state(run), run.accounts_done, run.accounts_total, counting=False)


def import_progress(job: ImportJob) -> Progress:
    """Rows count only while importing: validating reads the whole file before any is done."""
    status = str(job.status)
    counting = status != JobStatus.IMPORTING
    return _progress(status, job.rows_done, job.rows_valid, counting=counting)


def recompute_runs(session: Session) -> tuple[RecomputeRun | None, RecomputeRun | None]:
    """The newest run not finished yet (waiting or running), and the newest finished one (an
    abandoned one included): what the portfolio says about the scores it shows."""
    now = utcnow()
    unfinished = session.scalars(
        select(RecomputeRun)
        .where(RecomputeRun.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)), ~_abandoned(now))
        .order_by(RecomputeRun.id.desc())
        .limit(1)
    ).first()
    finished = session.scalars(
        select(RecomputeRun)
        .where(RecomputeRun.status.in_(FINISHED) | _abandoned(now))
        .order_by(
            func.coalesce(RecomputeRun.finished_at, RecomputeRun.started_at).desc(),
            RecomputeRun.id.desc(),
        )
        .limit(1)
    ).first()
    return unfinished, finished


def run_recompute(
    session_factory: Callable[[], Session],
    run_id: int,
    progress_callback: ProgressCallback | None = None,
) -> RecomputeRun:
    """Run a queued recompute (a job runner, like ``run_import``): its progress and outcome
    are committed on the run's row as it goes, the scores in one transaction of their own.

    Runs take turns. Two at once on a day whose snapshots were written already (they write
    none, so their upserts do not make them wait for each other) both opened the same alerts,
    and the later failed on the one-open-alert-per-rule index (the reliability test of
    "Recompute now" pressed six times at once). On PostgreSQL a session lock makes each wait,
    then compute from what the one before committed; SQLite lets one writer at a time anyway.
    A run found done already (its task sent twice) is returned as it is."""
    with _session_lock(session_factory, RECOMPUTE_LOCK, wait=True):
        return _run_recompute(session_factory, run_id, progress_callback)


def _run_recompute(
    session_factory: Callable[[], Session],
    run_id: int,
    progress_callback: ProgressCallback | None,
) -> RecomputeRun:
    """Progress is written on PostgreSQL only. On SQLite a commit from another connection
    while the run's transaction reads made that transaction's first write fail ("database is
    locked": WAL keeps the snapshot it read, which can no longer become a write), so there a
    run records only its start and its end; the callback (the CLI's bar) still follows every
    step."""

    def record(**values: Any) -> None:
        with session_factory() as s:
            s.execute(update(RecomputeRun).where(RecomputeRun.id == run_id).values(**values))
            s.commit()

    with session_factory() as s:
        run = s.get(RecomputeRun, run_id)
        if run is None:
            raise NotFound(str(_l("No such recompute.")))
        if run.status == JobStatus.DONE:
            s.expunge(run)
            return run
        day = run.day
        write_progress = s.get_bind().dialect.name == "postgresql"
    record(status=JobStatus.RUNNING, started_at=utcnow(), finished_at=None, error=None)
    written = 0.0

    def publish(done: int, total: int) -> None:
        nonlocal written
        if progress_callback is not None:
            progress_callback(done, total)
        if write_progress and time.monotonic() - written >= RUN_PROGRESS_SECONDS:
            record(accounts_done=done, accounts_total=total)
            written = time.monotonic()

    try:
        with session_factory() as s:
            result = recompute(s, day, publish)
            s.commit()
    except Exception as error:
        record(
            status=JobStatus.FAILED,
            finished_at=utcnow(),
            error=f"{type(error).__name__}: {error}"[:500],
        )
        raise
    record(
        status=JobStatus.DONE,
        finished_at=utcnow(),
        accounts_done=result.accounts,
        accounts_total=result.accounts,
        alerts_raised=result.alerts_raised,
        summary={
            "scored": result.scored,
            "no_data": result.no_data,
            "overridden": result.overridden,
            "bands": result.bands,
            "model_version": result.model_version,
        },
    )
    with session_factory() as s:
        run = s.get(RecomputeRun, run_id)
        assert run is not None  # noqa: S101 - recorded just above
        s.expunge(run)
        return run


def _raise_alerts(
    session: Session,
    day: date,
    collected: signals.Signals | None = None,
    scores: Mapping[int, tuple[float | None, str | None]] | None = None,
) -> int:
    """The alert rules (``cs_metrics.playbooks``) over the day's metrics: the shipped defaults
    are seeded first (idempotent), among them "health band change or 15-point drop", which
    replaced the hard-coded ``health.check_alerts`` alerts. Returns the alerts opened."""
    from cs_metrics import playbooks

    playbooks.ensure_default_rules(session)
    return playbooks.evaluate_rules(session, day, collected=collected, scores=scores)


def close_alert(session: Session, actor: User | None, alert_id: int) -> HealthAlert:
    """A CSM closes an alert they dealt with (``playbooks.close_alert``: own-book aware)."""
    from cs_metrics import playbooks

    return playbooks.close_alert(session, actor, alert_id)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _model_of_version(session: Session, version: str) -> health.HealthModel | None:
    if version == health.DEFAULT_MODEL.version:
        return health.DEFAULT_MODEL
    row = session.scalar(select(HealthModelVersion).where(HealthModelVersion.version == version))
    return model_from_config(row.version, row.config, known_names=False) if row else None


def snapshot_components(session: Session, snapshot: HealthSnapshot) -> list[dict[str, Any]]:
    """A snapshot's explanation: for each component its ``name``, ``raw``, ``score``,
    ``weight``, ``configured_share``, ``share``, ``contribution`` and ``missing``. Snapshots
    store only raw values and scores (``health.compact_explanation``), expanded here with
    their model's version; those written before 2026-11-29 hold the expanded form already.
    Empty when the model version is unknown."""
    stored = snapshot.components or []
    if not stored or all(isinstance(entry, dict) for entry in stored):
        return list(stored)
    model = _model_of_version(session, snapshot.model_version)
    if model is None:
        return []
    try:
        return [c._asdict() for c in health.expand_explanation(model, stored)]
    except health.HealthModelError:
        return []


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
            "components": snapshot_components(session, latest),
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
    "overrides_in_force",
    "queue_import",
    "recompute",
    "revoke_override",
    "run_import",
    "save_health_model",
    "set_override",
    "snapshot_components",
    "start_import",
]
