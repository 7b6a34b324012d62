"""The CS JSON API under /api/v1/cs (staff only), in the OpenAPI document.

Routes live on the one API blueprint (``portal.core.api.bp``: token auth, error bodies), so a
customer's token gets 403 from ``access.require_cs`` and an account outside the caller's book
answers 404 like one that does not exist. Thin: load, call a service or one read query, dump.
Imports go through ``service.start_import`` exactly as the upload page does, and run in a task
after the commit; the caller polls the status URL. So does a recompute
(``service.start_recompute``, the portal's "Recompute now"), for a CRM sync that wants fresh
scores after its imports.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import jsonify, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from cs_metrics import schemas, scorecards, service
from cs_metrics.access import book_filter, require_account, require_cs
from cs_metrics.kpis import Period
from cs_metrics.models import (
    AccountProfile,
    AlertStatus,
    Contact,
    HealthAlert,
    HealthSnapshot,
    ImportJob,
    NpsResponse,
    RecomputeRun,
)
from cs_metrics.nps import NpsResult, nps_from_counts
from portal.core.api import api_user, bp, endpoint, load, page_out
from portal.core.db import db, utcnow
from portal.core.errors import NotFound
from portal.core.identity import Organization, OrgKind, User
from portal.core.pagination import Page, paginate
from portal.core.permissions import Action

ACCOUNT = {"org_id": "integer"}
DENIED = (401, 403, 404)


# --------------------------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------------------------


def _latest_day() -> Any:
    """The day of the organization's newest snapshot: one index probe per account on the
    (organization_id, day) key, where a GROUP BY would read every snapshot ever taken."""
    return (
        select(func.max(HealthSnapshot.day))
        .where(HealthSnapshot.organization_id == Organization.id)
        .correlate(Organization)
        .scalar_subquery()
    )


def _accounts_query(session: Session, user: User, *columns: Any) -> Any:
    """Customer organizations in the user's book joined to profile, latest snapshot and CSM
    (selecting ``columns``, by default the four rows)."""
    return (
        select(*(columns or (Organization, AccountProfile, HealthSnapshot, User)))
        .select_from(Organization)
        .outerjoin(AccountProfile, AccountProfile.organization_id == Organization.id)
        .outerjoin(
            HealthSnapshot,
            and_(
                HealthSnapshot.organization_id == Organization.id,
                HealthSnapshot.day == _latest_day(),
            ),
        )
        .outerjoin(User, User.id == AccountProfile.csm_id)
        .where(Organization.kind == OrgKind.CUSTOMER, book_filter(session, user))
    )


def _account_out(
    org: Organization,
    profile: AccountProfile | None,
    snap: HealthSnapshot | None,
    csm: User | None,
) -> dict[str, Any]:
    attr = (lambda name: getattr(profile, name)) if profile is not None else (lambda name: None)
    return {
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        **{
            name: attr(name)
            for name in (
                "external_id",
                "arr",
                "plan",
                "segment",
                "tier",
                "region",
                "renewal_date",
                "contract_start",
                "sales_owner_email",
                "industry",
                "product_version",
                "domain",
                "updated_at",
            )
        },  # fmt: skip
        "csm": None if csm is None else {"id": csm.id, "display_name": csm.display_name},
        "health": {
            "day": snap.day if snap else None,
            "score": snap.effective_score if snap else None,
            "band": snap.effective_band if snap else None,
            "computed_score": snap.score if snap else None,
            "computed_band": snap.band if snap else None,
            "overridden": bool(snap and snap.override_id is not None),
        },
        "url": url_for("api.cs_account", org_id=org.id),
    }


@bp.route("/cs/accounts")
@endpoint(
    "/cs/accounts",
    "get",
    "Customer accounts in your book with their latest health; filter by band, segment, CSM",
    schemas.CsAccountPageOut,
    query=schemas.CsAccountListIn,
    errors=(401, 403),
)
def cs_accounts() -> Response:
    user = require_cs(api_user())
    args = load(schemas.CsAccountListIn, request.args.to_dict())
    stmt = _accounts_query(db.session, user, Organization.id)
    band = args.get("band")
    if band == "none":
        stmt = stmt.where(HealthSnapshot.effective_band.is_(None))
    elif band:
        stmt = stmt.where(HealthSnapshot.effective_band == band)
    if args.get("segment"):
        stmt = stmt.where(AccountProfile.segment == args["segment"])
    if args.get("csm"):
        stmt = stmt.where(AccountProfile.csm_id == args["csm"])
    stmt = stmt.order_by(Organization.name, Organization.id)
    page = paginate(db.session, stmt, args["page"], args["per_page"])
    rows = {
        row[0].id: row
        for row in db.session.execute(
            _accounts_query(db.session, user).where(Organization.id.in_(page.items))
        )
    }
    data = page_out(page)
    data["items"] = [_account_out(*rows[org_id]) for org_id in page.items]
    return jsonify(schemas.CsAccountPageOut().dump(data))


@bp.route("/cs/accounts/<int:org_id>")
@endpoint(
    "/cs/accounts/{org_id}",
    "get",
    "One account's CS attributes, CSM and latest health (404 outside your book)",
    schemas.CsAccountDetailOut,
    path_params=ACCOUNT,
    errors=DENIED,
)
def cs_account(org_id: int) -> Response:
    user = api_user()
    require_account(db.session, user, org_id)
    row = db.session.execute(
        _accounts_query(db.session, user).where(Organization.id == org_id)
    ).first()
    if row is None:  # pragma: no cover - require_account already answered 404
        raise NotFound(str(_l("No such account.")))
    data = _account_out(*row)
    data["contacts"] = db.session.scalar(
        select(func.count()).select_from(Contact).where(Contact.organization_id == org_id)
    )
    data["open_alerts"] = db.session.scalar(
        select(func.count())
        .select_from(HealthAlert)
        .where(HealthAlert.organization_id == org_id, HealthAlert.status == AlertStatus.OPEN)
    )
    return jsonify(schemas.CsAccountDetailOut().dump(data))


@bp.route("/cs/accounts/<int:org_id>/health")
@endpoint(
    "/cs/accounts/{org_id}/health",
    "get",
    "Latest health with its explanation (component scores, weights, contributions), the "
    "active override, open alerts and the history",
    schemas.CsHealthOut,
    query=schemas.CsHealthIn,
    path_params=ACCOUNT,
    errors=DENIED,
)
def cs_account_health(org_id: int) -> Response:
    require_account(db.session, api_user(), org_id)
    args = load(schemas.CsHealthIn, request.args.to_dict())
    explained = service.explain(db.session, org_id, history_days=args["history_days"])
    return jsonify(schemas.CsHealthOut().dump(explained))


# --------------------------------------------------------------------------------------------
# NPS
# --------------------------------------------------------------------------------------------


def _nps_counts(session: Session, user: User, days: int, org_id: int | None = None) -> Any:
    """Promoters, passives and detractors per account since ``days`` ago, in the book."""
    since = utcnow() - timedelta(days=days)
    stmt = (
        select(
            Organization.id,
            Organization.name,
            func.sum(case((NpsResponse.score >= 9, 1), else_=0)).label("promoters"),
            func.sum(case((NpsResponse.score.between(7, 8), 1), else_=0)).label("passives"),
            func.sum(case((NpsResponse.score <= 6, 1), else_=0)).label("detractors"),
        )
        .join(NpsResponse, NpsResponse.organization_id == Organization.id)
        .where(
            Organization.kind == OrgKind.CUSTOMER,
            NpsResponse.responded_at >= since,
            book_filter(session, user),
        )
        .group_by(Organization.id, Organization.name)
    )
    if org_id is not None:
        stmt = stmt.where(Organization.id == org_id)
    return stmt, since.date()


def _nps_out(result: NpsResult) -> dict[str, Any]:
    return {
        "n": result.n,
        "promoters": result.promoters,
        "passives": result.passives,
        "detractors": result.detractors,
        "nps": result.nps,
        "margin": result.margin,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
    }


def _account_nps(org_id: int, name: str, p: int, pa: int, d: int) -> dict[str, Any]:
    return {
        "organization_id": org_id,
        "name": name,
        **_nps_out(nps_from_counts(int(p), int(pa), int(d))),
    }


@bp.route("/cs/nps")
@endpoint(
    "/cs/nps",
    "get",
    "NPS of your book over the last `days` (default 180) with n and the 95% margin, overall "
    "and by account, segment, CSM or month (`group_by`; largest n first, months in order)",
    schemas.CsNpsOverviewOut,
    query=schemas.CsNpsListIn,
    errors=(401, 403),
)
def cs_nps() -> Response:
    user = require_cs(api_user())
    args = load(schemas.CsNpsListIn, request.args.to_dict())
    today = utcnow().date()
    period = scorecards.custom(today - timedelta(days=args["days"] - 1), today)
    report = scorecards.nps_report(db.session, user, period, args["group_by"])
    first = (args["page"] - 1) * args["per_page"]
    page = Page(
        items=report.rows[first : first + args["per_page"]], page=args["page"],
        per_page=args["per_page"], total=len(report.rows),
    )  # fmt: skip
    key = (lambda k: scorecards.period_label(k)) if args["group_by"] == "month" else str
    return jsonify(
        schemas.CsNpsOverviewOut().dump(
            {
                "since": period.start,
                "group_by": args["group_by"],
                "overall": _nps_out(report.overall),
                "groups": [
                    {
                        "key": None if row.key is None else key(row.key),
                        "label": row.label,
                        **_nps_out(row.result),
                    }
                    for row in page.items
                ],  # fmt: skip
                "meta": page_out(page)["meta"],
            }
        )
    )


@bp.route("/cs/accounts/<int:org_id>/nps")
@endpoint(
    "/cs/accounts/{org_id}/nps",
    "get",
    "One account's NPS over the last `days` with n and the 95% margin",
    schemas.CsOneAccountNpsOut,
    query=schemas.CsNpsIn,
    path_params=ACCOUNT,
    errors=DENIED,
)
def cs_account_nps(org_id: int) -> Response:
    user = api_user()
    org = require_account(db.session, user, org_id)
    args = load(schemas.CsNpsIn, request.args.to_dict())
    stmt, since = _nps_counts(db.session, user, args["days"], org_id)
    row = db.session.execute(stmt).first()
    account = _account_nps(*row) if row else _account_nps(org.id, org.name, 0, 0, 0)
    return jsonify(schemas.CsOneAccountNpsOut().dump({"since": since, "account": account}))


# --------------------------------------------------------------------------------------------
# Imports
# --------------------------------------------------------------------------------------------


def _job_out(job: ImportJob) -> dict[str, Any]:
    done = service.import_progress(job)
    options = job.options or {}
    return {
        "id": job.id,
        "kind": job.kind,
        "filename": job.filename,
        "status": job.status,
        "import_valid_rows": options.get("on_errors") == "skip_rows",
        "rows_total": job.rows_total,
        "rows_valid": job.rows_valid,
        "rows_done": job.rows_done,
        "error_count": job.error_count,
        "progress": done.fraction or 0.0,
        "finished": done.finished,
        "report": job.report or {},
        "status_url": url_for("api.cs_import_job", job_id=job.id),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


@bp.route("/cs/imports", methods=["POST"])
@endpoint(
    "/cs/imports",
    "post",
    "Upload a CSV (multipart/form-data: `file`, `kind`, `import_valid_rows`, `day_first`); "
    "answers 202 with the job and its status URL, the import runs in the background",
    schemas.CsImportJobOut,
    body=schemas.CsImportIn,
    body_type="multipart/form-data",
    status=202,
    scope="write",
    errors=(400, 401, 403),
)
def cs_import() -> Response:
    user = require_cs(api_user(), Action.MANAGE_CS)
    data = load(schemas.CsImportIn, {**request.form.to_dict(), **request.files.to_dict()})
    upload = data["file"]
    job = service.start_import(
        db.session,
        user,
        data["kind"],
        upload.filename,
        upload.stream,
        skip_invalid=data["import_valid_rows"],
        day_first=data["day_first"],
    )
    return _accepted(
        ImportJob,
        job.id,
        lambda row: schemas.CsImportJobOut().dump(_job_out(row)),
        url_for("api.cs_import_job", job_id=job.id),
    )


def _accepted(model: type[Any], row_id: int, dump: Callable[[Any], Any], location: str) -> Response:
    """202 for work this request queued: commit (its task is sent after the commit), then the
    job's row as it is now (an inline task may have finished it already), its URL as Location."""
    db.session.commit()
    row = db.session.get(model, row_id)
    assert row is not None
    db.session.refresh(row)
    response = jsonify(dump(row))
    response.status_code = 202
    response.headers["Location"] = location
    return response


