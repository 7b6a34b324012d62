"""CS pages: the health model editor with its version history, and the CS settings.

Staff read both; only vendor admins (CONFIGURE_CS) save. A saved model is a new version
(``service.save_health_model``), never an edit, so old snapshots keep the model they were
computed with and the trend chart can mark the change."""

from __future__ import annotations

import math
import re
from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, FloatField, IntegerField
from wtforms.validators import InputRequired, NumberRange

from cs_metrics import clv, service
from cs_metrics.access import require_cs
from cs_metrics.export import csv_response
from cs_metrics.health import Band
from cs_metrics.models import HealthModelVersion
from cs_metrics.settings import get_setting, set_setting
from cs_metrics.views import bp, imports, nav_item
from cs_metrics.views.portfolio import COMPONENT_LABELS
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.identity import User
from portal.core.permissions import Action, can
from portal.core.web import Form, attach_error, render_form

nav_item("cs.health_model", _l("Health model"))
nav_item("cs.settings", _l("Settings"), Action.CONFIGURE_CS)

BLANK_ROWS = 2
MAX_COMPONENTS = 30


def _user() -> User:
    return current_user._get_current_object()


# --------------------------------------------------------------------------------------------
# Health model
# --------------------------------------------------------------------------------------------


class ModelForm(Form):
    """Only the bands and CSRF: the component rows are a variable-length table read below."""

    green_min = FloatField(_l("Green from"), validators=[InputRequired(), NumberRange(0, 100)])
    yellow_min = FloatField(_l("Yellow from"), validators=[InputRequired(), NumberRange(0, 100)])


