"""CSM KPIs (tiered, with targets) and company customer-success figures.

Pure calculator: plain data in (counts, dates, ``NpsResult``), plain data out. Only the standard
library and ``cs_metrics.nps`` are imported. A ratio whose denominator is 0 is ``None``, never a
crash and never a made-up 0.

CSM KPIs, three tiers (``scorecard``)
    1. base: share of the CSM's accounts whose health is ``>= 85`` (configurable), target 80%.
    2. collaboration: cross-department improvement items closed in the period, target 2 per
       month, prorated by ``months_in(period)``.
    3. strategic: the NPS change over the period (must be significant at 0.05 by
       ``nps.compare_nps``, by default) and referrals from promoters.

    Each ``Kpi`` has ``actual``, ``target``, ``attainment = actual / target`` floored at 0 and
    capped at ``max_attainment`` (default 1.5, so one outstanding KPI cannot hide the others),
    and ``met = actual >= target``. With a target ``<= 0`` attainment is ``None`` (a ratio to
    zero or a negative number means nothing) but ``met`` still compares. ``tier_reached`` is the
    highest tier whose KPIs, and those of every tier below, are all met.

Company figures
    * self-service rate = search sessions with a helpful click and no question asked / search
      sessions.
    * tickets per active account, per period, with the change from the period before.
    * first-year retention by sales owner = accounts still customers on their first anniversary
      / accounts whose first anniversary has passed.
    * product managers' problem resolution rate = items resolved within the target time /
      items received.
    * GRR = (start ARR - churned - contraction) / start ARR; NRR = (start ARR - churned -
      contraction + expansion) / start ARR (ARR of the customers present at the start only;
      new customers' ARR is excluded by definition).
    * logo churn = customers lost in the period / customers at the start.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar

from cs_metrics.health import CalculatorInputError
from cs_metrics.nps import NpsResult, compare_nps

__all__ = [
    "MAX_ATTAINMENT",
    "ImprovementItem",
    "Kpi",
    "KpiInputError",
    "Period",
    "ProblemItem",
    "Rate",
    "RateBreakdown",
    "RevenueRetention",
    "Scorecard",
    "SearchSession",
    "TicketPeriod",
    "TicketTrendPoint",
    "YearOneAccount",
    "attainment",
    "base_kpi",
    "collaboration_kpi",
    "first_year_retention",
    "logo_churn",
    "make_kpi",
    "months_in",
    "nps_change_kpi",
    "problem_resolution_rate",
    "referral_kpi",
    "revenue_retention",
    "scorecard",
    "self_service_rate",
    "tickets_per_active_account",
]

MAX_ATTAINMENT = 1.5

K = TypeVar("K", bound=Hashable)


class KpiInputError(CalculatorInputError):
    """An input a KPI or company figure cannot use (negative count, inverted period...)."""


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise KpiInputError(name, "not_an_integer", "must be a whole number")
    if value < 0:
        raise KpiInputError(name, "negative", "must not be negative")
    return value


def _amount(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KpiInputError(name, "not_finite", "must be a finite number")
    if value < 0:
        raise KpiInputError(name, "negative", "must not be negative")
    return float(value)


# --------------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """``start <= day < end`` (end exclusive, so a quarter is Jan 1 - Apr 1)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise KpiInputError("period.end", "not_after_start", "must be after the start")

    def __contains__(self, day: date) -> bool:
        return self.start <= _day(day) < self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def months_in(period: Period) -> float:
    """Length in calendar months: each month counts the fraction of its days in the period.

    A calendar month is exactly 1.0, a calendar quarter 3.0; Jan 15 - Feb 15 is 17/31 + 14/28.
    """
    total = 0.0
    cursor = period.start
    while cursor < period.end:
        month_days = calendar.monthrange(cursor.year, cursor.month)[1]
        next_month = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
        stop = min(next_month, period.end)
        total += (stop - cursor).days / month_days
        cursor = stop
    return total


