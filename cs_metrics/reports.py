"""Read-only queries behind the CS dashboards: the portfolio, the account page, the account list.

Every list of accounts is limited to the reader's book (``access.book_filter``). The portfolio
runs a fixed number of statements however many accounts there are (grouped queries, no
per-account loop), so the page costs the same for 50 accounts and for 50,000; it reads the
snapshots of two days (the latest scored day and the first of the 30-day window) by index, so it
does not grow with the history either, and each of its tables stops at ``PORTFOLIO_ROWS``. The
health shown is the *effective* one (a CSM override while active), falling back to "no score".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, asc, desc, func, or_, select
from sqlalchemy.orm import Session, aliased

from cs_metrics import clv, nps, playbooks, service
from cs_metrics.access import book_filter, require_account
from cs_metrics.health import Band
from cs_metrics.models import (
    AccountProfile,
    AccountTag,
    AlertRule,
    Contact,
    CsTask,
    HealthAlert,
    HealthOverride,
    HealthSnapshot,
    ImprovementItem,
    ImprovementStatus,
    NpsResponse,
    TaskStatus,
)
from cs_metrics.settings import get_setting
from portal.core.activity import Activity
from portal.core.identity import Organization, OrgKind, User
from portal.core.pagination import Page

BANDS = ("green", "yellow", "red", "none")  # "none": no score yet
RENEWAL_DAYS = 90
DROP_DAYS = 30
PORTFOLIO_ROWS = 10  # rows of each portfolio table; the account list and the CSVs have all
TIMELINE_DAYS = 90
TIMELINE_LIMIT = 50
# Left out of an account's timeline (the activity log keeps them): what a member does many
# times a day (reads, sign-ins, searches: 72 of 134 lines of a demo account's quarter were
# reads) and the moderation steps that restate the feature's own line ("Asked a question"
# came with "Posted content" and "Content published").
TIMELINE_LEFT_OUT = frozenset(
    {
        "content.viewed",
        "content.submitted",
        "content.published",
        "account.signed_in",
        "account.signed_out",
        "search.performed",
        "search.clicked",
    }
)
NPS_RESPONSES_SHOWN = 50
COMMUNITY_VERBS = {"ideas_voted": "idea.voted", "templates_adopted": "template.downloaded"}
SORTS = ("name", "-name", "score", "-score", "arr", "-arr", "renewal", "-renewal")


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def _scored_day(today: date, *, since: date | None = None) -> Any:
    """The latest day up to ``today`` (or, with ``since``, the first day from ``since``) on
    which computed scores were stored: one probe of the day index, evaluated once.

    The recompute writes a snapshot for every customer account on the day it runs, so the
    snapshots of the latest such day are each account's latest; an account that has none
    that day (added since) shows "no score". Looking for each account's own latest day
    instead costs an index probe per account, or a grouping of every snapshot ever taken."""
    other = aliased(HealthSnapshot)
    if since is None:
        return select(func.max(other.day)).where(other.day <= today).scalar_subquery()
    return (
        select(func.min(other.day))
        .where(other.day >= since, other.day <= today, other.score.is_not(None))
        .scalar_subquery()
    )


def _accounts_select(session: Session, user: User, today: date, *columns: Any) -> Select[Any]:
    """Customer organizations in the user's book, outer-joined to their profile and their
    latest snapshot (``HealthSnapshot`` may be NULL: no score yet)."""
    return (
        select(*columns)
        .select_from(Organization)
        .outerjoin(AccountProfile, AccountProfile.organization_id == Organization.id)
        .outerjoin(
            HealthSnapshot,
            and_(
                HealthSnapshot.organization_id == Organization.id,
                HealthSnapshot.day == _scored_day(today),
            ),
        )
        .where(Organization.kind == OrgKind.CUSTOMER, book_filter(session, user))
    )


def _band_key(band: str | None) -> str:
    return band if band in ("green", "yellow", "red") else "none"


@dataclass(frozen=True)
class AccountRow:
    """One account as the lists show it."""

    org_id: int
    name: str
    arr: Decimal | None
    renewal_date: date | None
    segment: str | None
    csm_name: str | None
    score: float | None  # effective
    band: str  # effective, or "none"
    overridden: bool
    complete: bool | None
    day: date | None


def _row(r: Any) -> AccountRow:
    return AccountRow(
        org_id=r.id,
        name=r.name,
        arr=r.arr,
        renewal_date=r.renewal_date,
        segment=r.segment,
        csm_name=r.csm_name,
        score=r.effective_score,
        band=_band_key(r.effective_band),
        overridden=r.override_id is not None,
        complete=r.complete,
        day=r.day,
    )


def _row_columns(csm: Any) -> tuple[Any, ...]:
    return (
        Organization.id,
        Organization.name,
        AccountProfile.arr,
        AccountProfile.renewal_date,
        AccountProfile.segment,
        csm.display_name.label("csm_name"),
        HealthSnapshot.effective_score,
        HealthSnapshot.effective_band,
        HealthSnapshot.override_id,
        HealthSnapshot.complete,
        HealthSnapshot.day,
    )


# --------------------------------------------------------------------------------------------
# Portfolio
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandTotal:
    band: str
    accounts: int
    arr: Decimal


@dataclass(frozen=True)
class Drop:
    org_id: int
    name: str
    from_score: float
    to_score: float
    from_day: date
    to_day: date

    @property
    def points(self) -> float:
        return self.from_score - self.to_score


@dataclass
class Portfolio:
    today: date
    bands: list[BandTotal]
    renewals: list[AccountRow]
    drops: list[Drop]
    renewals_total: int = 0
    accounts: int = 0
    arr: Decimal = Decimal(0)


def portfolio(session: Session, user: User, today: date) -> Portfolio:
    """Accounts and ARR by effective band, the first renewals of the next 90 days (and how
    many there are), the biggest computed-score drops over 30 days: four statements (plus the
    book setting), each table cut to ``PORTFOLIO_ROWS``; the account list has the rest."""
    bands = band_totals(session, user, today)
    renewals = account_list(
        session, user, today, AccountFilters(renewal_days=RENEWAL_DAYS, sort="renewal"),
        1, PORTFOLIO_ROWS,
    )  # fmt: skip
    return Portfolio(
        today=today,
        bands=bands,
        renewals=renewals.items,
        drops=drops(session, user, today, PORTFOLIO_ROWS),
        renewals_total=renewals.total,
        accounts=sum(b.accounts for b in bands),
        arr=sum((b.arr for b in bands), Decimal(0)),
    )


def band_totals(session: Session, user: User, today: date) -> list[BandTotal]:
    """Accounts and ARR of the user's book by effective band ("none": no score yet)."""
    band_col = HealthSnapshot.effective_band
    totals = {
        _band_key(band): (count, arr)
        for band, count, arr in session.execute(
            _accounts_select(
                session,
                user,
                today,
                band_col,
                func.count(Organization.id),
                func.coalesce(func.sum(AccountProfile.arr), 0),
            ).group_by(band_col)
        )
    }
    return [
        BandTotal(b, int(totals.get(b, (0, 0))[0]), Decimal(totals.get(b, (0, 0))[1] or 0))
        for b in BANDS
    ]


