"""CS settings: one JSON value per key in ``cs_settings``, with the defaults in code.

Read with :func:`get_setting` (the stored value merged over the default, so a setting added
later has a value on old installations); vendor admins change them with :func:`set_setting`.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from cs_metrics.models import CsSetting
from portal.core.errors import DomainError, PermissionDenied
from portal.core.identity import User
from portal.core.permissions import Action, can

DEFAULTS: dict[str, Any] = {
    # CSMs see every account (False) or only the accounts they own (True).
    "own_book_only": False,
    # In-app NPS survey: on/off, and days between two surveys of one user (never under 90).
    "nps_survey": {"enabled": True, "cadence_days": 90, "min_account_age_days": 14},
    # Close-the-loop task for a detractor: due in this many business days.
    "close_the_loop_business_days": 2,
    # Customer lifetime value assumptions (cs_metrics.clv.ClvAssumptions fields).
    "clv": {
        "gross_margin": 0.8,
        "discount_rate": 0.1,
        "service_cost_share": 0.1,
        "cross_sell_probability": 0.2,
        "expansion_share": 0.15,
        "churn_by_band": {"green": 0.05, "yellow": 0.15, "red": 0.35, "unknown": 0.15},
    },
}


def get_setting(session: Session, key: str) -> Any:
    """The value of ``key``: the stored one merged over the default (dicts key by key)."""
    if key not in DEFAULTS:
        raise KeyError(key)
    default = DEFAULTS[key]
    row = session.get(CsSetting, key)
    if row is None:
        return _copy(default)
    if isinstance(default, dict) and isinstance(row.value, dict):
        return {**_copy(default), **row.value}
    return row.value


def set_setting(session: Session, actor: User | None, key: str, value: Any) -> Any:
    """Store ``value`` for ``key`` (vendor admins only); returns what :func:`get_setting` will."""
    if not can(actor, Action.CONFIGURE_CS):
        raise PermissionDenied(str(_l("Only vendor admins can change customer success settings.")))
    if key not in DEFAULTS:
        raise DomainError(str(_l("Unknown setting.")), field="key")
    row = session.get(CsSetting, key)
    if row is None:
        row = CsSetting(key=key, value=value)
        session.add(row)
    else:
        row.value = value
    row.updated_by_id = actor.id if actor is not None else None
    session.flush()
    return get_setting(session, key)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