# --------------------------------------------------------------------------------------------
# KPI results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    """One KPI for one CSM and period. ``details`` holds the counts behind ``actual``."""

    code: str  # "base_healthy_share", "collaboration_closed", "nps_change", "referrals"
    actual: float | None
    target: float
    attainment: float | None  # actual / target, within 0..max_attainment
    met: bool
    details: Mapping[str, float | int | bool | None] = field(default_factory=dict)


def attainment(
    actual: float | None, target: float, max_attainment: float = MAX_ATTAINMENT
) -> float | None:
    """``actual / target`` clamped to ``0..max_attainment``; ``None`` if no actual or target <= 0."""
    if actual is None or target <= 0:
        return None
    return max(0.0, min(max_attainment, actual / target))


def make_kpi(
    code: str,
    actual: float | None,
    target: float,
    *,
    max_attainment: float = MAX_ATTAINMENT,
    details: Mapping[str, float | int | bool | None] | None = None,
) -> Kpi:
    """A ``Kpi`` with attainment and ``met = actual >= target`` (``False`` with no actual)."""
    if not math.isfinite(target):
        raise KpiInputError(f"{code}.target", "not_finite", "must be a finite number")
    if not max_attainment > 0:
        raise KpiInputError("max_attainment", "not_positive", "must be above 0")
    met = actual is not None and actual >= target
    return Kpi(
        code, actual, target, attainment(actual, target, max_attainment), met, dict(details or {})
    )


def base_kpi(
    health_scores: Iterable[float | None],
    *,
    threshold: float = 85.0,
    target_share: float = 0.8,
    max_attainment: float = MAX_ATTAINMENT,
) -> Kpi:
    """Tier 1: share of the CSM's accounts with health ``>= threshold``.

    Every account counts in the denominator; an account without a score (``None``) is not
    healthy (a CSM cannot raise the share by leaving data out). ``None`` with no accounts.
    """
    scores = list(health_scores)
    healthy = sum(1 for s in scores if s is not None and s >= threshold)
    unscored = sum(1 for s in scores if s is None)
    return make_kpi(
        "base_healthy_share",
        _ratio(healthy, len(scores)),
        target_share,
        max_attainment=max_attainment,
        details={"accounts": len(scores), "healthy": healthy, "unscored": unscored},
    )


@dataclass(frozen=True)
class ImprovementItem:
    """A cross-department improvement item the CSM raised (e.g. with product or support)."""

    opened_on: date
    closed_on: date | None = None


def collaboration_kpi(
    items: Iterable[ImprovementItem],
    period: Period,
    *,
    target_per_month: float = 2.0,
    max_attainment: float = MAX_ATTAINMENT,
) -> Kpi:
    """Tier 2: items closed in the period against ``target_per_month * months_in(period)``.

    ``details`` also counts the items opened in the period.
    """
    items = list(items)
    opened = sum(1 for i in items if i.opened_on in period)
    closed = sum(1 for i in items if i.closed_on is not None and i.closed_on in period)
    months = months_in(period)
    return make_kpi(
        "collaboration_closed",
        float(closed),
        target_per_month * months,
        max_attainment=max_attainment,
        details={"opened": opened, "closed": closed, "months": months},
    )


def nps_change_kpi(
    before: NpsResult,
    after: NpsResult,
    *,
    target_points: float = 5.0,
    require_significance: bool = True,
    alpha: float = 0.05,
    max_attainment: float = MAX_ATTAINMENT,
) -> Kpi:
    """Tier 3: NPS change ``after - before`` in points; met when ``>= target_points`` and, by
    default, significant (``nps.compare_nps`` two-sample z-test at ``alpha``).

    ``actual`` is ``None`` when either period has no response.
    """
    comparison = compare_nps(before, after, alpha=alpha)
    kpi = make_kpi(
        "nps_change",
        comparison.difference,
        target_points,
        max_attainment=max_attainment,
        details={
            "nps_before": before.nps,
            "nps_after": after.nps,
            "n_before": before.n,
            "n_after": after.n,
            "z": comparison.z,
            "p_value": comparison.p_value,
            "significant": comparison.significant,
        },
    )
    if require_significance and kpi.met and not comparison.significant:
        return Kpi(kpi.code, kpi.actual, kpi.target, kpi.attainment, False, kpi.details)
    return kpi


