"""Account health scores: a weighted mean of component scores, each 0-100 (higher is healthier).

Pure calculator: plain data in (``HealthModel``, a mapping of raw component values, ``Override``,
``Snapshot``), plain data out (``HealthScore``, ``EffectiveHealth``, ``HealthAlert``). Only the
standard library is imported; no clock (the caller passes ``now``), no translated text (reasons
are stable codes, the UI translates them).

The formula
    Each component maps its raw value to a 0-100 score with its scale, either

    * ``Linear(at_0, at_100)``: ``score = clamp(100 * (value - at_0) / (at_100 - at_0), 0, 100)``;
      ``at_100 < at_0`` is allowed and means "lower is better" (days overdue, open tickets), or
    * ``Thresholds(steps)``: a step table ``((bound, score), ...)`` with strictly increasing
      bounds; a value scores the ``score`` of the last step whose ``bound <= value`` (a value
      below the first bound scores the first step). Step scores must be monotonic (all
      non-decreasing = higher is better, or all non-increasing = lower is better), so a better
      value never scores lower.

    The account score is ``sum(score_i * w_i) / sum(w_i)`` over the components whose value is
    present (not ``None``). A missing component is left out and the weights of the others are
    renormalized: the score stays on the 0-100 scale and is marked ``complete=False``. When every
    component is missing there is no score (``score=None``, ``reason="no_data"``).

    Every score explains itself: for each component its raw value, its 0-100 score, its share of
    the weight among the present components and its contribution in points
    (``score_i * share_i``); the contributions sum to the score (``math.fsum``).

Bands
    green ``>= 85``, yellow ``>= 70``, red below (``Bands`` makes the two cut-offs configurable).
    The band is decided on the unrounded score: 84.99 is yellow even if a page prints "85.0".

Overrides
    A CSM may override an account's score until ``expires_at`` (exclusive). ``effective_health``
    returns the override while it is active and the computed score beside it, marked.

Alerts
    ``scan_alerts`` walks a series of daily snapshots and reports a band change (compared with
    the previous snapshot) and a drop of ``drop_points`` or more below the highest score of the
    preceding ``window_days`` days. Alerts are edge-triggered: a drop alert fires on the first
    snapshot that meets the condition, not again on the following days while the score stays
    down. ``check_alerts`` returns only the alerts the latest snapshot raises (for a daily job).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = [
    "ACTIVE_SEATS",
    "COMMUNITY_ENGAGEMENT",
    "CSAT",
    "DEFAULT_BANDS",
    "DEFAULT_ENGAGEMENT_WEIGHTS",
    "DEFAULT_MODEL",
    "NPS",
    "PAYMENT_DAYS_OVERDUE",
    "PURCHASE_FREQUENCY",
    "SELF_SERVICE_RATE",
    "SEVERE_TICKETS",
    "USAGE_TREND",
    "AlertKind",
    "AlertRule",
    "Band",
    "Bands",
    "CalculatorInputError",
    "Component",
    "ComponentResult",
    "EffectiveHealth",
    "Figures",
    "HealthAlert",
    "HealthModel",
    "HealthModelError",
    "Linear",
    "Override",
    "Snapshot",
    "Thresholds",
    "check_alerts",
    "effective_health",
    "engagement_per_active_user",
    "overridden_score",
    "percent_change",
    "ratio",
    "scan_alerts",
    "score_account",
    "score_figures",
]


# --------------------------------------------------------------------------------------------
# Errors (shared by the cs_metrics calculators)
# --------------------------------------------------------------------------------------------


class CalculatorInputError(ValueError):
    """Invalid input to a calculator, with what a form or API error body needs.

    ``field`` names the offending input (``"components[2].weight"``, ``"discount_rate"``),
    ``code`` is a stable machine code to translate (``"not_positive"``), ``params`` the numbers
    a message may quote. ``str(error)`` is an English message for logs.
    """

    def __init__(
        self, field: str, code: str, message: str, params: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.message = message
        self.params: Mapping[str, Any] = dict(params or {})


class HealthModelError(CalculatorInputError):
    """A health model, band, override or snapshot series that cannot be used."""


def _finite(value: float, field_name: str, error: type[CalculatorInputError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(field_name, "not_a_number", "must be a number")
    if not math.isfinite(value):
        raise error(field_name, "not_finite", "must be a finite number")
    return float(value)


# --------------------------------------------------------------------------------------------
# Bands
# --------------------------------------------------------------------------------------------


class Band(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True)
class Bands:
    """Cut-offs: ``score >= green_min`` is green, ``score >= yellow_min`` yellow, else red."""

    green_min: float = 85.0
    yellow_min: float = 70.0

    def __post_init__(self) -> None:
        green = _finite(self.green_min, "bands.green_min", HealthModelError)
        yellow = _finite(self.yellow_min, "bands.yellow_min", HealthModelError)
        if not 0 <= yellow <= 100:
            raise HealthModelError("bands.yellow_min", "out_of_range", "must be within 0..100")
        if not 0 <= green <= 100:
            raise HealthModelError("bands.green_min", "out_of_range", "must be within 0..100")
        if yellow > green:
            raise HealthModelError(
                "bands.yellow_min", "above_green", "must not be above the green cut-off"
            )

    def band(self, score: float) -> Band:
        if score >= self.green_min:
            return Band.GREEN
        if score >= self.yellow_min:
            return Band.YELLOW
        return Band.RED


DEFAULT_BANDS = Bands()


# --------------------------------------------------------------------------------------------
# Scales and the model
# --------------------------------------------------------------------------------------------


def _clamp(value: float, low: float = 0.0, high: float = 100.0) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class Linear:
    """``at_0`` scores 0, ``at_100`` scores 100, linear between, clamped outside.

    ``at_100 < at_0`` means lower raw values are better.
    """

    at_0: float
    at_100: float

    def validate(self, field_name: str) -> None:
        a = _finite(self.at_0, f"{field_name}.at_0", HealthModelError)
        b = _finite(self.at_100, f"{field_name}.at_100", HealthModelError)
        if a == b:
            raise HealthModelError(
                f"{field_name}.at_100", "degenerate_range", "must differ from at_0"
            )

    @property
    def higher_is_better(self) -> bool:
        return self.at_100 > self.at_0

    def score(self, value: float) -> float:
        fraction = (value - self.at_0) / (self.at_100 - self.at_0)
        if math.isnan(fraction):  # only for infinite values: inf - x over a finite span
            fraction = 0.0
        return _clamp(100.0 * fraction)


@dataclass(frozen=True)
class Thresholds:
    """Step table ``((bound, score), ...)``: a value scores the last step with ``bound <= value``.

    Bounds strictly increase; scores (0-100) are all non-decreasing (higher is better) or all
    non-increasing (lower is better). A value below the first bound scores the first step.
    """

    steps: tuple[tuple[float, float], ...]

    def validate(self, field_name: str) -> None:
        if not self.steps:
            raise HealthModelError(f"{field_name}.steps", "empty", "needs at least one step")
        for i, step in enumerate(self.steps):
            if len(step) != 2:
                raise HealthModelError(
                    f"{field_name}.steps[{i}]", "not_a_pair", "must be (bound, score)"
                )
            _finite(step[0], f"{field_name}.steps[{i}].bound", HealthModelError)
            score = _finite(step[1], f"{field_name}.steps[{i}].score", HealthModelError)
            if not 0 <= score <= 100:
                raise HealthModelError(
                    f"{field_name}.steps[{i}].score", "out_of_range", "must be within 0..100"
                )
        bounds = [b for b, _ in self.steps]
        for i in range(1, len(bounds)):
            if bounds[i] <= bounds[i - 1]:
                raise HealthModelError(
                    f"{field_name}.steps[{i}].bound",
                    "not_increasing",
                    "bounds must strictly increase",
                )
        scores = [s for _, s in self.steps]
        rising = all(b >= a for a, b in zip(scores, scores[1:], strict=False))
        falling = all(b <= a for a, b in zip(scores, scores[1:], strict=False))
        if not (rising or falling):
            raise HealthModelError(
                f"{field_name}.steps",
                "not_monotonic",
                "step scores must all rise or all fall",
            )

    @property
    def higher_is_better(self) -> bool:
        return self.steps[-1][1] >= self.steps[0][1]

    def score(self, value: float) -> float:
        result = self.steps[0][1]
        for bound, score in self.steps:
            if value >= bound:
                result = score
            else:
                break
        return float(result)


Scale = Linear | Thresholds


@dataclass(frozen=True)
class Component:
    """One input of the score: its name (the key the service feeds), weight and scale."""

    name: str
    weight: float
    scale: Scale


@dataclass(frozen=True)
class HealthModel:
    """A versioned, validated set of components and bands.

    Weights are any positive numbers; ``shares()`` gives them normalized (what the settings page
    shows as percentages). Construction validates everything and raises ``HealthModelError``
    naming the field, so an invalid model cannot exist.
    """

    version: str
    components: tuple[Component, ...]
    bands: Bands = DEFAULT_BANDS

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise HealthModelError("version", "blank", "must not be blank")
        if not self.components:
            raise HealthModelError("components", "empty", "needs at least one component")
        seen: set[str] = set()
        for i, component in enumerate(self.components):
            where = f"components[{i}]"
            if not isinstance(component.name, str) or not component.name.strip():
                raise HealthModelError(f"{where}.name", "blank", "must not be blank")
            if component.name in seen:
                raise HealthModelError(
                    f"{where}.name", "duplicate", "names must be unique", {"name": component.name}
                )
            seen.add(component.name)
            weight = _finite(component.weight, f"{where}.weight", HealthModelError)
            if weight <= 0:
                raise HealthModelError(f"{where}.weight", "not_positive", "must be above 0")
            if not isinstance(component.scale, Linear | Thresholds):
                raise HealthModelError(
                    f"{where}.scale", "unknown_scale", "must be Linear or Thresholds"
                )
            component.scale.validate(f"{where}.scale")
        if (
            not math.fsum(c.weight for c in self.components) > 0
        ):  # positive weights make this hold; kept as the rule
            raise HealthModelError("components", "zero_weight_sum", "weights sum to zero")
        if not isinstance(self.bands, Bands):
            raise HealthModelError("bands", "not_bands", "must be a Bands")

    def shares(self) -> dict[str, float]:
        """Each component's weight as a share of all weights (sums to 1)."""
        return dict(self._shares)

    @cached_property
    def _shares(self) -> dict[str, float]:
        # computed once per model: the nightly run scores every account with the same model
        total = math.fsum(c.weight for c in self.components)
        return {c.name: c.weight / total for c in self.components}

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# The default model and the helpers that shape its inputs
# --------------------------------------------------------------------------------------------

