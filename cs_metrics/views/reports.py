"""CS pages: the KPI scorecard, KPI targets and the NPS report, each table also as CSV."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField

from cs_metrics import scorecards
from cs_metrics.access import require_cs
from cs_metrics.charts import bar_chart, line_chart
from cs_metrics.export import csv_response
from cs_metrics.kpis import Period, Rate
from cs_metrics.nps import NpsResult
from cs_metrics.views import bp, nav_item
from portal.core.db import db, utcnow
from portal.core.errors import DomainError
from portal.core.permissions import Action, can
from portal.core.web import Form, id_arg, render_form, submit

nav_item("cs.scorecard", _l("KPI scorecard"))
nav_item("cs.nps", _l("NPS"))

NPS_TREND_MONTHS = 12
KPI_LABELS = {
    scorecards.BASE: _l("Healthy accounts (health ≥ 85)"),
    scorecards.COLLABORATION: _l("Improvement items closed"),
    scorecards.NPS_CHANGE: _l("NPS change (points)"),
    scorecards.REFERRALS: _l("Referrals from promoters"),
}
TIER_LABELS = {
    scorecards.BASE: _l("Base"),
    scorecards.COLLABORATION: _l("Collaboration"),
    scorecards.NPS_CHANGE: _l("Strategic"),
    scorecards.REFERRALS: _l("Strategic"),
}
SOURCE_LABELS = {
    "csm": _l("this CSM's target"),
    "default": _l("default target"),
    "built_in": _l("built-in target"),
}


def _viewer() -> Any:
    return current_user._get_current_object()


def _today() -> date:
    return utcnow().date()


def _period(prefix: str = "", default: Period | None = None) -> tuple[Period, DomainError | None]:
    """The period the picker asks for; a bad value gives the default and the error to show."""
    if default is not None and not request.args.get(prefix + "kind"):
        return default, None
    try:
        return scorecards.parse_period(request.args, _today(), prefix), None
    except DomainError as error:
        return default or scorecards.month_of(_today()), error


def _picker(period: Period, prefix: str = "") -> dict[str, str]:
    """The picker's field values for ``period`` (and the query string to link to it)."""
    last = period.end - timedelta(days=1)
    kind = scorecards.period_kind(period)
    values = {
        "kind": kind,
        "month": period.start.strftime("%Y-%m"),
        "quarter": f"{period.start.year}-Q{(period.start.month - 1) // 3 + 1}",
        "start": period.start.isoformat(),
        "end": last.isoformat(),
    }
    return {prefix + k: v for k, v in values.items()}


def _pct(value: float | None, digits: int = 0) -> str:
    return _("No data") if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return _("No data") if value is None else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def p_in_words(p_value: float | None) -> str:
    if p_value is None:
        return "–"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def significance_words(difference: float | None, p_value: float | None, alpha: float = 0.05) -> str:
    """What a change in NPS means, for people who do not read p-values."""
    if difference is None or p_value is None:
        return _("Not enough responses in one of the periods to tell.")
    p = p_in_words(p_value)
    if p_value < alpha:
        if difference > 0:
            return _("A significant rise (%(p)s): very unlikely to be chance.", p=p)
        return _("A significant fall (%(p)s): very unlikely to be chance.", p=p)
    return _("Not significant (%(p)s): the change could be chance.", p=p)


def _kpi_value(code: str, value: float | None) -> str:
    if code == scorecards.BASE:
        return _pct(value)
    if code == scorecards.NPS_CHANGE and value is not None:
        return f"{value:+.1f}"
    return _num(value)


