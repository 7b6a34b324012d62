"""KPI scorecards per CSM, company customer-success figures and NPS reports.

Aggregation happens in SQL, one grouped statement per signal for every CSM (or account) at
once; the pure calculators in ``cs_metrics.kpis`` and ``cs_metrics.nps`` turn those plain
counts into KPIs. So the number of statements behind a page does not grow with the number of
CSMs, accounts or responses.

Definitions that the data forces (the CRM import has no "churned on" column):

* An account is a *customer on a day* when it has an invoice ordered in the 365 days up to
  that day; its *ARR* on that day is the sum of those invoices. Revenue retention and logo
  churn compare the ARR of the accounts present at the period's start with their ARR at its
  end; first-year retention takes the last day covered by an account's last invoice as its
  last day as a customer.
* The base KPI reads each account's latest *computed* health score on or before the period's
  last day (not the effective one: a CSM's own override must not raise the CSM's KPI).
* An account is *active* in a period when it is a customer then or its people used the
  portal in it (tickets per active account).
* A figure whose source has no rows is ``None`` ("no data"), never a made-up 0.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, and_, case, distinct, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from cs_metrics import kpis, signals, worklist
from cs_metrics.access import book_filter, book_owner, require_cs
from cs_metrics.kpis import Period
from cs_metrics.models import (
    AccountProfile,
    HealthSnapshot,
    Invoice,
    KpiTarget,
    NpsResponse,
    Ticket,
)
from cs_metrics.nps import NpsComparison, NpsResult, compare_nps, nps_from_counts
from portal.core.activity import VERBS, Activity
from portal.core.db import utcnow
from portal.core.errors import DomainError, Invalid, NotFound, PermissionDenied
from portal.core.identity import Organization, OrgKind, Role, User, UserRole
from portal.core.permissions import Action, can

__all__ = [
    "BASE_THRESHOLD",
    "DEFAULT_TARGETS",
    "KPI_CODES",
    "CompanyFigures",
    "CsmCard",
    "NpsPeriodComparison",
    "NpsReport",
    "NpsRow",
    "Period",
    "ProblemResolution",
    "TargetTable",
    "all_scorecards",
    "company_figures",
    "compare_periods",
    "csm_list",
    "csm_scorecard",
    "custom",
    "month",
    "month_of",
    "months_of",
    "nps_report",
    "parse_period",
    "period_kind",
    "period_label",
    "previous",
    "quarter",
    "quarter_of",
    "set_target",
    "target_table",
]

BASE_THRESHOLD = 85.0  # health score at or above which an account counts as healthy
BASE = "base_healthy_share"
COLLABORATION = "collaboration_closed"
NPS_CHANGE = "nps_change"
REFERRALS = "referrals"
KPI_CODES = (BASE, COLLABORATION, NPS_CHANGE, REFERRALS)

# Built-in targets, used when staff set neither a CSM's own target nor a default row.
# Units: share 0..1, items closed per month, NPS points, referrals per quarter.
DEFAULT_TARGETS: dict[str, float] = {
    BASE: 0.8,
    COLLABORATION: 2.0,
    NPS_CHANGE: 5.0,
    REFERRALS: 2.0,
}
# Accepted target values (inclusive), so a typo cannot set a target of 8000%.
TARGET_LIMITS: dict[str, tuple[float, float]] = {
    BASE: (0.01, 1.0),
    COLLABORATION: (0.0, 100.0),
    NPS_CHANGE: (-100.0, 200.0),
    REFERRALS: (0.0, 1000.0),
}
TREND_PERIODS = 6  # periods shown in the tickets-per-active-account trend
RESOLUTION_TARGET = timedelta(days=30)  # "within a target time" for the PMs' resolution rate
# An idea's status change to any other status (planned, shipped, declined...) is the product
# manager's answer to it (portal.roadmap records ``{"from": old, "to": new}``).
IDEA_OPEN_STATUSES = frozenset({"open", "under_review"})
IDEA_VERBS = ("idea.created", "idea.status_changed")
NPS_GROUPS = ("account", "segment", "csm", "month")


# --------------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------------


def month(year: int, number: int) -> Period:
    start = date(year, number, 1)
    return Period(start, _next_month(start))


def quarter(year: int, number: int) -> Period:
    start = date(year, 3 * (number - 1) + 1, 1)
    return Period(start, _next_month(_next_month(_next_month(start))))


def custom(first_day: date, last_day: date) -> Period:
    """The days ``first_day..last_day``, both included (as people type a range)."""
    return Period(first_day, last_day + timedelta(days=1))


def month_of(day: date) -> Period:
    return month(day.year, day.month)


def quarter_of(day: date) -> Period:
    return quarter(day.year, (day.month - 1) // 3 + 1)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _is_month(period: Period) -> bool:
    return period.start.day == 1 and period.end == _next_month(period.start)


def _is_quarter(period: Period) -> bool:
    return (
        period.start.day == 1 and period.start.month % 3 == 1 and period == quarter_of(period.start)
    )


def period_kind(period: Period) -> str:
    """ "month", "quarter" or "custom": how a picker shows the period."""
    if _is_month(period):
        return "month"
    return "quarter" if _is_quarter(period) else "custom"


def previous(period: Period) -> Period:
    """The period just before: the previous month or quarter, else as many days before."""
    if _is_month(period):
        return month_of(period.start - timedelta(days=1))
    if _is_quarter(period):
        return quarter_of(period.start - timedelta(days=1))
    return Period(period.start - timedelta(days=period.days), period.start)


def months_of(period: Period) -> list[Period]:
    """The calendar months the period touches, each clipped to the period."""
    months: list[Period] = []
    cursor = period.start
    while cursor < period.end:
        stop = min(_next_month(cursor), period.end)
        months.append(Period(cursor, stop))
        cursor = stop
    return months


def period_label(period: Period) -> str:
    if _is_month(period):
        return period.start.strftime("%Y-%m")
    if _is_quarter(period):
        return f"{period.start.year}-Q{(period.start.month - 1) // 3 + 1}"
    last = period.end - timedelta(days=1)
    return f"{period.start.isoformat()} – {last.isoformat()}"


_MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER_RE = re.compile(r"^(\d{4})-?[Qq]([1-4])$")
MAX_CUSTOM_DAYS = 3 * 366
# Years a picker accepts: a period's end (the day after it) and the periods around it (the
# previous one, a trend of months before it) must still be dates Python can hold (year 9999).
MIN_YEAR = 1900
MAX_YEAR = 9998


def _year_error(field: str) -> Invalid:
    return Invalid(
        str(_l("Choose a year from %(first)d to %(last)d.", first=MIN_YEAR, last=MAX_YEAR)),
        field=field,
    )


def parse_period(args: Mapping[str, Any], today: date, prefix: str = "") -> Period:
    """The period a picker asks for: ``kind`` month (``month=2026-03``), quarter
    (``quarter=2026-Q1``) or custom (``start``/``end``, both days included); the current
    month by default. A bad value, or a year outside MIN_YEAR..MAX_YEAR, raises Invalid
    naming its field."""

    def arg(name: str) -> str:
        return str(args.get(prefix + name) or "").strip()

    kind = arg("kind") or "month"
    if kind == "month":
        value = arg("month")
        if not value:
            return month_of(today)
        found = _MONTH_RE.match(value)
        if found is None or not 1 <= int(found.group(2)) <= 12:
            raise Invalid(str(_l("Enter a month as YYYY-MM.")), field=prefix + "month")
        if not MIN_YEAR <= int(found.group(1)) <= MAX_YEAR:
            raise _year_error(prefix + "month")
        return month(int(found.group(1)), int(found.group(2)))
    if kind == "quarter":
        value = arg("quarter")
        if not value:
            return quarter_of(today)
        found = _QUARTER_RE.match(value)
        if found is None:
            raise Invalid(
                str(_l("Enter a quarter as YYYY-Q1 to YYYY-Q4.")), field=prefix + "quarter"
            )
        if not MIN_YEAR <= int(found.group(1)) <= MAX_YEAR:
            raise _year_error(prefix + "quarter")
        return quarter(int(found.group(1)), int(found.group(2)))
    if kind == "custom":
        days: list[date] = []
        for name in ("start", "end"):
            try:
                day = date.fromisoformat(arg(name))
            except ValueError:
                raise Invalid(str(_l("Enter a date as YYYY-MM-DD.")), field=prefix + name) from None
            if not MIN_YEAR <= day.year <= MAX_YEAR:
                raise _year_error(prefix + name)
            days.append(day)
        if days[1] < days[0]:
            raise Invalid(str(_l("The end must not be before the start.")), field=prefix + "end")
        if (days[1] - days[0]).days >= MAX_CUSTOM_DAYS:
            raise Invalid(str(_l("Choose at most three years.")), field=prefix + "end")
        return custom(days[0], days[1])
    raise Invalid(str(_l("Choose month, quarter or custom.")), field=prefix + "kind")


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return _at(period.start), _at(period.end)


def _last_day(period: Period, today: date) -> date:
    """The day a period is judged on: its last day, or today while it is running."""
    return min(period.end - timedelta(days=1), today)


def _bucket(column: Any, periods: Sequence[Period]) -> Any:
    """A CASE giving the index of the period ``column`` (a time) falls in."""
    return case(
        *(((column >= _at(p.start)) & (column < _at(p.end)), i) for i, p in enumerate(periods)),
        else_=None,
    )


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetTable:
    """Every stored target: the default row (``csm_id`` None) and per-CSM overrides."""

    defaults: dict[str, float]  # built-in defaults with the stored default rows over them
    by_csm: dict[int, dict[str, float]]
    stored_defaults: frozenset[str] = frozenset()  # KPIs whose default row staff set

    def for_csm(self, csm_id: int) -> dict[str, float]:
        return {**self.defaults, **self.by_csm.get(csm_id, {})}

    def source(self, csm_id: int, kpi: str) -> str:
        """Where the CSM's target comes from: "csm", "default" (staff) or "built_in"."""
        if kpi in self.by_csm.get(csm_id, {}):
            return "csm"
        return "default" if kpi in self.stored_defaults else "built_in"