def drops(session: Session, user: User, today: date, limit: int | None = None) -> list[Drop]:
    """Latest computed score vs the one on the first scored day of the 30-day window, biggest
    fall first (an account scored only since then is not compared yet).

    Computed, not effective, scores: an override must not hide an account that is falling."""
    earlier = aliased(HealthSnapshot)
    drop = (earlier.score - HealthSnapshot.score).label("drop")
    rows = session.execute(
        _accounts_select(
            session,
            user,
            today,
            Organization.id,
            Organization.name,
            earlier.score,
            HealthSnapshot.score,
            earlier.day,
            HealthSnapshot.day,
        )
        .join(
            earlier,
            and_(
                earlier.organization_id == Organization.id,
                earlier.day == _scored_day(today, since=today - timedelta(days=DROP_DAYS)),
            ),
        )
        .where(HealthSnapshot.score.is_not(None), drop > 0)
        .order_by(drop.desc(), Organization.name)
        .limit(limit)
    ).all()
    return [Drop(r[0], r[1], float(r[2]), float(r[3]), r[4], r[5]) for r in rows]


# --------------------------------------------------------------------------------------------
# Account list
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountFilters:
    q: str = ""
    band: str = ""
    segment: str = ""
    csm_id: int | None = None
    sort: str = "name"
    renewal_days: int | None = None  # renewing between today and that many days from now