def _kpi_rows(card: scorecards.CsmCard) -> list[dict[str, Any]]:
    """One display row per KPI: tier, name, actual, target, attainment, met and an explanation."""
    rows = []
    for kpi in card.kpis:
        d = kpi.details
        if kpi.code == scorecards.BASE:
            note = _(
                "%(healthy)s of %(accounts)s accounts", healthy=d["healthy"], accounts=d["accounts"]
            )
        elif kpi.code == scorecards.COLLABORATION:
            note = _("%(opened)s opened in the period", opened=d["opened"])
        elif kpi.code == scorecards.NPS_CHANGE:
            before = "–" if d["nps_before"] is None else f"{d['nps_before']:.0f}"
            after = "–" if d["nps_after"] is None else f"{d['nps_after']:.0f}"
            note = _(
                "%(before)s (n=%(n_before)s) → %(after)s (n=%(n_after)s). %(words)s",
                before=before,
                n_before=d["n_before"],
                after=after,
                n_after=d["n_after"],
                words=significance_words(kpi.actual, d["p_value"]),  # type: ignore[arg-type]
            )
        else:
            note = ngettext(
                "%(num)d promoter in the period",
                "%(num)d promoters in the period",
                d["promoters"],
            )
        rows.append(
            {
                "code": kpi.code,
                "tier": TIER_LABELS[kpi.code],
                "label": KPI_LABELS[kpi.code],
                "actual": _kpi_value(kpi.code, kpi.actual),
                "target": _kpi_value(kpi.code, kpi.target),
                "attainment": _pct(kpi.attainment),
                "attainment_value": kpi.attainment,
                "met": kpi.met,
                # above its target but not significant: "not met" alone reads as a contradiction
                "not_significant": (
                    not kpi.met
                    and kpi.details.get("significant") is False
                    and kpi.actual is not None
                    and kpi.actual >= kpi.target
                ),
                "note": note,
                "source": SOURCE_LABELS[card.target_sources[kpi.code]],
            }
        )
    return rows


CompanyRow = tuple[str, str, str, float | None]  # figure, value shown, detail, raw value


def _rate_row(name: str, rate: Rate | None, unit: Any) -> CompanyRow:
    if rate is None:
        return name, _("No data"), "", None
    detail = _("%(n)s of %(d)s %(unit)s", n=rate.numerator, d=rate.denominator, unit=unit)
    return name, _pct(rate.value, 1), detail, rate.value


def _company_rows(figures: scorecards.CompanyFigures) -> list[CompanyRow]:
    """The company table and its CSV; a part of the figure above it starts with "– "."""
    current = figures.tickets[-1]
    tickets_detail = _(
        "%(tickets)s tickets, %(accounts)s active accounts",
        tickets=current.tickets,
        accounts=current.active_accounts,
    )
    if current.change is not None:
        change = _("%(change)s from the period before", change=f"{current.change:+.2f}")
        tickets_detail += f"; {change}"
    retention = figures.first_year_retention
    problems = figures.problem_resolution
    ideas = _rate_row("– " + _("Ideas (status decided)"), problems.ideas, _("ideas"))
    if not problems.ideas_installed:
        ideas = (ideas[0], ideas[1], _("Ideas are not recorded yet."), None)
    revenue = figures.revenue
    revenue_detail = (
        ""
        if revenue is None
        else _(
            "start %(start)s, churned %(churned)s, contraction %(contraction)s, "
            "expansion %(expansion)s",
            start=f"{revenue.starting_arr:,.0f}",
            churned=f"{revenue.churned_arr:,.0f}",
            contraction=f"{revenue.contraction_arr:,.0f}",
            expansion=f"{revenue.expansion_arr:,.0f}",
        )
    )
    grr = revenue.grr if revenue else None
    nrr = revenue.nrr if revenue else None
    return [
        _rate_row(_("Self-service rate"), figures.self_service, _("search sessions")),
        (
            _("Tickets per active account"),
            _num(current.per_account, 2),
            tickets_detail,
            current.per_account,
        ),
        _rate_row(
            _("First-year retention"), retention.overall if retention else None, _("accounts")
        ),
        _rate_row(
            _("Customer problems resolved within %(days)s days", days=problems.target.days),
            problems.overall,
            _("received"),
        ),
        _rate_row("– " + _("Questions (accepted answer)"), problems.questions, _("questions")),
        ideas,
        (_("Gross revenue retention"), _pct(grr, 1), revenue_detail, grr),
        (_("Net revenue retention"), _pct(nrr, 1), revenue_detail, nrr),
        _rate_row(_("Logo churn"), figures.logo_churn, _("customers at the start")),
    ]


