"""CS pages: portfolio, account list, account page, overrides, CSV exports of every table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_babel import format_decimal, format_percent
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.wrappers import Response
from wtforms import DateField, FloatField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange

from cs_metrics import charts, reports, service
from cs_metrics.access import require_account, require_cs
from cs_metrics.export import csv_response
from cs_metrics.models import (
    AccountProfile,
    CsSetting,
    HealthAlert,
    HealthOverride,
    HealthSnapshot,
)
from cs_metrics.views import audit, bp, imports, labels, nav_item
from portal.core.db import db, utcnow
from portal.core.i18n import current_locale
from portal.core.identity import Organization
from portal.core.pagecache import RenderedCache
from portal.core.pagination import clamp_page_args
from portal.core.permissions import Action
from portal.core.web import Form, id_arg, perform, render_form, submit

nav_item("cs.portfolio", _l("Portfolio"))
nav_item("cs.accounts", _l("Accounts"))

MAX_RENEWAL_DAYS = 3650
RENEWAL_CHOICES = (30, 90, 180, 365)


COMPONENT_LABELS = {
    "usage_trend": _l("Usage trend (%)"),
    "active_seats": _l("Active seats (share)"),
    "severe_tickets": _l("Open severe tickets"),
    "csat": _l("CSAT (%)"),
    "nps": _l("NPS"),
    "community_engagement": _l("Community engagement per active user"),
    "self_service_rate": _l("Self-service rate"),
    "payment_days_overdue": _l("Payment days overdue"),
    "purchase_frequency": _l("Purchases in 12 months"),
}
ALERT_LABELS = {
    "band_change": _l("Health band changed"),
    "score_drop": _l("Health score dropped"),
}


def component_label(name: str) -> str:
    return str(COMPONENT_LABELS.get(name, name))


def alert_label(alert: Any, rules: dict[int, str] | None = None) -> str:
    """An alert in words: its rule's name or its kind, and the scores it saw if it has them."""
    if alert.rule_id is not None and rules and alert.rule_id in rules:
        label = rules[alert.rule_id]
    else:
        label = str(ALERT_LABELS.get(alert.kind, alert.kind))
    details = alert.details or {}
    if "from_score" in details and "to_score" in details:
        label += f" ({cs_score(details['from_score'])} → {cs_score(details['to_score'])})"
    return label


def _user() -> Any:
    return current_user._get_current_object()


def _today() -> date:
    return utcnow().date()


@bp.app_template_filter("cs_money")
def cs_money(value: Any) -> str:
    """ARR and CLV: whole currency units, grouped in the reader's locale."""
    if value is None:
        return "–"
    return format_decimal(Decimal(value).quantize(Decimal(1)), format="#,##0")


@bp.app_template_filter("cs_score")
def cs_score(value: Any) -> str:
    return "–" if value is None else format_decimal(round(float(value), 1), format="0.0")


