"""Customer-success pages under ``/cs``: staff only (customers get 403/404 on every one).

One blueprint, one module per area so each stays small: ``portfolio`` (portfolio, account
page, overrides, CSV exports), ``imports`` (CSV upload with progress), ``config`` (health
model, settings), ``rules`` (alert rules, alerts, channels), ``worklist`` (tasks, referrals,
improvement items), ``reports`` (KPI scorecard, targets, NPS), ``survey`` (the in-app NPS
survey: the one CS endpoint a customer uses).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask_login import current_user

from portal.core.permissions import Action, can

bp = Blueprint("cs", __name__, url_prefix="/cs")

_NAV: list[tuple[str, Any, Action]] = []


def nav_item(endpoint: str, label: Any, action: Action = Action.VIEW_CS) -> None:
    """Add a page to the CS navigation (in import order), shown to who may ``action``."""
    _NAV.append((endpoint, label, action))


@bp.context_processor
def _cs_nav() -> dict[str, Any]:
    return {"cs_nav_items": [(e, label) for e, label, a in _NAV if can(current_user, a)]}


from cs_metrics.views import (  # noqa: E402  (the modules add their routes to bp)
    audit,
    config,
    imports,
    portfolio,
    reports,
    rules,
    survey,
    worklist,
)

__all__ = [
    "audit",
    "bp",
    "nav_item",
    "config",
    "imports",
    "portfolio",
    "reports",
    "rules",
    "survey",
    "worklist",
]
