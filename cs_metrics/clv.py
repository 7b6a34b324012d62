"""Five-year expected customer lifetime value (CLV), with its yearly breakdown and assumptions.

Pure calculator: plain data in (``ClvInput``, ``ClvAssumptions``), plain data out
(``ClvResult``). Only the standard library and ``cs_metrics.health`` (for ``Band``) are imported.

Formula (years ``t = 1..horizon``, default 5)::

    cash_t     = revenue * gross_margin - service_cost + cross_sell_probability * expansion
    survival_t = prod_{k=1..t} (1 - churn)          = (1 - churn) ** t
    discount_t = 1 / (1 + discount_rate) ** t
    CLV        = sum_t cash_t * survival_t * discount_t

``churn`` is the annual churn probability of the account's health band
(``churn_by_band``, default green 5%, yellow 15%, red 35%) unless ``ClvInput.churn_probability``
gives it directly. Survival starts at year 1 (an account must renew into a year to pay for it).
``expansion`` enters as given, not multiplied by the gross margin: pass expansion gross profit
if that is what you mean. Amounts are per year and constant over the horizon.

With a positive yearly cash flow CLV falls as churn or the discount rate rises; with a negative
one (service costs above margin) higher churn moves CLV up towards 0 (fewer loss-making years).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cs_metrics.health import Band, CalculatorInputError

__all__ = [
    "DEFAULT_CHURN_BY_BAND",
    "ClvAssumptions",
    "ClvInput",
    "ClvInputError",
    "ClvResult",
    "ClvYear",
    "lifetime_value",
]

DEFAULT_CHURN_BY_BAND: Mapping[Band, float] = MappingProxyType(
    {Band.GREEN: 0.05, Band.YELLOW: 0.15, Band.RED: 0.35}
)


class ClvInputError(CalculatorInputError):
    """An input CLV cannot use; ``field`` names it (``"annual_revenue"``, ``"discount_rate"``)."""


def _number(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ClvInputError(name, "not_finite", "must be a finite number")
    return float(value)


def _non_negative(value: float, name: str) -> float:
    if _number(value, name) < 0:
        raise ClvInputError(name, "negative", "must not be negative")
    return float(value)


def _probability(value: float, name: str) -> float:
    if not 0 <= _number(value, name) <= 1:
        raise ClvInputError(name, "not_a_probability", "must be within 0..1")
    return float(value)


@dataclass(frozen=True)
class ClvAssumptions:
    """Company-wide assumptions (shown beside every CLV figure)."""

    gross_margin: float = 0.75  # share of revenue kept after cost of revenue, 0..1
    discount_rate: float = 0.10  # annual, > -1
    horizon_years: int = 5
    churn_by_band: Mapping[Band, float] = field(default_factory=lambda: DEFAULT_CHURN_BY_BAND)

    def __post_init__(self) -> None:
        _probability(self.gross_margin, "gross_margin")
        if _number(self.discount_rate, "discount_rate") <= -1:
            raise ClvInputError("discount_rate", "not_above_minus_one", "must be above -1")
        if isinstance(self.horizon_years, bool) or not isinstance(self.horizon_years, int):
            raise ClvInputError("horizon_years", "not_an_integer", "must be a whole number")
        if self.horizon_years < 1:
            raise ClvInputError("horizon_years", "not_positive", "at least 1 year")
        for band in Band:
            if band not in self.churn_by_band:
                raise ClvInputError(f"churn_by_band.{band}", "missing", "a churn rate is needed")
            _probability(self.churn_by_band[band], f"churn_by_band.{band}")


@dataclass(frozen=True)
class ClvInput:
    """One account, per year. Give ``band`` or ``churn_probability`` (which wins)."""

    annual_revenue: float  # expected recurring revenue per year, >= 0
    service_cost: float = 0.0  # cost to serve per year (CSM time, support), >= 0
    cross_sell_probability: float = 0.0  # 0..1
    expansion: float = 0.0  # yearly value of the cross-sell if it happens, >= 0
    band: Band | None = None
    churn_probability: float | None = None  # annual, 0..1; overrides the band's rate

    def __post_init__(self) -> None:
        _non_negative(self.annual_revenue, "annual_revenue")
        _non_negative(self.service_cost, "service_cost")
        _probability(self.cross_sell_probability, "cross_sell_probability")
        _non_negative(self.expansion, "expansion")
        if self.churn_probability is not None:
            _probability(self.churn_probability, "churn_probability")
        elif self.band is None:
            raise ClvInputError("band", "missing", "give a health band or a churn probability")
        elif self.band not in tuple(Band):
            raise ClvInputError("band", "unknown", "must be green, yellow or red")


@dataclass(frozen=True)
class ClvYear:
    year: int
    cash_flow: float  # revenue * margin - service cost + p * expansion (undiscounted, if alive)
    survival: float  # probability the account is still a customer in this year
    discount_factor: float  # 1 / (1 + r) ** year
    present_value: float  # cash_flow * survival * discount_factor


@dataclass(frozen=True)
class ClvResult:
    value: float  # sum of present values
    years: tuple[ClvYear, ...]
    churn_probability: float  # the annual rate used
    churn_source: str  # "band" or "input"
    band: Band | None
    assumptions: ClvAssumptions
    account: ClvInput


def lifetime_value(account: ClvInput, assumptions: ClvAssumptions | None = None) -> ClvResult:
    """Expected CLV over the horizon (see the module docstring for the formula)."""
    assumptions = assumptions or ClvAssumptions()
    if account.churn_probability is not None:
        churn, source = float(account.churn_probability), "input"
    else:
        assert account.band is not None
        churn, source = float(assumptions.churn_by_band[account.band]), "band"
    cash = (
        account.annual_revenue * assumptions.gross_margin
        - account.service_cost
        + account.cross_sell_probability * account.expansion
    )
    years: list[ClvYear] = []
    survival = 1.0
    for t in range(1, assumptions.horizon_years + 1):
        survival *= 1.0 - churn
        discount = 1.0 / (1.0 + assumptions.discount_rate) ** t
        years.append(ClvYear(t, cash, survival, discount, cash * survival * discount))
    return ClvResult(
        value=math.fsum(y.present_value for y in years),
        years=tuple(years),
        churn_probability=churn,
        churn_source=source,
        band=account.band,
        assumptions=assumptions,
        account=account,
    )