@bp.route("/cs/imports/<int:job_id>")
@endpoint(
    "/cs/imports/{job_id}",
    "get",
    "An import's status, progress and row error report (`report.errors`, at most 200 rows)",
    schemas.CsImportJobOut,
    path_params={"job_id": "integer"},
    errors=DENIED,
)
def cs_import_job(job_id: int) -> Response:
    require_cs(api_user(), Action.MANAGE_CS)
    job = db.session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(str(_l("No such import.")))
    return jsonify(schemas.CsImportJobOut().dump(_job_out(job)))


def _run_out(run: RecomputeRun) -> dict[str, Any]:
    done = service.run_progress(run)
    return {
        "id": run.id,
        "day": run.day,
        "status": done.status,
        "requested_by_id": run.requested_by_id,
        "accounts_done": run.accounts_done,
        "accounts_total": run.accounts_total,
        "progress": done.fraction or 0.0,
        "finished": done.finished,
        "alerts_raised": run.alerts_raised,
        "bands": (run.summary or {}).get("bands", {}),
        "status_url": url_for("api.cs_recompute_run", run_id=run.id),
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


@bp.route("/cs/recompute", methods=["POST"])
@endpoint(
    "/cs/recompute",
    "post",
    "Recompute every account's health for today (after imports, say): answers 202 with the "
    "run and its status URL; a run already waiting to start is returned instead of a new one",
    schemas.CsRecomputeRunOut,
    status=202,
    scope="write",
    errors=(401, 403),
)
def cs_recompute() -> Response:
    user = require_cs(api_user(), Action.MANAGE_CS)
    run_id = service.start_recompute(db.session, user).id
    return _accepted(
        RecomputeRun,
        run_id,
        lambda row: schemas.CsRecomputeRunOut().dump(_run_out(row)),
        url_for("api.cs_recompute_run", run_id=run_id),
    )


@bp.route("/cs/recompute/<int:run_id>")
@endpoint(
    "/cs/recompute/{run_id}",
    "get",
    "A recompute run's status and progress",
    schemas.CsRecomputeRunOut,
    path_params={"run_id": "integer"},
    errors=DENIED,
)
def cs_recompute_run(run_id: int) -> Response:
    require_cs(api_user())
    run = db.session.get(RecomputeRun, run_id)
    if run is None:
        raise NotFound(str(_l("No such recompute.")))
    return jsonify(schemas.CsRecomputeRunOut().dump(_run_out(run)))


# --------------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------------


def _period_out(period: Period) -> dict[str, Any]:
    return {
        "start": period.start,
        "end": period.end,
        "label": scorecards.period_label(period),
        "kind": scorecards.period_kind(period),
    }


def _rate(rate: Any) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {"numerator": rate.numerator, "denominator": rate.denominator, "value": rate.value}


def _company_out(figures: scorecards.CompanyFigures) -> dict[str, Any]:
    retention = figures.first_year_retention
    resolution = figures.problem_resolution
    return {
        "self_service": _rate(figures.self_service),
        "tickets": [
            {
                "period": scorecards.period_label(p.period),
                "tickets": p.tickets,
                "active_accounts": p.active_accounts,
                "per_account": p.per_account,
                "change": p.change,
                "percent_change": p.percent_change,
            }
            for p in figures.tickets
        ],
        "first_year_retention": None
        if retention is None
        else {
            "overall": _rate(retention.overall),
            "by_owner": [
                {"owner": owner, **(_rate(rate) or {})}
                for owner, rate in sorted(retention.by_owner.items(), key=lambda i: str(i[0]))
            ],
        },
        "problem_resolution": {
            "overall": _rate(resolution.overall),
            "questions": _rate(resolution.questions),
            "ideas": _rate(resolution.ideas),
            "ideas_installed": resolution.ideas_installed,
            "target_days": resolution.target.days,
        },
        "revenue": None if figures.revenue is None else vars(figures.revenue),
        "logo_churn": _rate(figures.logo_churn),
    }


@bp.route("/cs/kpis")
@endpoint(
    "/cs/kpis",
    "get",
    "KPI scorecards of the CSMs you may see (your own first) and the company's CS figures "
    "for a month, a quarter or a custom period (default: this month)",
    schemas.CsKpisOut,
    query=schemas.CsKpiIn,
    errors=(400, 401, 403),
)
def cs_kpis() -> Response:
    user = require_cs(api_user())
    raw = request.args.to_dict()
    load(schemas.CsKpiIn, raw)
    period = scorecards.parse_period(raw, utcnow().date())
    cards = scorecards.all_scorecards(db.session, user, period)
    data = {
        "period": _period_out(period),
        "scorecards": [
            {
                "csm_id": card.csm_id,
                "name": card.name,
                "accounts": card.accounts,
                "tier_reached": card.scorecard.tier_reached,
                "kpis": [
                    {
                        "code": k.code,
                        "actual": k.actual,
                        "target": k.target,
                        "attainment": k.attainment,
                        "met": k.met,
                        "details": dict(k.details),
                    }
                    for k in card.kpis
                ],
            }
            for card in cards
        ],
        "company": _company_out(scorecards.company_figures(db.session, period)),
    }
    return jsonify(schemas.CsKpisOut().dump(data))