def target_table(session: Session) -> TargetTable:
    defaults = dict(DEFAULT_TARGETS)
    stored: set[str] = set()
    by_csm: dict[int, dict[str, float]] = defaultdict(dict)
    for row in session.execute(select(KpiTarget.csm_id, KpiTarget.kpi, KpiTarget.target)):
        if row.kpi not in DEFAULT_TARGETS:
            continue
        if row.csm_id is None:
            defaults[row.kpi] = row.target
            stored.add(row.kpi)
        else:
            by_csm[row.csm_id][row.kpi] = row.target
    return TargetTable(defaults, dict(by_csm), frozenset(stored))


def _is_csm(session: Session, user_id: int) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .join(UserRole, UserRole.user_id == User.id)
            .join(Organization, Organization.id == User.organization_id)
            .where(
                User.id == user_id,
                UserRole.role == Role.CSM.value,
                Organization.kind == OrgKind.VENDOR,
            )
        )
        or 0
    ) > 0


def set_target(
    session: Session, actor: User | None, csm_id: int | None, kpi: str, value: float | None
) -> KpiTarget | None:
    """Set one target (vendor admins only): the default for every CSM (``csm_id`` None) or one
    CSM's own. ``value`` None removes it, so the default (or the built-in one) applies again.

    Units are those of ``DEFAULT_TARGETS``; a value out of ``TARGET_LIMITS`` names ``kpi`` as
    the field in error."""
    if not can(actor, Action.CONFIGURE_CS):
        raise PermissionDenied(str(_l("Only vendor admins can change KPI targets.")))
    if kpi not in KPI_CODES:
        raise DomainError(str(_l("Unknown KPI.")), field="kpi")
    if csm_id is not None and not _is_csm(session, csm_id):
        raise DomainError(str(_l("Choose a customer success manager.")), field="csm_id")
    where = (KpiTarget.csm_id.is_(None) if csm_id is None else KpiTarget.csm_id == csm_id,)
    row = session.scalars(select(KpiTarget).where(KpiTarget.kpi == kpi, *where)).first()
    if value is None:
        if row is not None:
            session.delete(row)
            session.flush()
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise DomainError(str(_l("Enter a number.")), field=kpi)
    low, high = TARGET_LIMITS[kpi]
    if not low <= value <= high:
        raise DomainError(
            str(
                _l(
                    "Enter a value from %(low)s to %(high)s.",
                    low=_fmt(low, kpi),
                    high=_fmt(high, kpi),
                )
            ),
            field=kpi,
        )
    if row is None:
        row = KpiTarget(csm_id=csm_id, kpi=kpi, target=float(value))
        session.add(row)
    else:
        row.target = float(value)
    row.updated_by_id = actor.id if actor is not None else None
    session.flush()
    return row