USAGE_TREND = "usage_trend"
"""Percent change of product usage, last 30 days vs the 30 before (``percent_change``)."""
ACTIVE_SEATS = "active_seats"
"""Active users / licensed seats, 0..1 (``ratio``)."""
SEVERE_TICKETS = "severe_tickets"
"""Count of open severity-1/2 tickets."""
CSAT = "csat"
"""CSAT percent (satisfied responses / all responses * 100), 0..100."""
NPS = "nps"
"""NPS of the account's contacts, -100..100 (``cs_metrics.nps``)."""
COMMUNITY_ENGAGEMENT = "community_engagement"
"""Weighted community actions per active user (``engagement_per_active_user``)."""
SELF_SERVICE_RATE = "self_service_rate"
"""Search sessions resolved by content / search sessions, 0..1 (``kpis.self_service_rate``)."""
PAYMENT_DAYS_OVERDUE = "payment_days_overdue"
"""Days the oldest unpaid invoice is past due (0 when nothing is overdue)."""
PURCHASE_FREQUENCY = "purchase_frequency"
"""Purchases (new orders, renewals, add-ons) in the last 12 months."""

COMPONENT_NAMES: tuple[str, ...] = (
    USAGE_TREND,
    ACTIVE_SEATS,
    SEVERE_TICKETS,
    CSAT,
    NPS,
    COMMUNITY_ENGAGEMENT,
    SELF_SERVICE_RATE,
    PAYMENT_DAYS_OVERDUE,
    PURCHASE_FREQUENCY,
)
"""The inputs the service feeds: a model component must be one of them, else no account would
ever have a value for it (every score marked incomplete)."""