def referral_kpi(
    referrals: int,
    promoters: int,
    period: Period,
    *,
    target_per_month: float = 1.0 / 3.0,
    max_attainment: float = MAX_ATTAINMENT,
) -> Kpi:
    """Tier 3: referrals made by the CSM's promoters in the period, against a prorated target
    (default one a quarter). ``details.rate`` is referrals per promoter (``None`` if none)."""
    _count(referrals, "referrals")
    _count(promoters, "promoters")
    return make_kpi(
        "referrals",
        float(referrals),
        target_per_month * months_in(period),
        max_attainment=max_attainment,
        details={"promoters": promoters, "rate": _ratio(referrals, promoters)},
    )


@dataclass(frozen=True)
class Scorecard:
    base: Kpi
    collaboration: Kpi
    strategic: tuple[Kpi, ...]
    tier_reached: int  # 0 none, 1 base, 2 base + collaboration, 3 all


def scorecard(base: Kpi, collaboration: Kpi, strategic: Sequence[Kpi]) -> Scorecard:
    """Tiers are cumulative: tier 2 counts only if tier 1 is met, tier 3 only if 1 and 2 are."""
    tier = 0
    if base.met:
        tier = 1
        if collaboration.met:
            tier = 2
            if strategic and all(k.met for k in strategic):
                tier = 3
    return Scorecard(base, collaboration, tuple(strategic), tier)


# --------------------------------------------------------------------------------------------
# Company figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int
    value: float | None  # numerator / denominator, None when the denominator is 0


def _rate(numerator: int, denominator: int) -> Rate:
    return Rate(numerator, denominator, _ratio(numerator, denominator))


@dataclass(frozen=True)
class RateBreakdown(Generic[K]):
    overall: Rate
    by_owner: dict[K, Rate]


@dataclass(frozen=True)
class SearchSession:
    helpful_click: bool  # clicked "this helped" on an article/answer found
    asked_question: bool  # went on to ask a question or open a ticket


def self_service_rate(sessions: Iterable[SearchSession]) -> Rate:
    """Sessions with a helpful click and no question asked / search sessions."""
    total = resolved = 0
    for s in sessions:
        total += 1
        if s.helpful_click and not s.asked_question:
            resolved += 1
    return _rate(resolved, total)


@dataclass(frozen=True)
class TicketPeriod(Generic[K]):
    period: K  # a label or Period, carried through
    tickets: int
    active_accounts: int


@dataclass(frozen=True)
class TicketTrendPoint(Generic[K]):
    period: K
    tickets: int
    active_accounts: int
    per_account: float | None
    change: float | None  # per_account - previous per_account
    percent_change: float | None  # change / previous per_account * 100


def tickets_per_active_account(series: Sequence[TicketPeriod[K]]) -> list[TicketTrendPoint[K]]:
    """Tickets / active accounts per period (given in order) and the change from the one before.

    A falling figure is good: customers need support less often.
    """
    points: list[TicketTrendPoint[K]] = []
    previous: float | None = None
    for i, p in enumerate(series):
        _count(p.tickets, f"series[{i}].tickets")
        _count(p.active_accounts, f"series[{i}].active_accounts")
        rate = _ratio(p.tickets, p.active_accounts)
        change = pct = None
        if rate is not None and previous is not None:
            change = rate - previous
            pct = None if previous == 0 else change / previous * 100.0
        points.append(TicketTrendPoint(p.period, p.tickets, p.active_accounts, rate, change, pct))
        previous = rate
    return points