def _fmt(value: float, kpi: str) -> str:
    if kpi == BASE:
        return f"{value * 100:g}%"
    return f"{value:g}"


# --------------------------------------------------------------------------------------------
# CSM scorecards
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsmCard:
    """One CSM's three tiers for a period, with the targets behind them and their source."""

    csm_id: int
    name: str
    period: Period
    scorecard: kpis.Scorecard
    targets: dict[str, float]
    target_sources: dict[str, str]
    accounts: int

    @property
    def kpis(self) -> list[kpis.Kpi]:
        return [self.scorecard.base, self.scorecard.collaboration, *self.scorecard.strategic]


def csm_list(session: Session, only: int | None = None) -> list[tuple[int, str]]:
    """(id, name) of every active CSM (one statement; no relationship is loaded)."""
    stmt = (
        select(User.id, User.display_name)
        .join(UserRole, UserRole.user_id == User.id)
        .join(Organization, Organization.id == User.organization_id)
        .where(
            UserRole.role == Role.CSM.value,
            Organization.kind == OrgKind.VENDOR,
            User.active.is_(True),
        )
        .order_by(User.display_name, User.id)
    )
    if only is not None:
        stmt = stmt.where(User.id == only)
    return [(uid, name) for uid, name in session.execute(stmt)]


def _health_by_csm(
    session: Session, csm_ids: Sequence[int] | None, as_of: date
) -> dict[int, list[float | None]]:
    latest = (
        select(HealthSnapshot.organization_id, func.max(HealthSnapshot.day).label("day"))
        .where(HealthSnapshot.day <= as_of)
        .group_by(HealthSnapshot.organization_id)
        .subquery()
    )
    stmt = (
        select(AccountProfile.csm_id, HealthSnapshot.score)
        .join(Organization, Organization.id == AccountProfile.organization_id)
        .outerjoin(latest, latest.c.organization_id == AccountProfile.organization_id)
        .outerjoin(
            HealthSnapshot,
            (HealthSnapshot.organization_id == latest.c.organization_id)
            & (HealthSnapshot.day == latest.c.day),
        )
        .where(Organization.kind == OrgKind.CUSTOMER, AccountProfile.csm_id.is_not(None))
    )
    if csm_ids is not None:
        stmt = stmt.where(AccountProfile.csm_id.in_(csm_ids))
    scores: dict[int, list[float | None]] = defaultdict(list)
    for csm_id, score in session.execute(stmt):
        scores[csm_id].append(score)
    return scores