DEFAULT_MODEL = HealthModel(
    version="default-1",
    components=(
        # -50% usage or worse scores 0, +10% or better scores 100; flat usage scores 83.3.
        Component(USAGE_TREND, 20, Linear(at_0=-50.0, at_100=10.0)),
        Component(ACTIVE_SEATS, 15, Linear(at_0=0.2, at_100=0.9)),
        Component(SEVERE_TICKETS, 10, Thresholds(((0, 100), (1, 70), (2, 40), (4, 0)))),
        Component(CSAT, 10, Linear(at_0=50.0, at_100=95.0)),
        Component(NPS, 10, Linear(at_0=-50.0, at_100=50.0)),
        Component(COMMUNITY_ENGAGEMENT, 10, Linear(at_0=0.0, at_100=2.0)),
        Component(SELF_SERVICE_RATE, 5, Linear(at_0=0.1, at_100=0.6)),
        Component(
            PAYMENT_DAYS_OVERDUE,
            10,
            Thresholds(((0, 100), (1, 80), (15, 50), (31, 20), (61, 0))),
        ),
        Component(PURCHASE_FREQUENCY, 10, Thresholds(((0, 20), (1, 70), (2, 100)))),
    ),
    bands=DEFAULT_BANDS,
)

DEFAULT_ENGAGEMENT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "questions": 1.0,
        "accepted_answers": 3.0,  # answering so well it is accepted is worth most
        "helpful_marks": 0.5,
        "ideas_voted": 1.0,
        "templates_downloaded": 0.5,
    }
)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when the denominator is 0 (no data, no crash)."""
    if denominator == 0:
        return None
    return numerator / denominator


def percent_change(current: float, previous: float) -> float | None:
    """``(current - previous) / previous * 100``; ``None`` when ``previous`` is 0.

    For ``USAGE_TREND``: ``current`` is usage in the last 30 days, ``previous`` the 30 before.
    With no usage before there is no trend (the component is missing, not infinitely good).
    """
    change = ratio(current - previous, previous)
    return None if change is None else change * 100.0


def engagement_per_active_user(
    counts: Mapping[str, float],
    active_users: int,
    weights: Mapping[str, float] = DEFAULT_ENGAGEMENT_WEIGHTS,
) -> float | None:
    """Weighted community actions per active user: ``sum(w_k * count_k) / active_users``.

    ``counts`` has the keys of ``weights`` (questions, accepted_answers, helpful_marks,
    ideas_voted, templates_downloaded); a missing key counts 0, an unknown key is an error.
    ``None`` when the account has no active user.
    """
    for key in counts:
        if key not in weights:
            raise CalculatorInputError(f"counts.{key}", "unknown_key", "unknown engagement kind")
    total = math.fsum(
        weights[k] * _finite(v, f"counts.{k}", CalculatorInputError) for k, v in counts.items()
    )
    return ratio(total, active_users)


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


class ComponentResult(NamedTuple):
    """How one component contributed. ``share`` is renormalized over the present components.

    A named tuple rather than a frozen dataclass: the nightly recompute makes one per
    component per account (90,000 at 10,000 accounts), and a frozen dataclass's ``__init__``
    cost 3.4 times as much (0.93 us against 0.27)."""

    name: str
    raw: float | None
    score: float | None  # 0..100, None when missing
    weight: float  # as configured
    configured_share: float  # weight / all weights (the model's percentage)
    share: float  # weight / weights of present components; 0 when missing
    contribution: float  # score * share, in points; 0 when missing
    missing: bool


class HealthScore(NamedTuple):
    """A computed score with its explanation. ``score`` is ``None`` only when no data at all.

    A named tuple, like ``ComponentResult`` and ``EffectiveHealth``: one per account every
    night, and a frozen dataclass's ``__init__`` was a fifth of scoring an account."""

    model_version: str
    score: float | None
    band: Band | None
    complete: bool  # every component had a value
    components: tuple[ComponentResult, ...]
    missing: tuple[str, ...]  # names of the components left out
    reason: str | None  # "no_data" when score is None
    bands: Bands = DEFAULT_BANDS
    unused_inputs: tuple[str, ...] = ()  # keys given that the model does not know