def _rows_from_config(config: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for c in config["components"]:
        scale = c["scale"]
        rows.append(
            {
                "name": c["name"],
                "weight": _plain(c["weight"]),
                "scale": scale["type"],
                "at_0": _plain(scale.get("at_0", "")),
                "at_100": _plain(scale.get("at_100", "")),
                "steps": ", ".join(f"{_plain(b)}:{_plain(s)}" for b, s in scale.get("steps", [])),
            }
        )
    return rows


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rows_from_request(form: MultiDict[str, str]) -> list[dict[str, str]]:
    fields = ("name", "weight", "scale", "at_0", "at_100", "steps")
    columns = {f: form.getlist(f"{f}[]") for f in fields}
    count = min(MAX_COMPONENTS, max((len(v) for v in columns.values()), default=0))
    return [
        {f: (columns[f][i] if i < len(columns[f]) else "").strip() for f in fields}
        for i in range(count)
    ]


class RowErrors(DomainError):
    """Errors of the component table, keyed by row index (shown beside the cells)."""

    def __init__(self, message: str, errors: dict[int, list[str]]) -> None:
        super().__init__(message)
        self.errors = errors


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def config_from_rows(rows: list[dict[str, str]], green: float, yellow: float) -> dict[str, Any]:
    """The model config (``service.model_from_config`` shape) of the edited table; rows with
    no name are left out (that is how a component is removed). RowErrors says what is wrong."""
    errors: dict[int, list[str]] = {}
    components = []
    for i, row in enumerate(rows):
        if not row["name"]:
            continue
        problems = errors.setdefault(i, [])
        weight = _number(row["weight"])
        if weight is None or weight <= 0:
            problems.append(_("The weight must be a number above 0."))
        if row["scale"] == "thresholds":
            steps = []
            for part in filter(None, (p.strip() for p in row["steps"].split(","))):
                bound, _sep, score = part.partition(":")
                b, s = _number(bound), _number(score)
                if b is None or s is None:
                    problems.append(_("Write the steps as value:score pairs, e.g. 0:100, 1:70."))
                    break
                steps.append([b, s])
            if not steps and not problems:
                problems.append(_("Give at least one step."))
            scale: dict[str, Any] = {"type": "thresholds", "steps": steps}
        else:
            at_0, at_100 = _number(row["at_0"]), _number(row["at_100"])
            if at_0 is None or at_100 is None:
                problems.append(_("Give the values that score 0 and 100."))
            elif at_0 == at_100:
                problems.append(_("The values that score 0 and 100 must differ."))
            scale = {"type": "linear", "at_0": at_0, "at_100": at_100}
        components.append({"name": row["name"], "weight": weight, "scale": scale})
    errors = {i: p for i, p in errors.items() if p}
    if not components:
        raise RowErrors(_("The model needs at least one component."), errors)
    weights = [c["weight"] for c in components if c["weight"] is not None]
    if weights and not any(w > 0 for w in weights):
        raise RowErrors(_("The weights sum to zero: give at least one component a weight."), errors)
    if errors:
        raise RowErrors(_("Some components are not valid; see the rows marked below."), errors)
    return {"components": components, "bands": {"green_min": green, "yellow_min": yellow}}


def _error_row(rows: list[dict[str, str]], field: str | None) -> int | None:
    """The table row of a ``components[n]...`` error (rows without a name are left out)."""
    found = re.match(r"components\[(\d+)\]", field or "")
    named = [i for i, row in enumerate(rows) if row["name"]]
    if found is None or int(found.group(1)) >= len(named):
        return None
    return named[int(found.group(1))]


@bp.route("/health-model", methods=["GET", "POST"])
@login_required
def health_model() -> Any:
    user = require_cs(_user())
    active = service.active_model(db.session)
    config = service.model_to_config(active)
    form = ModelForm(
        data={"green_min": active.bands.green_min, "yellow_min": active.bands.yellow_min}
    )
    rows = _rows_from_config(config)
    row_errors: dict[int, list[str]] = {}
    if request.method == "POST":
        require_cs(user, Action.CONFIGURE_CS)
        rows = _rows_from_request(request.form)
        if form.validate_on_submit():
            try:
                new = config_from_rows(rows, form.green_min.data, form.yellow_min.data)
                saved = service.save_health_model(db.session, user, new)
                db.session.commit()
            except RowErrors as error:
                db.session.rollback()
                row_errors = error.errors
                attach_error(form, error)
            except DomainError as error:
                db.session.rollback()
                row = _error_row(rows, error.field)
                if row is None:
                    attach_error(form, error)
                else:  # beside the row, and named above the table
                    form.error_status = error.status_code
                    row_errors[row] = [error.message]
                    form.form_errors.append(
                        _("Row %(row)s: %(message)s", row=row + 1, message=error.message)
                    )
            else:
                flash(_("Health model %(version)s saved; it applies from the next recompute.",
                        version=saved.version), "success")  # fmt: skip
                return redirect(url_for("cs.health_model"))
    total = sum(_number(r["weight"]) or 0 for r in rows if r["name"]) or 1.0
    shares = [((_number(r["weight"]) or 0) / total if r["name"] else None) for r in rows]
    versions = db.session.scalars(
        select(HealthModelVersion).order_by(HealthModelVersion.id.desc()).limit(50)
    ).all()
    authors = {
        u.id: u
        for u in db.session.scalars(
            select(User).where(User.id.in_({v.created_by_id for v in versions if v.created_by_id}))
        )
    }
    blank = {"name": "", "weight": "", "scale": "linear", "at_0": "", "at_100": "", "steps": ""}
    return render_form(
        "cs/health_model.html",
        form,
        model=active,
        rows=[*rows, *([blank] * BLANK_ROWS)],
        shares=shares,
        row_errors=row_errors,
        versions=versions,
        authors=authors,
        component_labels=COMPONENT_LABELS,
        may_edit=can(user, Action.CONFIGURE_CS),
        recompute=imports.recompute_state(user),
    )


@bp.route("/health-model/versions.csv")
@login_required
def health_model_export() -> Any:
    require_cs(_user())
    versions = db.session.scalars(select(HealthModelVersion).order_by(HealthModelVersion.id))
    return csv_response(
        "health-model-versions.csv",
        [_("Version"), _("Saved"), _("Active"), _("Component"), _("Weight"), _("Scale")],
        [
            (v.version, v.created_at, v.active, c.get("name"), c.get("weight"),
             (c.get("scale") or {}).get("type"))
            for v in versions
            for c in (v.config or {}).get("components", [])
        ],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def _pct(label: Any) -> FloatField:
    return FloatField(label, validators=[InputRequired(), NumberRange(0, 100)])


class SettingsForm(Form):
    own_book_only = BooleanField(_l("CSMs see only the accounts they own"))
    nps_enabled = BooleanField(_l("Show the in-app NPS survey"))
    nps_cadence_days = IntegerField(
        _l("Days between two surveys of one person"),
        validators=[InputRequired(), NumberRange(90, 3650)],
    )
    gross_margin = _pct(_l("Gross margin (%)"))
    discount_rate = FloatField(
        _l("Discount rate (% a year)"), validators=[InputRequired(), NumberRange(-99, 100)]
    )
    service_cost_share = _pct(_l("Cost to serve (percent of ARR)"))
    cross_sell_probability = _pct(_l("Cross-sell probability (%)"))
    expansion_share = _pct(_l("Cross-sell value (percent of ARR)"))
    churn_green = _pct(_l("Annual churn of green accounts (%)"))
    churn_yellow = _pct(_l("Annual churn of yellow accounts (%)"))
    churn_red = _pct(_l("Annual churn of red accounts (%)"))
    churn_unknown = _pct(_l("Annual churn of accounts with no score (%)"))


CLV_PERCENT_FIELDS = (
    "gross_margin", "discount_rate", "service_cost_share", "cross_sell_probability",
    "expansion_share",
)  # fmt: skip


def _settings_data() -> dict[str, Any]:
    survey = get_setting(db.session, "nps_survey")
    clv_settings = get_setting(db.session, "clv")
    data: dict[str, Any] = {
        "own_book_only": bool(get_setting(db.session, "own_book_only")),
        "nps_enabled": bool(survey.get("enabled")),
        "nps_cadence_days": survey.get("cadence_days"),
    }
    for key in CLV_PERCENT_FIELDS:
        data[key] = round(100 * float(clv_settings.get(key, 0)), 4)
    for band, rate in (clv_settings.get("churn_by_band") or {}).items():
        data[f"churn_{band}"] = round(100 * float(rate), 4)
    return data


def _save_settings(user: User, form: SettingsForm) -> None:
    churn = {b: form[f"churn_{b}"].data / 100 for b in ("green", "yellow", "red", "unknown")}
    values = {key: form[key].data / 100 for key in CLV_PERCENT_FIELDS}
    try:  # the calculator is the one judge of valid assumptions
        clv.ClvAssumptions(
            gross_margin=values["gross_margin"],
            discount_rate=values["discount_rate"],
            churn_by_band={b: churn[b.value] for b in Band},
        )
    except clv.ClvInputError as error:
        raise DomainError(_("The CLV assumptions are not valid: %(field)s %(reason)s",
                            field=error.field, reason=error.message)) from None  # fmt: skip
    set_setting(db.session, user, "own_book_only", bool(form.own_book_only.data))
    survey = get_setting(db.session, "nps_survey")
    survey.update(enabled=bool(form.nps_enabled.data), cadence_days=form.nps_cadence_days.data)
    set_setting(db.session, user, "nps_survey", survey)
    clv_settings = get_setting(db.session, "clv")
    clv_settings.update(values, churn_by_band=churn)
    set_setting(db.session, user, "clv", clv_settings)


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings() -> Any:
    user = require_cs(_user())
    if request.method == "POST":
        require_cs(user, Action.CONFIGURE_CS)
        form = SettingsForm()
    else:
        form = SettingsForm(data=_settings_data())
    if request.method == "POST" and form.validate_on_submit():
        try:
            _save_settings(user, form)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            attach_error(form, error)
        else:
            flash(_("Settings saved."), "success")
            return redirect(url_for("cs.settings"))
    return render_form("cs/settings.html", form, may_edit=can(user, Action.CONFIGURE_CS))