def _category_sums(score: Any, condition: Any) -> list[Any]:
    """SUMs counting promoters, passives and detractors among the rows meeting ``condition``."""
    return [
        func.sum(case((condition & (score >= 9), 1), else_=0)),
        func.sum(case((condition & (score >= 7) & (score <= 8), 1), else_=0)),
        func.sum(case((condition & (score <= 6), 1), else_=0)),
    ]


def _result(p: Any, pa: Any, d: Any) -> NpsResult:
    return nps_from_counts(int(p or 0), int(pa or 0), int(d or 0))


def _nps_by_csm(
    session: Session, csm_ids: Sequence[int] | None, before: Period, period: Period
) -> dict[int, tuple[NpsResult, NpsResult]]:
    at = NpsResponse.responded_at
    b_start, b_end = _bounds(before)
    start, end = _bounds(period)
    stmt = (
        select(
            AccountProfile.csm_id,
            *_category_sums(NpsResponse.score, (at >= b_start) & (at < b_end)),
            *_category_sums(NpsResponse.score, (at >= start) & (at < end)),
        )
        .join(AccountProfile, AccountProfile.organization_id == NpsResponse.organization_id)
        .where(
            AccountProfile.csm_id.is_not(None),
            or_(and_(at >= b_start, at < b_end), and_(at >= start, at < end)),
        )
        .group_by(AccountProfile.csm_id)
    )
    if csm_ids is not None:
        stmt = stmt.where(AccountProfile.csm_id.in_(csm_ids))
    return {row[0]: (_result(*row[1:4]), _result(*row[4:7])) for row in session.execute(stmt)}