ScoredComponent = tuple[float, float] | None  # (raw, score), or None when missing


class Figures(NamedTuple):
    """An account's score as the nightly recompute keeps it: ``score_account`` without the
    explanation objects, whose names, weights and shares follow from the model. Building
    nine ``ComponentResult`` per account was the larger part of scoring 10,000 accounts."""

    score: float | None  # None only when no component has a value
    band: Band | None
    complete: bool  # every component had a value
    scored: tuple[ScoredComponent, ...]  # in the model's order


def score_figures(model: HealthModel, values: Mapping[str, float | None]) -> Figures:
    """Score one account: weighted mean of the present components' 0-100 scores.

    ``values`` maps component names to raw values; a ``None`` or absent name is missing and the
    other weights are renormalized (``share_i = w_i / sum(w_present)``). Keys the model does not
    know are ignored. Infinities clamp like any out-of-range value; NaN, a bool or a non-number
    raises ``HealthModelError`` naming the component.
    """
    scored: list[ScoredComponent] = []
    weights: list[float] = []
    points: list[float] = []
    for c in model.components:
        raw = values.get(c.name)
        if raw is None:
            scored.append(None)
            continue
        if type(raw) is not float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise HealthModelError(f"values.{c.name}", "not_a_number", "must be a number")
            raw = float(raw)
        if raw != raw:  # NaN
            raise HealthModelError(f"values.{c.name}", "not_a_number", "must be a number")
        score = c.scale.score(raw)
        scored.append((raw, score))
        weights.append(c.weight)
        points.append(score)
    if not weights:
        return Figures(None, None, False, tuple(scored))
    present_weight = math.fsum(weights)
    total = _clamp(
        math.fsum([p * (w / present_weight) for p, w in zip(points, weights, strict=True)])
    )
    return Figures(total, model.bands.band(total), len(weights) == len(scored), tuple(scored))