def account_list(
    session: Session,
    user: User,
    today: date,
    filters: AccountFilters,
    page: int = 1,
    per_page: int = 25,
) -> Page[AccountRow]:
    """Accounts in the user's book: search by name, filter by band, segment and CSM, sorted;
    one page of rows (and one count)."""
    csm = aliased(User)
    stmt = _accounts_select(session, user, today, *_row_columns(csm)).outerjoin(
        csm, csm.id == AccountProfile.csm_id
    )
    if filters.q.strip():
        pattern = "%" + filters.q.strip().lower().replace("%", r"\%").replace("_", r"\_") + "%"
        stmt = stmt.where(
            or_(
                func.lower(Organization.name).like(pattern, escape="\\"),
                func.lower(AccountProfile.external_id).like(pattern, escape="\\"),
            )
        )
    if filters.band == "none":
        stmt = stmt.where(HealthSnapshot.effective_band.is_(None))
    elif filters.band in BANDS:
        stmt = stmt.where(HealthSnapshot.effective_band == filters.band)
    if filters.segment:
        stmt = stmt.where(AccountProfile.segment == filters.segment)
    if filters.csm_id is not None:
        stmt = stmt.where(AccountProfile.csm_id == filters.csm_id)
    if filters.renewal_days is not None:
        stmt = stmt.where(
            AccountProfile.renewal_date >= today,
            AccountProfile.renewal_date <= today + timedelta(days=filters.renewal_days),
        )
    sort = filters.sort if filters.sort in SORTS else "name"
    column = {
        "name": Organization.name,
        "score": HealthSnapshot.effective_score,
        "arr": AccountProfile.arr,
        "renewal": AccountProfile.renewal_date,
    }[sort.lstrip("-")]
    direction = desc if sort.startswith("-") else asc
    # NULLs last either way (no score, no ARR) without relying on NULLS LAST support
    stmt = stmt.order_by(column.is_(None), direction(column), Organization.name, Organization.id)
    # The total rides along as an uncorrelated scalar subquery (one round trip, as in
    # ``portal.core.pagination.paginate``); a second query only past the last page.
    count = select(func.count()).select_from(stmt.order_by(None).subquery())
    rows = session.execute(
        stmt.add_columns(count.scalar_subquery().label("total_rows"))
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = rows[0].total_rows if rows else session.scalar(count) or 0
    return Page(items=[_row(r) for r in rows], page=page, per_page=per_page, total=total)


def all_accounts(
    session: Session, user: User, today: date, filters: AccountFilters
) -> list[AccountRow]:
    """Every row of the filtered list (for the CSV export)."""
    first = account_list(session, user, today, filters, 1, 1)
    if first.total == 0:
        return []
    return account_list(session, user, today, filters, 1, first.total).items


def list_choices(session: Session, user: User) -> dict[str, list[Any]]:
    """Segments and CSMs that occur in the user's book (for the filter menus)."""
    segments = session.scalars(
        select(AccountProfile.segment)
        .join(Organization, Organization.id == AccountProfile.organization_id)
        .where(AccountProfile.segment.is_not(None), book_filter(session, user))
        .distinct()
        .order_by(AccountProfile.segment)
    ).all()
    csms = session.execute(
        select(User.id, User.display_name)
        .join(AccountProfile, AccountProfile.csm_id == User.id)
        .join(Organization, Organization.id == AccountProfile.organization_id)
        .where(book_filter(session, user))
        .distinct()
        .order_by(User.display_name)
    ).all()
    return {"segments": list(segments), "csms": [(i, n) for i, n in csms]}


# --------------------------------------------------------------------------------------------
# Account page
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClvFigure:
    value: float | None
    result: clv.ClvResult | None
    assumptions: dict[str, Any]
    churn: float | None
    band: str
    problem: str | None = None


@dataclass
class AccountOverview:
    org: Organization
    profile: AccountProfile | None
    csm: User | None
    contacts: list[Contact]
    tags: list[AccountTag]
    health: dict[str, Any]
    override_author: User | None
    model_changes: list[tuple[date, str]]
    nps_responses: list[NpsResponse]
    nps_quarters: list[tuple[str, nps.NpsResult]]
    nps_overall: nps.NpsResult
    timeline: list[tuple[Activity, User | None]]
    timeline_truncated: bool
    community: dict[str, int]
    alerts: list[HealthAlert]
    alert_rules: dict[int, str]  # names of the rules that raised the alerts
    tasks: list[CsTask]
    improvements: list[ImprovementItem]
    clv: ClvFigure


def _quarter(moment: datetime) -> str:
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def _clv_figure(session: Session, arr: Decimal | None, band: str) -> ClvFigure:
    settings = get_setting(session, "clv")
    churn_table: dict[str, float] = dict(settings.get("churn_by_band") or {})
    if arr is None:
        return ClvFigure(None, None, settings, None, band, str(_l("No ARR is known.")))
    if arr < 0:
        return ClvFigure(None, None, settings, None, band, str(_l("The ARR is negative.")))
    revenue = float(arr)
    try:
        assumptions = clv.ClvAssumptions(
            gross_margin=float(settings["gross_margin"]),
            discount_rate=float(settings["discount_rate"]),
            churn_by_band={b: float(churn_table[b.value]) for b in Band},
        )
        churn = float(churn_table.get(band, churn_table.get("unknown", 0.15)))
        account = clv.ClvInput(
            annual_revenue=revenue,
            service_cost=revenue * float(settings.get("service_cost_share", 0)),
            cross_sell_probability=float(settings.get("cross_sell_probability", 0)),
            expansion=revenue * float(settings.get("expansion_share", 0)),
            band=Band(band) if band in ("green", "yellow", "red") else None,
            churn_probability=None if band in ("green", "yellow", "red") else churn,
        )
        result = clv.lifetime_value(account, assumptions)
    except (clv.ClvInputError, KeyError, TypeError, ValueError):
        return ClvFigure(
            None, None, settings, None, band, str(_l("The CLV assumptions are not valid."))
        )
    return ClvFigure(result.value, result, settings, result.churn_probability, band)


def _since(today: date, days: int) -> datetime:
    return datetime.combine(today - timedelta(days=days), time.min, tzinfo=UTC)


def account_overview(
    session: Session,
    user: User,
    org_id: int,
    today: date,
    *,
    timeline_limit: int = TIMELINE_LIMIT,
) -> AccountOverview:
    """Everything the account page shows; NotFound outside the user's book."""
    org = require_account(session, user, org_id)
    profile = session.get(AccountProfile, org_id)
    csm = session.get(User, profile.csm_id) if profile and profile.csm_id else None
    health = service.explain(session, org_id)
    override_author = None
    if health["override"] and health["override"]["created_by_id"]:
        override_author = session.get(User, health["override"]["created_by_id"])
    changes: list[tuple[date, str]] = []
    previous = None
    for point in health["history"]:
        if previous is not None and point["model_version"] != previous:
            changes.append((point["day"], point["model_version"]))
        previous = point["model_version"]

    responses = list(
        session.scalars(
            select(NpsResponse)
            .where(NpsResponse.organization_id == org_id)
            .order_by(NpsResponse.responded_at.desc())
        )
    )
    by_quarter = nps.nps_by((_quarter(r.responded_at), r.score) for r in responses)
    overall = nps.nps_result(r.score for r in responses)

    author = aliased(User)
    timeline_rows = session.execute(
        select(Activity, author)
        .join(author, author.id == Activity.actor_id)
        .where(
            author.organization_id == org_id,
            Activity.occurred_at >= _since(today, TIMELINE_DAYS),
            Activity.verb.not_in(TIMELINE_LEFT_OUT),
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(timeline_limit + 1)
    ).all()
    community = {key: 0 for key in COMMUNITY_VERBS}
    verb_keys = {verb: key for key, verb in COMMUNITY_VERBS.items()}
    for verb, count in session.execute(
        select(Activity.verb, func.count(Activity.id))
        .where(Activity.organization_id == org_id, Activity.verb.in_(verb_keys))
        .group_by(Activity.verb)
    ):
        community[verb_keys[verb]] = int(count)

    band = _band_key((health["latest"] or {}).get("effective_band"))
    alerts = list(
        session.scalars(
            select(HealthAlert)
            .where(HealthAlert.organization_id == org_id, HealthAlert.status == "open")
            .order_by(HealthAlert.day.desc(), HealthAlert.id.desc())
        )
    )
    rule_ids = {a.rule_id for a in alerts if a.rule_id is not None}
    rules = (
        {
            rule.id: playbooks.display_name(rule)
            for rule in session.scalars(select(AlertRule).where(AlertRule.id.in_(rule_ids)))
        }
        if rule_ids
        else {}
    )
    return AccountOverview(
        org=org,
        profile=profile,
        csm=csm,
        contacts=list(
            session.scalars(
                select(Contact).where(Contact.organization_id == org_id).order_by(Contact.name)
            )
        ),
        tags=list(
            session.scalars(
                select(AccountTag)
                .where(AccountTag.organization_id == org_id)
                .order_by(AccountTag.tag)
            )
        ),
        health=health,
        override_author=override_author,
        model_changes=changes,
        nps_responses=responses[:NPS_RESPONSES_SHOWN],
        nps_quarters=sorted(by_quarter.items()),
        nps_overall=overall,
        timeline=[(a, u) for a, u in timeline_rows[:timeline_limit]],
        timeline_truncated=len(timeline_rows) > timeline_limit,
        community=community,
        alerts=alerts,
        alert_rules=rules,
        tasks=list(
            session.scalars(
                select(CsTask)
                .where(CsTask.organization_id == org_id, CsTask.status == TaskStatus.OPEN)
                .order_by(CsTask.due_on.is_(None), CsTask.due_on, CsTask.id)
            )
        ),
        improvements=list(
            session.scalars(
                select(ImprovementItem)
                .where(ImprovementItem.organization_id == org_id)
                .order_by(
                    ImprovementItem.status == ImprovementStatus.CLOSED,
                    ImprovementItem.opened_at.desc(),
                )
            )
        ),
        clv=_clv_figure(session, profile.arr if profile else None, band),
    )


def override_history(session: Session, org_id: int, limit: int = 20) -> Sequence[HealthOverride]:
    """The account's overrides, newest first (active, expired and revoked)."""
    return session.scalars(
        select(HealthOverride)
        .where(HealthOverride.organization_id == org_id)
        .order_by(HealthOverride.id.desc())
        .limit(limit)
    ).all()


__all__ = [
    "BANDS",
    "SORTS",
    "AccountFilters",
    "AccountOverview",
    "AccountRow",
    "BandTotal",
    "ClvFigure",
    "Drop",
    "Portfolio",
    "account_list",
    "account_overview",
    "all_accounts",
    "band_totals",
    "drops",
    "list_choices",
    "override_history",
    "portfolio",
]