def anniversary(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February -> 28 February
        return day.replace(year=day.year + 1, day=28)


@dataclass(frozen=True)
class YearOneAccount(Generic[K]):
    owner: K  # the sales owner who closed the deal
    started_on: date
    churned_on: date | None = None


def first_year_retention(accounts: Iterable[YearOneAccount[K]], as_of: date) -> RateBreakdown[K]:
    """Accounts still customers on their first anniversary / accounts whose anniversary is on or
    before ``as_of`` (younger accounts are not judged yet), overall and by sales owner."""
    counts: dict[K, list[int]] = {}
    for a in accounts:
        first_year_end = anniversary(a.started_on)
        if first_year_end > as_of:
            continue
        retained = a.churned_on is None or a.churned_on >= first_year_end
        entry = counts.setdefault(a.owner, [0, 0])
        entry[0] += int(retained)
        entry[1] += 1
    by_owner = {owner: _rate(r, n) for owner, (r, n) in counts.items()}
    overall = _rate(
        sum(r.numerator for r in by_owner.values()), sum(r.denominator for r in by_owner.values())
    )
    return RateBreakdown(overall, by_owner)


@dataclass(frozen=True)
class ProblemItem(Generic[K]):
    owner: K  # the product manager
    received_at: datetime
    resolved_at: datetime | None = None


def problem_resolution_rate(
    items: Iterable[ProblemItem[K]],
    *,
    target: timedelta = timedelta(days=30),
    as_of: datetime | None = None,
) -> RateBreakdown[K]:
    """Items resolved within ``target`` of receipt / items received, overall and per PM.

    With ``as_of``, an item still open whose deadline is after ``as_of`` is not counted yet (it
    can still be resolved in time); without it every item received counts.
    """
    counts: dict[K, list[int]] = {}
    for item in items:
        deadline = item.received_at + target
        on_time = item.resolved_at is not None and item.resolved_at <= deadline
        if as_of is not None and item.resolved_at is None and deadline > as_of:
            continue
        entry = counts.setdefault(item.owner, [0, 0])
        entry[0] += int(on_time)
        entry[1] += 1
    by_owner = {owner: _rate(r, n) for owner, (r, n) in counts.items()}
    overall = _rate(
        sum(r.numerator for r in by_owner.values()), sum(r.denominator for r in by_owner.values())
    )
    return RateBreakdown(overall, by_owner)


@dataclass(frozen=True)
class RevenueRetention:
    starting_arr: float
    churned_arr: float
    contraction_arr: float
    expansion_arr: float
    grr: float | None  # 0..1
    nrr: float | None  # >= 0, above 1 when expansion beats losses


def revenue_retention(
    starting_arr: float, churned_arr: float, contraction_arr: float, expansion_arr: float
) -> RevenueRetention:
    """GRR and NRR over a period for the customers present at its start.

    ``GRR = (start - churned - contraction) / start``, ``NRR = GRR + expansion / start``. All
    amounts are non-negative; losses above the starting ARR are an input error. ``None`` when
    the starting ARR is 0.
    """
    start = _amount(starting_arr, "starting_arr")
    churned = _amount(churned_arr, "churned_arr")
    contraction = _amount(contraction_arr, "contraction_arr")
    expansion = _amount(expansion_arr, "expansion_arr")
    # Amounts that add up to the start in decimals can exceed it by a rounding step in
    # floating point (688442059.59 + 751439413.96 > 1439881473.55): that is all of it, not more.
    lost = churned + contraction
    if lost > start and not math.isclose(lost, start, rel_tol=1e-12):
        raise KpiInputError(
            "contraction_arr",
            "losses_above_start",
            "churned + contraction cannot exceed the starting ARR",
        )
    kept = max(0.0, start - churned - contraction)
    return RevenueRetention(
        start, churned, contraction, expansion, _ratio(kept, start), _ratio(kept + expansion, start)
    )


def logo_churn(starting_customers: int, churned_customers: int) -> Rate:
    """Customers lost in the period / customers at its start (new customers not counted)."""
    _count(starting_customers, "starting_customers")
    _count(churned_customers, "churned_customers")
    if churned_customers > starting_customers:
        raise KpiInputError(
            "churned_customers", "above_start", "cannot exceed the customers at the start"
        )
    return _rate(churned_customers, starting_customers)