def _cards(
    session: Session, csms: Sequence[tuple[int, str]], period: Period, *, restrict: bool
) -> list[CsmCard]:
    """Cards for ``csms``: five statements whatever their number (restrict: filter by id)."""
    ids = [csm_id for csm_id, _ in csms] if restrict else None
    today = utcnow().date()
    before = previous(period)
    table = target_table(session)
    health = _health_by_csm(session, ids, _last_day(period, today))
    items = worklist.improvement_items(session, *_bounds(period), ids)
    nps = _nps_by_csm(session, ids, before, period)
    referrals = worklist.referral_counts(session, *_bounds(period))
    empty = nps_from_counts(0, 0, 0)
    cards = []
    for csm_id, name in csms:
        targets = table.for_csm(csm_id)
        scores = health.get(csm_id, [])
        nps_before, nps_after = nps.get(csm_id, (empty, empty))
        card = kpis.scorecard(
            kpis.base_kpi(scores, threshold=BASE_THRESHOLD, target_share=targets[BASE]),
            kpis.collaboration_kpi(
                items.get(csm_id, []), period, target_per_month=targets[COLLABORATION]
            ),
            [
                kpis.nps_change_kpi(nps_before, nps_after, target_points=targets[NPS_CHANGE]),
                kpis.referral_kpi(
                    referrals.get(csm_id, 0),
                    nps_after.promoters,
                    period,
                    target_per_month=targets[REFERRALS] / 3.0,
                ),
            ],
        )
        cards.append(
            CsmCard(
                csm_id,
                name,
                period,
                card,
                targets,
                {kpi: table.source(csm_id, kpi) for kpi in KPI_CODES},
                len(scores),
            )
        )
    return cards


def csm_scorecard(session: Session, csm_id: int, period: Period) -> CsmCard:
    """One CSM's scorecard (``card.scorecard`` is the ``kpis.Scorecard``), targets applied."""
    csms = csm_list(session, csm_id)
    if not csms:
        raise NotFound(str(_l("No such customer success manager.")))
    return _cards(session, csms, period, restrict=True)[0]


def all_scorecards(session: Session, user: User | None, period: Period) -> list[CsmCard]:
    """Every CSM's card the user may see (a CSM limited to their own book sees their own),
    the user's own card first. A fixed number of statements for any number of CSMs."""
    viewer = require_cs(user)
    owner = book_owner(session, viewer)
    csms = csm_list(session, owner)
    csms.sort(key=lambda c: c[0] != viewer.id)  # stable: the rest stay in name order
    return _cards(session, csms, period, restrict=owner is not None)


# --------------------------------------------------------------------------------------------
# Company figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemResolution:
    """Customer problems resolved within ``target`` / received, by source; a source whose
    feature is not installed (or that received nothing) is ``None``."""

    overall: kpis.Rate | None
    questions: kpis.Rate | None
    ideas: kpis.Rate | None
    ideas_installed: bool
    target: timedelta


@dataclass(frozen=True)
class CompanyFigures:
    period: Period
    self_service: kpis.Rate | None
    tickets: list[kpis.TicketTrendPoint[Period]]  # oldest first, ending with ``period``
    first_year_retention: kpis.RateBreakdown[str] | None
    problem_resolution: ProblemResolution
    revenue: kpis.RevenueRetention | None
    logo_churn: kpis.Rate | None


def _known(rate: kpis.Rate) -> kpis.Rate | None:
    return rate if rate.denominator else None


def _customer_members() -> Any:
    """Join condition: the actor is a member of the customer organization acted for."""
    return (User.id == Activity.actor_id) & (User.organization_id == Activity.organization_id)


def _self_service(session: Session, period: Period) -> kpis.Rate | None:
    start, end = _bounds(period)
    verbs = (*signals.SEARCH_VERBS, *signals.HELPFUL_VERBS, signals.ASKED_VERB)
    rows = session.execute(
        select(Activity.organization_id, Activity.actor_id, Activity.verb, Activity.occurred_at)
        .join(User, _customer_members())
        .where(Activity.verb.in_(verbs), Activity.occurred_at >= start, Activity.occurred_at < end)
        .order_by(Activity.organization_id, Activity.actor_id, Activity.occurred_at)
    )
    found: list[kpis.SearchSession] = []
    for _org_id, events in signals.by_person(rows):
        found.extend(signals.search_sessions(events))
    return _known(kpis.self_service_rate(found))