def _tickets_chart(figures: scorecards.CompanyFigures) -> Any:
    values = [p.per_account for p in figures.tickets if p.per_account is not None]
    return line_chart(
        [
            (
                _("Tickets per active account"),
                [(p.period.start, p.per_account) for p in figures.tickets],
            )
        ],
        y_min=0,
        y_max=max(values) * 1.2 if values and max(values) > 0 else 1,
        title=_("Tickets per active account, by period"),
        value_format="{:.2f}",
    )


# --- KPI scorecard --------------------------------------------------------------------------


@bp.route("/scorecard")
@login_required
def scorecard() -> Any:
    viewer = require_cs(_viewer())
    period, error = _period()
    cards = scorecards.all_scorecards(db.session, viewer, period)
    figures = scorecards.company_figures(db.session, period)
    retention = figures.first_year_retention
    page = render_template(
        "cs/scorecard.html",
        period=period,
        period_label=scorecards.period_label(period),
        picker=_picker(period),
        errors={error.field: error.message} if error else {},
        cards=[(card, _kpi_rows(card)) for card in cards],
        viewer_id=viewer.id,
        company=_company_rows(figures),
        tickets=figures.tickets,
        tickets_chart=_tickets_chart(figures),
        retention_by_owner=sorted(retention.by_owner.items()) if retention else [],
        label_of=scorecards.period_label,
        pct=_pct,
        num=_num,
        can_configure=_can_configure(),
    )
    return page, 422 if error else 200


def _can_configure() -> bool:
    return can(current_user, Action.CONFIGURE_CS)


def _scorecard_table(period: Period) -> tuple[list[str], list[list[Any]]]:
    cards = scorecards.all_scorecards(db.session, _viewer(), period)
    header = [
        _("CSM"),
        _("Period"),
        _("Tier"),
        _("KPI"),
        _("Actual"),
        _("Target"),
        _("Attainment"),
        _("Met"),
        _("Tier reached"),
        "p_value",
    ]
    rows = [
        [
            card.name,
            scorecards.period_label(period),
            TIER_LABELS[kpi.code],
            kpi.code,
            kpi.actual,
            kpi.target,
            kpi.attainment,
            kpi.met,
            card.scorecard.tier_reached,
            kpi.details.get("p_value"),
        ]
        for card in cards
        for kpi in card.kpis
    ]
    return header, rows


@bp.route("/scorecard/<table>.csv")
@login_required
def scorecard_csv(table: str) -> Response:
    require_cs(_viewer())
    period, error = _period()
    if error is not None:
        abort(400)
    label = scorecards.period_label(period).replace(" – ", "_")
    if table == "kpis":
        header, rows = _scorecard_table(period)
    else:
        figures = scorecards.company_figures(db.session, period)
        if table == "company":
            header, rows = (
                [_("Figure"), _("Value"), _("Detail")],
                [[name, raw, detail] for name, _text, detail, raw in _company_rows(figures)],
            )
        elif table == "tickets":
            header = [
                _("Period"),
                _("Tickets"),
                _("Active accounts"),
                _("Per account"),
                _("Change"),
            ]
            rows = [
                [
                    scorecards.period_label(p.period),
                    p.tickets,
                    p.active_accounts,
                    p.per_account,
                    p.change,
                ]
                for p in figures.tickets
            ]
        elif table == "retention":
            header = [_("Sales owner"), _("Retained"), _("Accounts"), _("Retention")]
            result = figures.first_year_retention
            rows = [
                [owner or _("No sales owner"), r.numerator, r.denominator, r.value]
                for owner, r in sorted(result.by_owner.items() if result else [])
            ]
        else:
            abort(404)
    return csv_response(f"scorecard-{table}-{label}.csv", header, rows)


# --- targets --------------------------------------------------------------------------------


class TargetsForm(Form):
    csm_id = SelectField(_l("Whose targets"), validate_choice=False)
    base_healthy_share = StringField(_l("Healthy accounts, percent of the book"))
    collaboration_closed = StringField(_l("Improvement items closed per month"))
    nps_change = StringField(_l("NPS change over the period, points"))
    referrals = StringField(_l("Referrals per quarter"))