@bp.app_template_filter("cs_percent")
def cs_percent(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return format_percent(
        float(value), format="#,##0" + ("." + "0" * digits if digits else "") + "%"
    )


@bp.app_template_filter("cs_band")
def cs_band(value: Any) -> str:
    return str(labels.BAND_LABELS.get(value or "none", labels.BAND_LABELS["none"]))


# --------------------------------------------------------------------------------------------
# Portfolio
# --------------------------------------------------------------------------------------------


def _band_chart(data: reports.Portfolio) -> Markup:
    return charts.bar_chart(
        [(str(labels.BAND_LABELS[b.band]), float(b.arr), b.band) for b in data.bands],
        title=_("ARR by health band"),
        label_header=_("Band"),
        value_format=cs_money,
    )


# The portfolio body of one reader, language and day; the data changes nightly, on imports, on
# overrides, and the book with the own-book setting. Keyed by the reader, not by the book they
# see: working out the book reads that setting, a query that would cost as much as the rest of
# a cached request. A role change shows within the TTL.
portfolio_cache = RenderedCache(
    "cs_portfolio",
    (HealthSnapshot, HealthOverride, AccountProfile, HealthAlert, Organization, CsSetting),
    "CS_PORTFOLIO_CACHE_SECONDS",
)


@bp.route("/")
@login_required
def portfolio() -> str:
    user = require_cs(_user())
    today = _today()

    def render() -> str:
        data = reports.portfolio(db.session, user, today)
        return render_template(
            "cs/_portfolio_body.html",
            data=data,
            arr_chart=_band_chart(data),
            band_labels=labels.BAND_LABELS,
            renewal_args={"renewal": reports.RENEWAL_DAYS, "sort": "renewal"},
        )

    body = portfolio_cache.kept((user.id, current_locale(), today), render)
    # The body is our own template's output, escaped as it was rendered.
    return render_template(
        "cs/portfolio.html",
        body=Markup(body),  # noqa: S704  # nosec B704
        recompute=imports.recompute_state(user),
    )


@bp.route("/portfolio/<any(bands, renewals, drops):table>.csv")
@login_required
def portfolio_export(table: str) -> Response:
    """Each portfolio table in full (the page shows the first rows)."""
    user = require_cs(_user())
    today = _today()
    if table == "bands":
        return csv_response(
            "portfolio-bands.csv",
            [_("Band"), _("Accounts"), _("ARR")],
            [
                (str(labels.BAND_LABELS[b.band]), b.accounts, b.arr)
                for b in reports.band_totals(db.session, user, today)
            ],
        )
    if table == "renewals":
        filters = reports.AccountFilters(renewal_days=reports.RENEWAL_DAYS, sort="renewal")
        rows = reports.all_accounts(db.session, user, today, filters)
        return csv_response("renewals.csv", *_account_table(rows))
    return csv_response(
        "health-drops.csv",
        [_("Account"), _("From"), _("To"), _("Drop (points)"), _("Since"), _("Latest")],
        [(d.name, round(d.from_score, 1), round(d.to_score, 1), round(d.points, 1), d.from_day,
          d.to_day) for d in reports.drops(db.session, user, today)],
    )  # fmt: skip


def _account_table(rows: Sequence[reports.AccountRow]) -> tuple[list[str], list[list[Any]]]:
    header = [
        _("Account"), _("Health"), _("Band"), _("Override"), _("Incomplete"), _("ARR"),
        _("Renewal"), _("Segment"), _("CSM"),
    ]  # fmt: skip
    body = [
        [r.name, None if r.score is None else round(r.score, 1), str(labels.BAND_LABELS[r.band]),
         r.overridden, r.complete is False, r.arr, r.renewal_date, r.segment, r.csm_name]
        for r in rows
    ]  # fmt: skip
    return header, body


# --------------------------------------------------------------------------------------------
# Account list
# --------------------------------------------------------------------------------------------


def _filters() -> reports.AccountFilters:
    args = request.args
    csm_id = id_arg(args.get("csm"))
    try:
        renewal_days: int | None = int(args["renewal"]) if args.get("renewal") else None
    except ValueError:
        renewal_days = None
    if renewal_days is not None and not 0 <= renewal_days <= MAX_RENEWAL_DAYS:
        renewal_days = None
    return reports.AccountFilters(
        q=(args.get("q") or "")[:200],
        band=args.get("band") or "",
        segment=(args.get("segment") or "")[:200],
        csm_id=csm_id,
        sort=args.get("sort") if args.get("sort") in reports.SORTS else "name",
        renewal_days=renewal_days,
    )


@bp.route("/accounts")
@login_required
def accounts() -> str:
    user = require_cs(_user())
    filters = _filters()
    page, per_page = clamp_page_args(request.args.get("page", 1), request.args.get("per_page", 25))
    rows = reports.account_list(db.session, user, _today(), filters, page, per_page)
    return render_template(
        "cs/accounts.html",
        rows=rows,
        filters=filters,
        choices=reports.list_choices(db.session, user),
        band_labels=labels.BAND_LABELS,
        renewal_choices=RENEWAL_CHOICES,
        query_args={k: v for k, v in request.args.items() if k != "page" and v},
    )


@bp.route("/accounts.csv")
@login_required
def accounts_export() -> Response:
    user = require_cs(_user())
    rows = reports.all_accounts(db.session, user, _today(), _filters())
    return csv_response("accounts.csv", *_account_table(rows))


# --------------------------------------------------------------------------------------------
# Account page and overrides
# --------------------------------------------------------------------------------------------


class OverrideForm(Form):
    score = FloatField(_l("Score (0-100)"), validators=[InputRequired(), NumberRange(0, 100)])
    reason = TextAreaField(_l("Reason"), validators=[InputRequired(), Length(max=2000)])
    expires_at = DateField(_l("Expires on"), validators=[InputRequired()])


def _trend_chart(overview: reports.AccountOverview) -> Markup | None:
    history = overview.health["history"]
    if not history:
        return None
    latest = overview.health["latest"] or {}
    model = service.active_model(db.session)
    bands = model.bands
    series: list[tuple[str, list[tuple[date, float | None]]]] = [
        (_("Computed score"), [(p["day"], p["score"]) for p in history])
    ]
    if any(p["overridden"] for p in history):
        series.append((_("Effective score"), [(p["day"], p["effective_score"]) for p in history]))
    markers = [(day, _("Model %(version)s", version=v)) for day, v in overview.model_changes]
    return charts.line_chart(
        series,
        bands=[
            (0, bands.yellow_min, "red"),
            (bands.yellow_min, bands.green_min, "yellow"),
            (bands.green_min, 100, "green"),
        ],
        markers=markers,
        title=_("Health trend of %(name)s (model %(version)s)", name=overview.org.name,
                version=latest.get("model_version", "")),
    )  # fmt: skip


def _account_page(org_id: int, form: OverrideForm | None = None) -> tuple[str, int]:
    user = _user()
    overview = reports.account_overview(db.session, user, org_id, _today())
    if form is None:
        form = OverrideForm()
    return render_form(
        "cs/account.html",
        form,
        o=overview,
        trend=_trend_chart(overview),
        shares=_shares(overview.health),
        overrides=reports.override_history(db.session, org_id),
        band_labels=labels.BAND_LABELS,
        component_label=component_label,
        alert_label=alert_label,
        task_label=labels.task_label,
        labels=labels,
    )


def _shares(health: dict[str, Any]) -> float:
    """Sum of configured weights, to show each component's weight as a percentage."""
    latest = health.get("latest") or {}
    return sum(float(c.get("weight") or 0) for c in latest.get("components") or []) or 1.0


@bp.route("/accounts/<int:org_id>")
@login_required
def account(org_id: int) -> tuple[str, int]:
    page = _account_page(org_id)
    audit.record_view(db.session, _user(), org_id, "account")
    db.session.commit()
    return page


@bp.route("/accounts/<int:org_id>/override", methods=["POST"])
@login_required
def account_override(org_id: int) -> Any:
    user = _user()
    require_account(db.session, user, org_id, Action.MANAGE_CS)
    form = OverrideForm()
    if submit(
        form,
        lambda: service.set_override(
            db.session,
            user,
            org_id,
            float(form.score.data),
            form.reason.data or "",
            datetime.combine(form.expires_at.data, time.min, tzinfo=UTC),
        ),
    ):
        return redirect(url_for("cs.account", org_id=org_id) + "#health")
    return _account_page(org_id, form)


@bp.route("/accounts/<int:org_id>/override/revoke", methods=["POST"])
@login_required
def account_override_revoke(org_id: int) -> Response:
    user = _user()
    require_account(db.session, user, org_id, Action.MANAGE_CS)
    perform(lambda: service.revoke_override(db.session, user, org_id), _("Override revoked."))
    return redirect(url_for("cs.account", org_id=org_id) + "#health")


ACCOUNT_TABLES = (
    "components", "history", "nps", "timeline", "alerts", "tasks", "improvements", "contacts",
    "overrides",
)  # fmt: skip


@bp.route("/accounts/<int:org_id>/<table>.csv")
@login_required
def account_export(org_id: int, table: str) -> Response:
    if table not in ACCOUNT_TABLES:
        abort(404)
    user = _user()
    o = reports.account_overview(db.session, user, org_id, _today(), timeline_limit=10_000)
    slug = o.org.slug
    header: list[str]
    rows: list[Sequence[Any]]
    if table == "components":
        header = [_("Component"), _("Value"), _("Score"), _("Weight %"), _("Contribution"),
                  _("Missing")]  # fmt: skip
        total = _shares(o.health)
        rows = [
            (c["name"], c["raw"], _round(c["score"]), round(100 * float(c["weight"]) / total, 1),
             _round(c["contribution"]), c["missing"])
            for c in (o.health["latest"] or {}).get("components") or []
        ]  # fmt: skip
    elif table == "history":
        header = [_("Day"), _("Score"), _("Band"), _("Effective score"), _("Override"),
                  _("Model version")]  # fmt: skip
        rows = [
            (p["day"], _round(p["score"]), p["band"], _round(p["effective_score"]),
             p["overridden"], p["model_version"])
            for p in o.health["history"]
        ]  # fmt: skip
    elif table == "nps":
        header = [_("Answered"), _("Score"), _("Contact"), _("Comment"), _("Source")]
        rows = [(r.responded_at, r.score, r.contact_email, r.comment, r.source)
                for r in o.nps_responses]  # fmt: skip
    elif table == "timeline":
        header = [_("When"), _("Who"), _("Activity"), _("Code")]
        rows = [
            (a.occurred_at, u.display_name if u else "", labels.activity_label(a.verb), a.verb)
            for a, u in o.timeline
        ]
    elif table == "alerts":
        header = [_("Day"), _("Alert"), _("Severity")]
        rows = [(a.day, alert_label(a, o.alert_rules), a.severity) for a in o.alerts]
    elif table == "tasks":
        header = [_("Due"), _("Task"), _("Kind")]
        rows = [(t.due_on, t.title, t.kind) for t in o.tasks]
    elif table == "improvements":
        header = [_("Opened"), _("Item"), _("Department"), _("Owner"), _("Status")]
        rows = [(i.opened_at, i.title, i.department, i.owner_name, i.status)
                for i in o.improvements]  # fmt: skip
    elif table == "contacts":
        header = [_("Name"), _("Email"), _("Role")]
        rows = [(c.name, c.email, c.role) for c in o.contacts]
    else:
        header = [_("Set"), _("Score"), _("Reason"), _("Expires"), _("Revoked")]
        rows = [(v.created_at, v.score, v.reason, v.expires_at, v.revoked_at)
                for v in reports.override_history(db.session, org_id, limit=1000)]  # fmt: skip
    audit.record_view(db.session, user, org_id, f"export:{table}")
    db.session.commit()
    return csv_response(f"{slug}-{table}.csv", header, rows)


def _round(value: Any) -> Any:
    return None if value is None else round(float(value), 1)