def _ticket_trend(session: Session, period: Period) -> list[kpis.TicketTrendPoint[Period]]:
    periods = [period]
    for _ in range(TREND_PERIODS - 1):
        periods.insert(0, previous(periods[0]))
    first, end = _at(periods[0].start), _at(period.end)
    ticket_bucket = _bucket(Ticket.opened_at, periods).label("bucket")
    tickets_sub = (
        select(ticket_bucket).where(Ticket.opened_at >= first, Ticket.opened_at < end).subquery()
    )
    tickets = dict(
        session.execute(
            select(tickets_sub.c.bucket, func.count()).group_by(tickets_sub.c.bucket)
        ).all()
    )
    # Active in a period: a customer then (an invoice in the 365 days before its end) or its
    # people used the portal in it. One UNION ALL, one row per (period, account) reason.
    year = timedelta(days=365)
    customers = [
        select(literal(i, Integer).label("bucket"), Invoice.organization_id.label("org_id")).where(
            Invoice.order_date >= p.start - year, Invoice.order_date < p.end
        )
        for i, p in enumerate(periods)
    ]
    users = (
        select(
            _bucket(Activity.occurred_at, periods).label("bucket"),
            Activity.organization_id.label("org_id"),
        )
        .join(User, _customer_members())
        .where(Activity.occurred_at >= first, Activity.occurred_at < end)
    )
    active_sub = union_all(*customers, users).subquery()
    active = dict(
        session.execute(
            select(active_sub.c.bucket, func.count(distinct(active_sub.c.org_id))).group_by(
                active_sub.c.bucket
            )
        ).all()
    )
    return kpis.tickets_per_active_account(
        [
            kpis.TicketPeriod(p, int(tickets.get(i, 0)), int(active.get(i, 0)))
            for i, p in enumerate(periods)
        ]
    )


def _revenue(
    session: Session, period: Period
) -> tuple[kpis.RevenueRetention | None, kpis.Rate | None]:
    """ARR (invoices of the 365 days before) at the period's start and end, per account."""
    year = timedelta(days=365)
    start_from, start_to = period.start - year, period.start
    end_from, end_to = period.end - year, period.end
    at_start = func.sum(
        case(
            ((Invoice.order_date >= start_from) & (Invoice.order_date < start_to), Invoice.amount),
            else_=0,
        )
    )
    at_end = func.sum(
        case(
            ((Invoice.order_date >= end_from) & (Invoice.order_date < end_to), Invoice.amount),
            else_=0,
        )
    )
    rows = session.execute(
        select(Invoice.organization_id, at_start, at_end)
        .where(Invoice.order_date >= start_from, Invoice.order_date < end_to)
        .group_by(Invoice.organization_id)
    )
    starting = churned = contraction = expansion = 0.0
    customers = lost = 0
    for _org_id, before, after in rows:
        before, after = float(before or 0), float(after or 0)
        if before <= 0:
            continue  # a new customer: excluded from retention by definition
        customers += 1
        starting += before
        if after <= 0:
            lost += 1
            churned += before
        elif after < before:
            contraction += before - after
        else:
            expansion += after - before
    if customers == 0:
        return None, None
    return (
        kpis.revenue_retention(starting, churned, contraction, expansion),
        kpis.logo_churn(customers, lost),
    )


def _first_year(session: Session, period: Period, today: date) -> kpis.RateBreakdown[str] | None:
    """Accounts whose first anniversary falls in the period, by sales owner."""
    as_of = _last_day(period, today)
    rows = session.execute(
        select(
            AccountProfile.sales_owner_email,
            AccountProfile.contract_start,
            func.min(Invoice.order_date),
            func.max(Invoice.order_date),
        )
        .join(Invoice, Invoice.organization_id == AccountProfile.organization_id)
        .group_by(
            AccountProfile.organization_id,
            AccountProfile.sales_owner_email,
            AccountProfile.contract_start,
        )
    )
    accounts: list[kpis.YearOneAccount[str]] = []
    for owner, contract_start, first, last in rows:
        started = signals.as_date(contract_start) or signals.as_date(first)
        last_order = signals.as_date(last)
        if started is None or last_order is None:
            continue
        first_year_end = kpis.anniversary(started)
        if not period.start <= first_year_end < period.end:
            continue
        last_covered = last_order + timedelta(days=364)
        churned = last_covered if last_covered < as_of else None
        accounts.append(kpis.YearOneAccount(owner or "", started, churned))
    result = kpis.first_year_retention(accounts, as_of)
    return result if result.overall.denominator else None


def _resolved_at(items: Iterable[tuple[int, datetime]]) -> dict[int, datetime]:
    first: dict[int, datetime] = {}
    for key, at in items:
        if key not in first or at < first[key]:
            first[key] = at
    return first