def _parse_number(form: TargetsForm, name: str) -> float | None:
    raw = (getattr(form, name).data or "").strip().replace(",", ".").rstrip("%").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise DomainError(_("Enter a number."), field=name) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DomainError(_("Enter a number."), field=name)
    return value / 100.0 if name == scorecards.BASE else value


def _save_targets(form: TargetsForm, csm_id: int | None) -> None:
    values = {code: _parse_number(form, code) for code in scorecards.KPI_CODES}
    for code, value in values.items():
        scorecards.set_target(db.session, _viewer(), csm_id, code, value)


def _csm_choice(raw: str | None) -> int | None:
    if not raw:
        return None
    csm_id = id_arg(raw)
    if csm_id is None:
        raise DomainError(_("Choose a customer success manager."), field="csm_id")
    return csm_id


def _target_rows(table: scorecards.TargetTable, csms: Sequence[tuple[int, str]]) -> list[Any]:
    rows = [(None, _("Default for every CSM"), table.defaults, table.defaults)]
    for csm_id, name in csms:
        own = table.by_csm.get(csm_id, {})
        rows.append((csm_id, name, own, table.for_csm(csm_id)))
    return rows


def _form_values(values: dict[str, float]) -> dict[str, str]:
    return {
        code: (f"{value * 100:g}" if code == scorecards.BASE else f"{value:g}")
        for code, value in values.items()
    }


@bp.route("/targets", methods=["GET", "POST"])
@login_required
def targets() -> Any:
    require_cs(_viewer(), Action.CONFIGURE_CS)
    table = scorecards.target_table(db.session)
    csms = scorecards.csm_list(db.session)
    selected = request.form.get("csm_id") if request.method == "POST" else request.args.get("csm")
    form = TargetsForm()
    form.csm_id.choices = [("", _("Default for every CSM"))] + [(str(i), n) for i, n in csms]
    try:
        csm_id = _csm_choice(selected)
    except DomainError as error:
        csm_id = None
        form.csm_id.errors = [error.message]
    if request.method == "GET":
        form.csm_id.data = "" if csm_id is None else str(csm_id)
        current = table.defaults if csm_id is None else table.by_csm.get(csm_id, {})
        for code, text in _form_values(current).items():
            getattr(form, code).data = text
    elif not form.csm_id.errors and submit(form, lambda: _save_targets(form, csm_id)):
        flash(_("The targets were saved."), "success")
        return redirect(url_for("cs.targets", csm=csm_id or ""))
    return render_form(
        "cs/targets.html",
        form,
        rows=_target_rows(table, csms),
        codes=scorecards.KPI_CODES,
        labels=KPI_LABELS,
        shown=_form_values,
    )


@bp.route("/targets.csv")
@login_required
def targets_csv() -> Response:
    require_cs(_viewer())
    table = scorecards.target_table(db.session)
    rows = _target_rows(table, scorecards.csm_list(db.session))
    header = [_("CSM"), *scorecards.KPI_CODES]
    return csv_response(
        "kpi-targets.csv",
        header,
        [
            [name, *(effective[code] for code in scorecards.KPI_CODES)]
            for _i, name, _o, effective in rows
        ],
    )


# --- NPS ------------------------------------------------------------------------------------


def _nps_cells(result: NpsResult) -> dict[str, Any]:
    return {
        "n": result.n,
        "nps": "–" if result.nps is None else f"{result.nps:.0f}",
        "margin": "" if result.margin is None else f"± {result.margin:.0f}",
        "promoters": result.promoters,
        "passives": result.passives,
        "detractors": result.detractors,
    }


def _trend_period(period: Period) -> Period:
    end_month = scorecards.month_of(period.end - timedelta(days=1))
    start = end_month.start
    for _i in range(NPS_TREND_MONTHS - 1):
        start = scorecards.month_of(start - timedelta(days=1)).start
    return Period(start, end_month.end)


SCORE_CLASS = {**dict.fromkeys(range(7), "red"), 7: "yellow", 8: "yellow", 9: "green", 10: "green"}


