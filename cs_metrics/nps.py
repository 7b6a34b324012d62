"""Net Promoter Score: the score, its 95% interval, a two-period test, grouping and survey rules.

Pure calculator: plain data in (0-10 integer scores, dates), plain data out. Only the standard
library is imported; no clock (the caller passes ``now``).

Formulas
    * NPS = ``100 * (P - D) / n`` with P promoters (9-10), D detractors (0-6), n responses.
    * Wald interval ("trinomial means"): score each response +1/0/-1, so NPS/100 is the mean of
      those scores with variance ``var = p + d - (p - d)**2`` (``p = P/n``, ``d = D/n``); the 95%
      margin is ``1.96 * sqrt(var / n) * 100`` points. Example: 50 promoters, 17 detractors in
      100 responses: NPS 33, var 0.5611, margin 14.7 points.
    * Adjusted-Wald interval (Rocks 2016, *The American Statistician* 70(4); as used by Sauro &
      Lewis at MeasuringU): add 3 pseudo-responses, 3/4 of a promoter, 3/4 of a detractor and
      3/2 of a passive: ``n' = n + 3``, ``p' = (P + 0.75)/n'``, ``d' = (D + 0.75)/n'``,
      ``var' = p' + d' - (p' - d')**2``, interval ``100 * ((p' - d') +- 1.96 * sqrt(var'/n'))``.
      It keeps its coverage for small samples and never has zero width (the Wald interval of
      ten promoters out of ten is "100 +- 0").

    ``nps_result`` uses the adjusted-Wald interval when ``n < small_n`` (default 30) or the Wald
    variance is 0, and the Wald interval otherwise; ``interval_method`` says which. The point
    estimate ``nps`` is always the plain NPS; the adjusted interval is centred on the adjusted
    estimate, so it need not be symmetric about ``nps`` (``ci_low``/``ci_high`` are clipped to
    -100..100; ``margin`` is the unclipped half-width).

    * Two periods: ``z = (nps_b - nps_a) / sqrt(var_a/n_a + var_b/n_b)`` (in proportions, with
      each result's own variance and n), two-sided ``p = erfc(|z| / sqrt 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from cs_metrics.health import CalculatorInputError

__all__ = [
    "SMALL_N",
    "Category",
    "IntervalMethod",
    "NpsComparison",
    "NpsInputError",
    "NpsResult",
    "classify",
    "close_the_loop_due",
    "compare_nps",
    "nps_by",
    "nps_from_counts",
    "nps_points",
    "nps_result",
    "should_show_survey",
    "validate_score",
]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
SMALL_N = 30
PSEUDO_N = 3.0  # adjusted-Wald pseudo-responses: 0.75 promoter + 0.75 detractor + 1.5 passive
PSEUDO_EACH = 0.75

K = TypeVar("K", bound=Hashable)


class NpsInputError(CalculatorInputError):
    """A score that is not an integer 0-10, or another unusable NPS input."""


class Category(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


class IntervalMethod(StrEnum):
    WALD = "wald"
    ADJUSTED_WALD = "adjusted_wald"


def validate_score(score: object, field: str = "score") -> int:
    """The score as an int if it is an integer 0-10 (``bool`` and ``7.0`` are refused)."""
    if isinstance(score, bool) or not isinstance(score, int):
        raise NpsInputError(field, "not_an_integer", "must be a whole number 0-10")
    if not 0 <= score <= 10:
        raise NpsInputError(field, "out_of_range", "must be within 0-10", {"score": score})
    return score


def classify(score: int) -> Category:
    """9-10 promoter, 7-8 passive, 0-6 detractor."""
    score = validate_score(score)
    if score >= 9:
        return Category.PROMOTER
    if score >= 7:
        return Category.PASSIVE
    return Category.DETRACTOR


@dataclass(frozen=True)
class NpsResult:
    """NPS in points (-100..100) with its 95% interval; ``nps`` is ``None`` when ``n == 0``."""

    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    margin: float | None  # half-width of the 95% interval, points, >= 0
    ci_low: float | None
    ci_high: float | None
    interval_method: IntervalMethod | None
    variance: float | None  # per-response variance behind the interval (proportion units)
    effective_n: float | None  # n, or n + 3 for adjusted-Wald

    @property
    def promoter_share(self) -> float | None:
        return self.promoters / self.n if self.n else None

    @property
    def detractor_share(self) -> float | None:
        return self.detractors / self.n if self.n else None


def _trinomial_variance(p: float, d: float) -> float:
    # E[X^2] - E[X]^2 for X in {+1, 0, -1}; max(0, .) absorbs rounding below zero
    return max(0.0, p + d - (p - d) ** 2)


def nps_points(promoters: int, passives: int, detractors: int) -> float | None:
    """NPS in points (-100..100) of valid counts, ``None`` without responses: the health
    signal of every account each night, which needs no interval (``nps_from_counts`` for
    10,000 accounts took longer than the query that counted them)."""
    n = promoters + passives + detractors
    return 100.0 * (promoters - detractors) / n if n else None


def nps_from_counts(
    promoters: int, passives: int, detractors: int, *, small_n: int = SMALL_N
) -> NpsResult:
    """NPS and 95% interval from category counts (see the module docstring for the formulas)."""
    for name, value in (
        ("promoters", promoters),
        ("passives", passives),
        ("detractors", detractors),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise NpsInputError(name, "not_an_integer", "must be a whole number")
        if value < 0:
            raise NpsInputError(name, "negative", "must not be negative")
    n = promoters + passives + detractors
    if n == 0:
        return NpsResult(0, 0, 0, 0, None, None, None, None, None, None, None)
    p, d = promoters / n, detractors / n
    nps = nps_points(promoters, passives, detractors)
    variance = _trinomial_variance(p, d)
    if n >= small_n and variance > 0:
        margin = 100.0 * Z_95 * math.sqrt(variance / n)
        centre, method, eff_n = nps, IntervalMethod.WALD, float(n)
    else:
        eff_n = n + PSEUDO_N
        pa, da = (promoters + PSEUDO_EACH) / eff_n, (detractors + PSEUDO_EACH) / eff_n
        variance = _trinomial_variance(pa, da)
        margin = 100.0 * Z_95 * math.sqrt(variance / eff_n)
        centre, method = 100.0 * (pa - da), IntervalMethod.ADJUSTED_WALD
    return NpsResult(
        n=n,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        nps=nps,
        margin=margin,
        ci_low=max(-100.0, centre - margin),
        ci_high=min(100.0, centre + margin),
        interval_method=method,
        variance=variance,
        effective_n=eff_n,
    )


def nps_result(scores: Iterable[int], *, small_n: int = SMALL_N) -> NpsResult:
    """NPS of raw 0-10 scores; every score is validated (``NpsInputError`` names its index)."""
    counts = {Category.PROMOTER: 0, Category.PASSIVE: 0, Category.DETRACTOR: 0}
    for i, score in enumerate(scores):
        counts[classify(validate_score(score, f"scores[{i}]"))] += 1
    return nps_from_counts(
        counts[Category.PROMOTER],
        counts[Category.PASSIVE],
        counts[Category.DETRACTOR],
        small_n=small_n,
    )


def nps_by(pairs: Iterable[tuple[K, int]], *, small_n: int = SMALL_N) -> dict[K, NpsResult]:
    """NPS per key (account, segment, CSM, period, or a tuple of them) from ``(key, score)``."""
    grouped: dict[K, list[int]] = {}
    for i, (key, score) in enumerate(pairs):
        grouped.setdefault(key, []).append(validate_score(score, f"pairs[{i}].score"))
    return {key: nps_result(scores, small_n=small_n) for key, scores in grouped.items()}


@dataclass(frozen=True)
class NpsComparison:
    """Change from period A to period B; ``z``/``p_value`` ``None`` when a period is empty."""

    difference: float | None  # nps_b - nps_a, points
    z: float | None
    p_value: float | None  # two-sided
    significant: bool
    alpha: float


def _normal_sf_two_sided(z: float) -> float:
    # 2 * (1 - Phi(|z|)) with Phi(x) = (1 + erf(x / sqrt 2)) / 2; erfc keeps precision in tails
    return math.erfc(abs(z) / math.sqrt(2.0))


def compare_nps(a: NpsResult, b: NpsResult, *, alpha: float = 0.05) -> NpsComparison:
    """Two-sample z-test of ``b.nps - a.nps`` using each result's variance and (effective) n.

    ``significant`` is ``p_value < alpha`` (either direction; read the sign of ``difference``).
    """
    if not 0 < alpha < 1:
        raise NpsInputError("alpha", "out_of_range", "must be between 0 and 1")
    if a.nps is None or b.nps is None:
        return NpsComparison(None, None, None, False, alpha)
    difference = b.nps - a.nps
    assert a.variance is not None and a.effective_n is not None
    assert b.variance is not None and b.effective_n is not None
    se = math.sqrt(a.variance / a.effective_n + b.variance / b.effective_n)
    if se == 0:  # not reached: the adjusted variance is never 0
        return NpsComparison(difference, None, None, False, alpha)
    z = (difference / 100.0) / se
    p_value = _normal_sf_two_sided(z)
    return NpsComparison(difference, z, p_value, p_value < alpha, alpha)


def should_show_survey(
    now: datetime,
    *,
    last_shown: datetime | None = None,
    last_answered: datetime | None = None,
    last_dismissed: datetime | None = None,
    min_interval_days: int = 90,
) -> bool:
    """Whether to show the NPS survey: not within ``min_interval_days`` of the latest of the
    user's last showing, answer or dismissal (never more than once per 90 days by default).

    A user never surveyed is shown it. A latest event in the future (clock skew) means no.
    """
    if isinstance(min_interval_days, bool) or not isinstance(min_interval_days, int):
        raise NpsInputError("min_interval_days", "not_an_integer", "whole days")
    if min_interval_days < 0:
        raise NpsInputError("min_interval_days", "negative", "must not be negative")
    events = [e for e in (last_shown, last_answered, last_dismissed) if e is not None]
    if not events:
        return True
    return now - max(events) >= timedelta(days=min_interval_days)


_D = TypeVar("_D", date, datetime)


def close_the_loop_due(
    responded_at: _D, *, business_days: int = 2, holidays: Iterable[date] = ()
) -> _D:
    """When a detractor must have been called back: ``business_days`` after the response,
    counting Monday-Friday only (and skipping ``holidays``), keeping the time of day.

    A Friday response is due Tuesday; a Saturday or Sunday one Tuesday too. The weekday is that
    of the value given: pass the support team's local time, not UTC, if they differ.
    """
    if isinstance(business_days, bool) or not isinstance(business_days, int):
        raise NpsInputError("business_days", "not_an_integer", "whole days")
    if business_days < 0:
        raise NpsInputError("business_days", "negative", "must not be negative")
    skip = set(holidays)
    due = responded_at
    added = 0
    while added < business_days:
        due = due + timedelta(days=1)
        day = due.date() if isinstance(due, datetime) else due
        if day.weekday() < 5 and day not in skip:
            added += 1
    return due