def _problem_resolution(session: Session, period: Period, now: datetime) -> ProblemResolution:
    """Questions (asked by customers; resolved by an accepted answer) and ideas (posted by
    customers; resolved by a status change out of the open ones) received in the period, resolved within 30 days
    (judged now: an item of a past period still open and overdue counts as not resolved)."""
    start, end = _bounds(period)
    asked = session.execute(
        select(Activity.subject_id, Activity.occurred_at)
        .join(User, _customer_members())
        .join(Organization, Organization.id == Activity.organization_id)
        .where(
            Activity.verb == "question.asked",
            Organization.kind == OrgKind.CUSTOMER,
            Activity.occurred_at >= start,
            Activity.occurred_at < end,
        )
    ).all()
    accepted = _resolved_at(
        (int(data.get("question_id")), at)
        for data, at in session.execute(
            select(Activity.data, Activity.occurred_at).where(
                Activity.verb == "answer.accepted", Activity.occurred_at >= start
            )
        )
        if isinstance(data, dict) and str(data.get("question_id", "")).isdigit()
    )
    items: list[kpis.ProblemItem[str]] = [
        kpis.ProblemItem("questions", at, accepted.get(qid)) for qid, at in asked if qid
    ]
    ideas_installed = all(verb in VERBS for verb in IDEA_VERBS)
    if ideas_installed:
        ideas = session.execute(
            select(Activity.subject_id, Activity.occurred_at)
            .join(User, _customer_members())
            .join(Organization, Organization.id == Activity.organization_id)
            .where(
                Activity.verb == "idea.created",
                Organization.kind == OrgKind.CUSTOMER,
                Activity.occurred_at >= start,
                Activity.occurred_at < end,
            )
        ).all()
        decided = _resolved_at(
            (subject_id, at)
            for subject_id, data, at in session.execute(
                select(Activity.subject_id, Activity.data, Activity.occurred_at).where(
                    Activity.verb == "idea.status_changed", Activity.occurred_at >= start
                )
            )
            if subject_id
            and isinstance(data, dict)
            and str(data.get("to", "open")) not in IDEA_OPEN_STATUSES
        )
        items.extend(kpis.ProblemItem("ideas", at, decided.get(iid)) for iid, at in ideas if iid)
    result = kpis.problem_resolution_rate(items, target=RESOLUTION_TARGET, as_of=now)
    by_source = result.by_owner
    return ProblemResolution(
        overall=_known(result.overall),
        questions=by_source.get("questions"),
        ideas=by_source.get("ideas") if ideas_installed else None,
        ideas_installed=ideas_installed,
        target=RESOLUTION_TARGET,
    )


def company_figures(session: Session, period: Period) -> CompanyFigures:
    """The company's CS figures for a period (no permission check: callers hold VIEW_CS)."""
    now = utcnow()
    revenue, churn = _revenue(session, period)
    return CompanyFigures(
        period=period,
        self_service=_self_service(session, period),
        tickets=_ticket_trend(session, period),
        first_year_retention=_first_year(session, period, now.date()),
        problem_resolution=_problem_resolution(session, period, now),
        revenue=revenue,
        logo_churn=churn,
    )


# --------------------------------------------------------------------------------------------
# NPS reports
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpsRow:
    key: Any  # organization id, segment, CSM id or the month's Period
    label: str
    result: NpsResult


@dataclass(frozen=True)
class NpsReport:
    period: Period
    group_by: str
    overall: NpsResult
    rows: list[NpsRow]
    distribution: list[tuple[int, int]]  # (score 0..10, responses)


def _responses(session: Session, user: User, start: datetime, end: datetime) -> list[Any]:
    """WHERE clauses: responses of the user's book of customer accounts in ``[start, end)``."""
    return [
        Organization.kind == OrgKind.CUSTOMER,
        book_filter(session, user),
        NpsResponse.responded_at >= start,
        NpsResponse.responded_at < end,
    ]


