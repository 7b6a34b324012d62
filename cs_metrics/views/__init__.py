"""Customer-success pages under ``/cs``: staff only (customers get 403/404 on every one).

One blueprint, one module per area so each stays small: ``portfolio`` (portfolio, account
page, overrides, CSV exports), ``imports`` (CSV upload with progress), ``config`` (health
model, settings), ``rules`` (alert rules, alerts, channels), ``worklist`` (tasks, referrals,
improvement items), ``reports`` (KPI scorecard, targets, NPS), ``survey`` (the in-app NPS
survey: the one CS endpoint a customer uses).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from flask_login import current_user
from markupsafe import Markup

from portal.core.fragments import FragmentCache
from portal.core.i18n import current_locale
from portal.core.permissions import Action, can

bp = Blueprint("cs", __name__, url_prefix="/cs")

_NAV: list[tuple[str, Any, Action]] = []


def nav_item(endpoint: str, label: Any, action: Action = Action.VIEW_CS) -> None:
    """Add a page to the CS navigation (in import order), shown to who may ``action``."""
    _NAV.append((endpoint, label, action))


_nav_bar = FragmentCache("cs/_nav.html")


@bp.context_processor
def _cs_nav() -> dict[str, Any]:
    return {"cs_navigation": _cs_navigation}


def _cs_navigation() -> Markup:
    """The pages this user may open, kept rendered per (language, pages, page shown)."""
    user = current_user._get_current_object()
    allowed = {action: can(user, action) for action in {a for _e, _l, a in _NAV}}
    shown = tuple(endpoint for endpoint, _label, action in _NAV if allowed[action])
    key = (current_locale(), request.script_root, shown, request.endpoint)

    def values() -> dict[str, Any]:
        labels = {endpoint: label for endpoint, label, _action in _NAV}
        return {"items": [(e, labels[e]) for e in shown], "active": request.endpoint}

    return _nav_bar.render(key, values)


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