def score_account(model: HealthModel, values: Mapping[str, float | None]) -> HealthScore:
    """``score_figures`` with its explanation: each component's name, weight, share and
    contribution, and the keys given that the model does not know (``unused_inputs``: a model
    version may drop a component the service still computes)."""
    figures = score_figures(model, values)
    results = _component_results(model, figures.scored)
    missing = tuple(r.name for r in results if r.missing)
    extra = values.keys() - model._shares.keys()
    unused = tuple(sorted(extra)) if extra else ()
    return HealthScore(
        model_version=model.version,
        score=figures.score,
        band=figures.band,
        complete=figures.complete,
        components=results,
        missing=missing,
        reason="no_data" if figures.score is None else None,
        bands=model.bands,
        unused_inputs=unused,
    )


StoredComponent = list[float | None] | None  # [raw, score], or None when missing


def compact_explanation(
    scored: Sequence[ScoredComponent],
) -> Sequence[StoredComponent | ScoredComponent]:
    """What a snapshot stores of its explanation, in the model's order: ``[raw, score]`` of
    each present component (``raw`` ``None`` when not finite, which JSON cannot carry) and
    ``None`` for a missing one. Names, weights and shares follow from the model's version
    (``expand_explanation``); storing them too made each snapshot 1.5 KB instead of 0.3,
    15 MB a night at 10,000 accounts."""
    for entry in scored:
        if entry is not None and not -math.inf < entry[0] < math.inf:
            break
    else:  # all finite, the usual case: tuples are JSON arrays as they are
        return scored
    return [
        None if entry is None else [entry[0] if -math.inf < entry[0] < math.inf else None, entry[1]]
        for entry in scored
    ]


def expand_explanation(
    model: HealthModel, stored: Sequence[StoredComponent]
) -> tuple[ComponentResult, ...]:
    """The components ``score_account`` gave, from ``compact_explanation``'s form and the
    model of the same version: shares and contributions computed as it computes them."""
    if len(stored) != len(model.components):
        raise HealthModelError(
            "components", "not_this_model", "do not match the model's components"
        )
    return _component_results(model, stored)


def _component_results(
    model: HealthModel, scored: Sequence[Sequence[float | None] | None]
) -> tuple[ComponentResult, ...]:
    configured = model._shares
    present_weight = math.fsum(
        c.weight for c, entry in zip(model.components, scored, strict=True) if entry is not None
    )
    results: list[ComponentResult] = []
    for c, entry in zip(model.components, scored, strict=True):
        if entry is None:
            results.append(
                ComponentResult(c.name, None, None, c.weight, configured[c.name], 0.0, 0.0, True)
            )
            continue
        raw, score = entry
        share = c.weight / present_weight
        results.append(
            ComponentResult(
                c.name,
                raw,
                score,
                c.weight,
                configured[c.name],
                share,
                (score or 0.0) * share,
                False,
            )
        )
    return tuple(results)


# --------------------------------------------------------------------------------------------
# CSM override
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """A CSM's score for an account, in force until ``expires_at`` (exclusive)."""

    score: float
    reason: str
    expires_at: datetime

    def __post_init__(self) -> None:
        score = _finite(self.score, "override.score", HealthModelError)
        if not 0 <= score <= 100:
            raise HealthModelError("override.score", "out_of_range", "must be within 0..100")
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise HealthModelError("override.reason", "blank", "a reason is required")

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


class EffectiveHealth(NamedTuple):
    """The score to show: the override while active, else the computed one (always beside)."""

    score: float | None
    band: Band | None
    overridden: bool
    computed: HealthScore
    override: Override | None  # the active override, None when none or expired
    override_expired: bool  # an override was given but has expired


def effective_health(
    computed: HealthScore, override: Override | None, now: datetime
) -> EffectiveHealth:
    """The override's score (banded with the model's bands) while ``now < expires_at``."""
    forced = overridden_score(override, computed.bands, now)
    if forced is not None:
        return EffectiveHealth(*forced, True, computed, override, False)
    return EffectiveHealth(
        computed.score, computed.band, False, computed, None, override is not None
    )


