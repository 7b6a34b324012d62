"""CS pages: portfolio, account page, overrides, CSV exports (see the package docstring)."""

from __future__ import annotations

from flask import render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from cs_metrics.access import require_cs
from cs_metrics.views import bp, nav_item

nav_item("cs.portfolio", _l("Portfolio"))


@bp.route("/")
@login_required
def portfolio() -> str:
    # The skeleton of the portfolio dashboard (accounts by band, ARR by band, renewals, drops).
    require_cs(current_user)
    return render_template("cs/portfolio.html")