@bp.route("/nps")
@login_required
def nps() -> Any:
    viewer = require_cs(_viewer())
    period, error = _period()
    a, error_a = _period("a_", scorecards.previous(period))
    b, error_b = _period("b_", period)
    errors = {k: e for k, e in (("", error), ("a_", error_a), ("b_", error_b)) if e is not None}
    overall = scorecards.nps_report(db.session, viewer, period, "segment")
    breakdowns = [
        ("segment", _("By segment"), overall.rows),
        ("csm", _("By CSM"), scorecards.nps_report(db.session, viewer, period, "csm").rows),
        (
            "account",
            _("By account"),
            scorecards.nps_report(db.session, viewer, period, "account").rows,
        ),
    ]
    trend = scorecards.nps_report(db.session, viewer, _trend_period(period), "month")
    comparison = scorecards.compare_periods(db.session, a, b, user=viewer)
    c = comparison.comparison
    page = render_template(
        "cs/nps.html",
        period=period,
        period_label=scorecards.period_label(period),
        picker={**_picker(period), **_picker(a, "a_"), **_picker(b, "b_")},
        errors={e.field: e.message for e in errors.values()},
        overall=_nps_cells(overall.overall),
        overall_result=overall.overall,
        breakdowns=[
            (key, title, [(r.label, _nps_cells(r.result)) for r in rows])
            for key, title, rows in breakdowns
        ],
        trend=[(r.label, _nps_cells(r.result)) for r in trend.rows],
        trend_chart=line_chart(
            [(_("NPS"), [(r.key.start, r.result.nps) for r in trend.rows])],
            y_min=-100,
            y_max=100,
            title=_("NPS by month"),
        ),
        distribution_chart=bar_chart(
            [(str(score), n, SCORE_CLASS[score]) for score, n in overall.distribution],
            title=_("Responses by score, 0 to 10"),
            label_header=_("Score"),
        ),
        distribution=overall.distribution,
        a_label=scorecards.period_label(a),
        b_label=scorecards.period_label(b),
        a_cells=_nps_cells(comparison.result_a),
        b_cells=_nps_cells(comparison.result_b),
        difference="–" if c.difference is None else f"{c.difference:+.1f}",
        p_words=p_in_words(c.p_value),
        significance=significance_words(c.difference, c.p_value, c.alpha),
    )
    return page, 422 if errors else 200


NPS_HEADER = ["n", "NPS", "margin", "promoters", "passives", "detractors"]


@bp.route("/nps/<table>.csv")
@login_required
def nps_csv(table: str) -> Response:
    viewer = require_cs(_viewer())
    period, error = _period()
    if error is not None:
        abort(400)
    label = scorecards.period_label(period).replace(" – ", "_")

    def cells(result: NpsResult) -> list[Any]:
        return [
            result.n,
            None if result.nps is None else round(result.nps, 1),
            None if result.margin is None else round(result.margin, 1),
            result.promoters,
            result.passives,
            result.detractors,
        ]

    if table in ("segment", "csm", "account"):
        report = scorecards.nps_report(db.session, viewer, period, table)
        rows = [[r.label, *cells(r.result)] for r in report.rows]
        return csv_response(f"nps-{table}-{label}.csv", [table, *NPS_HEADER], rows)
    if table == "month":
        report = scorecards.nps_report(db.session, viewer, _trend_period(period), "month")
        rows = [[r.label, *cells(r.result)] for r in report.rows]
        return csv_response(f"nps-by-month-{label}.csv", ["month", *NPS_HEADER], rows)
    if table == "distribution":
        report = scorecards.nps_report(db.session, viewer, period, "segment")
        return csv_response(
            f"nps-distribution-{label}.csv", ["score", "responses"], report.distribution
        )
    if table == "compare":
        a, error_a = _period("a_", scorecards.previous(period))
        b, error_b = _period("b_", period)
        if error_a or error_b:
            abort(400)
        result = scorecards.compare_periods(db.session, a, b, user=viewer)
        c = result.comparison
        rows = [
            [scorecards.period_label(a), *cells(result.result_a)],
            [scorecards.period_label(b), *cells(result.result_b)],
        ]
        rows.append(["difference", None, c.difference, None, None, None, None])
        rows.append(["p_value", None, c.p_value, None, None, None, None])
        return csv_response(f"nps-compare-{label}.csv", ["period", *NPS_HEADER], rows)
    abort(404)