def overridden_score(
    override: Override | None, bands: Bands, now: datetime
) -> tuple[float, Band] | None:
    """The override's score and band while it is in force (``now < expires_at``), else None:
    ``effective_health`` without the computed score's explanation, for the nightly run."""
    if override is not None and override.active(now):
        return float(override.score), bands.band(override.score)
    return None


# --------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------


class AlertKind(StrEnum):
    BAND_CHANGE = "band_change"
    SCORE_DROP = "score_drop"


@dataclass(frozen=True)
class Snapshot:
    """An account's (effective or computed, as the service decides) score on one day."""

    day: date
    score: float
    band: Band


@dataclass(frozen=True)
class AlertRule:
    """Alert on a band change and/or on a drop of ``drop_points`` within ``window_days``."""

    drop_points: float = 15.0
    window_days: int = 30
    on_band_change: bool = True
    on_drop: bool = True

    def __post_init__(self) -> None:
        if _finite(self.drop_points, "alert_rule.drop_points", HealthModelError) <= 0:
            raise HealthModelError("alert_rule.drop_points", "not_positive", "must be above 0")
        if isinstance(self.window_days, bool) or not isinstance(self.window_days, int):
            raise HealthModelError("alert_rule.window_days", "not_an_integer", "whole days")
        if self.window_days < 1:
            raise HealthModelError("alert_rule.window_days", "not_positive", "at least 1 day")


@dataclass(frozen=True)
class HealthAlert:
    """What changed. For a band change ``since`` is the previous snapshot's day; for a drop it
    is the day of the peak score in the window and ``points`` the drop (peak - current)."""

    kind: AlertKind
    day: date  # the snapshot that raised the alert
    since: date
    from_score: float
    to_score: float
    from_band: Band
    to_band: Band
    points: float  # from_score - to_score (positive = a fall)


def _drop_at(ordered: Sequence[Snapshot], i: int, rule: AlertRule) -> Snapshot | None:
    """The peak snapshot of the window before ``ordered[i]`` if the drop from it meets the rule."""
    current = ordered[i]
    start = current.day - timedelta(days=rule.window_days)
    peak: Snapshot | None = None
    j = i - 1
    while j >= 0 and ordered[j].day >= start:
        if peak is None or ordered[j].score > peak.score:
            peak = ordered[j]
        j -= 1
    if peak is not None and peak.score - current.score >= rule.drop_points:
        return peak
    return None


def scan_alerts(snapshots: Iterable[Snapshot], rule: AlertRule | None = None) -> list[HealthAlert]:
    """Every alert the series raises, in date order (edge-triggered; see the module docstring).

    A drop is measured against the highest score of the snapshots dated within ``window_days``
    before the current one (``day - window_days <= d < day``). Two snapshots on one day raise
    ``HealthModelError`` (field ``snapshots``).
    """
    rule = rule or AlertRule()
    ordered = sorted(snapshots, key=lambda s: s.day)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.day == b.day:
            raise HealthModelError(
                "snapshots", "duplicate_day", "one snapshot per day", {"day": a.day.isoformat()}
            )
    alerts: list[HealthAlert] = []
    previous_drop: Snapshot | None = None
    for i, current in enumerate(ordered):
        if i == 0:
            continue
        prev = ordered[i - 1]
        if rule.on_band_change and current.band != prev.band:
            alerts.append(
                HealthAlert(
                    AlertKind.BAND_CHANGE,
                    current.day,
                    prev.day,
                    prev.score,
                    current.score,
                    prev.band,
                    current.band,
                    prev.score - current.score,
                )
            )
        if rule.on_drop:
            peak = _drop_at(ordered, i, rule)
            if peak is not None and previous_drop is None:
                alerts.append(
                    HealthAlert(
                        AlertKind.SCORE_DROP,
                        current.day,
                        peak.day,
                        peak.score,
                        current.score,
                        peak.band,
                        current.band,
                        peak.score - current.score,
                    )
                )
            previous_drop = peak
    return alerts


def check_alerts(snapshots: Iterable[Snapshot], rule: AlertRule | None = None) -> list[HealthAlert]:
    """The alerts raised by the latest snapshot only: what a daily job should send today."""
    ordered = sorted(snapshots, key=lambda s: s.day)
    if not ordered:
        return []
    latest = ordered[-1].day
    return [a for a in scan_alerts(ordered, rule) if a.day == latest]