def nps_report(session: Session, user: User | None, period: Period, group_by: str) -> NpsReport:
    """NPS with n and 95% margin for the period, overall and by account, segment, CSM or month,
    over the accounts the user may see; plus the 0..10 distribution. Two statements."""
    viewer = require_cs(user)
    if group_by not in NPS_GROUPS:
        raise DomainError(str(_l("Group by account, segment, CSM or month.")), field="group_by")
    start, end = _bounds(period)
    where = _responses(session, viewer, start, end)
    distribution = dict(
        session.execute(
            select(NpsResponse.score, func.count())
            .join(Organization, Organization.id == NpsResponse.organization_id)
            .where(*where)
            .group_by(NpsResponse.score)
        ).all()
    )
    counts = [(score, int(distribution.get(score, 0))) for score in range(11)]
    overall = nps_from_counts(
        sum(n for s, n in counts if s >= 9),
        sum(n for s, n in counts if 7 <= s <= 8),
        sum(n for s, n in counts if s <= 6),
    )
    return NpsReport(period, group_by, overall, _nps_rows(session, where, period, group_by), counts)


def _nps_rows(session: Session, where: list[Any], period: Period, group_by: str) -> list[NpsRow]:
    score = NpsResponse.score
    sums = _category_sums(score, score >= 0)
    base = (
        select()
        .select_from(NpsResponse)
        .join(Organization, Organization.id == NpsResponse.organization_id)
        .where(*where)
    )
    rows: list[NpsRow] = []
    if group_by == "month":
        months = months_of(period)
        sub = base.add_columns(
            _bucket(NpsResponse.responded_at, months).label("bucket"), score.label("score")
        ).subquery()
        found = {
            bucket: _result(p, pa, d)
            for bucket, p, pa, d in session.execute(
                select(sub.c.bucket, *_category_sums(sub.c.score, sub.c.score >= 0)).group_by(
                    sub.c.bucket
                )
            )
        }
        empty = nps_from_counts(0, 0, 0)
        return [NpsRow(m, period_label(m), found.get(i, empty)) for i, m in enumerate(months)]
    if group_by == "account":
        stmt = base.add_columns(Organization.id, Organization.name, *sums).group_by(
            Organization.id, Organization.name
        )
        for org_id, name, p, pa, d in session.execute(stmt):
            rows.append(NpsRow(org_id, name, _result(p, pa, d)))
    elif group_by == "segment":
        stmt = (
            base.add_columns(AccountProfile.segment, *sums)
            .outerjoin(AccountProfile, AccountProfile.organization_id == Organization.id)
            .group_by(AccountProfile.segment)
        )
        for segment, p, pa, d in session.execute(stmt):
            rows.append(NpsRow(segment, segment or str(_l("No segment")), _result(p, pa, d)))
    else:  # csm
        stmt = (
            base.add_columns(AccountProfile.csm_id, User.display_name, *sums)
            .outerjoin(AccountProfile, AccountProfile.organization_id == Organization.id)
            .outerjoin(User, User.id == AccountProfile.csm_id)
            .group_by(AccountProfile.csm_id, User.display_name)
        )
        for csm_id, name, p, pa, d in session.execute(stmt):
            rows.append(NpsRow(csm_id, name or str(_l("No CSM")), _result(p, pa, d)))
    rows.sort(key=lambda r: (-r.result.n, r.label))
    return rows


@dataclass(frozen=True)
class NpsPeriodComparison:
    a: Period
    b: Period
    result_a: NpsResult
    result_b: NpsResult
    comparison: NpsComparison  # b - a, two-sample z-test


def compare_periods(
    session: Session, a: Period, b: Period, *, user: User | None = None
) -> NpsPeriodComparison:
    """NPS of period ``a`` and of ``b`` and whether the change is significant (one statement).

    With ``user``, only the accounts in their book count (and they need VIEW_CS)."""
    at = NpsResponse.responded_at
    a_start, a_end = _bounds(a)
    b_start, b_end = _bounds(b)
    stmt = (
        select(
            *_category_sums(NpsResponse.score, (at >= a_start) & (at < a_end)),
            *_category_sums(NpsResponse.score, (at >= b_start) & (at < b_end)),
        )
        .select_from(NpsResponse)
        .join(Organization, Organization.id == NpsResponse.organization_id)
        .where(
            Organization.kind == OrgKind.CUSTOMER,
            or_(and_(at >= a_start, at < a_end), and_(at >= b_start, at < b_end)),
        )
    )
    if user is not None:
        stmt = stmt.where(book_filter(session, require_cs(user)))
    row = session.execute(stmt).one()
    result_a, result_b = _result(*row[0:3]), _result(*row[3:6])
    return NpsPeriodComparison(a, b, result_a, result_b, compare_nps(result_a, result_b))
