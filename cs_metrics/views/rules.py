"""CS pages: alerts (list, channels, close, CSV), alert rules (list, form with a preview,
enable/disable, delete) and each rule's firing history. See the package docstring."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from cs_metrics import playbooks
from cs_metrics.access import require_cs
from cs_metrics.export import csv_response
from cs_metrics.models import AlertRule
from cs_metrics.views import bp, imports, nav_item
from cs_metrics.views.labels import RULE_ACTIONS, SEVERITY_LABELS
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.pagination import clamp_page_args
from portal.core.permissions import Action, can
from portal.core.urls import is_safe_next
from portal.core.web import Form, attach_error, id_arg, perform, render_form, submit

nav_item("cs.alerts", _l("Alerts"))
nav_item("cs.rules", _l("Alert rules"))

ROLE_LABELS = {"csm": _l("The account's CSM"), "vendor_admins": _l("Vendor admins")}
PER_PAGE = 50


@bp.app_template_filter("cs_metric")
def cs_metric(value: Any) -> str:
    """A rule metric's value as people read it: yes/no, a number rounded to two decimals in the
    reader's locale, text as it is; "—" for no data."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, int | float):
        return format_decimal(value, format="#,##0.##")
    return str(value)


def _choices(pairs: Any) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]  # type: ignore[attr-defined]


def _user() -> Any:
    return current_user._get_current_object()


# --- forms ---------------------------------------------------------------------------------


class RuleForm(Form):
    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(message=_l("This field is required.")),
            Length(max=200, message=_l("Use at most %(max)d characters.")),
        ],
    )
    expression = TextAreaField(_l("Condition"))
    severity = SelectField(
        _l("Severity"), choices=_choices(SEVERITY_LABELS.items()), default="warning"
    )
    enabled = BooleanField(_l("Enabled"), default=True)
    task = BooleanField(_l("Create a task for the CSM"))
    due_days = IntegerField(
        _l("Task due in (days)"),
        validators=[
            Optional(),
            NumberRange(min=0, max=365, message=_l("Give a number of days from 0 to 365.")),
        ],
        default=2,
    )
    notify_roles = SelectMultipleField(
        _l("Notify"),
        choices=_choices(ROLE_LABELS.items()),
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
        validate_choice=False,
    )
    tag = StringField(_l("Tag the account"), validators=[Optional()])
    channel = StringField(_l("Route to channel"), validators=[Optional()])
    preview_account = SelectField(_l("Account"), coerce=id_arg, validate_choice=False)
    save = SubmitField(_l("Save rule"))
    preview = SubmitField(_l("Test against this account"))

    def actions(self) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = []
        if self.channel.data and self.channel.data.strip():
            actions.append({"type": "channel", "channel": self.channel.data})
        if self.task.data:
            due = self.due_days.data
            actions.append({"type": "task", "due_days": 2 if due is None else due})
        if self.notify_roles.data:
            actions.append({"type": "notify", "roles": list(self.notify_roles.data)})
        if self.tag.data and self.tag.data.strip():
            actions.append({"type": "tag", "tag": self.tag.data})
        return actions

    def values(self) -> dict[str, Any]:
        return {
            "name": self.name.data or "",
            "expression": self.expression.data or "",
            "severity": self.severity.data,
            "actions": self.actions(),
            "enabled": bool(self.enabled.data),
        }

    def fill(self, rule: AlertRule) -> None:
        self.name.data = rule.name
        self.expression.data = rule.expression
        self.severity.data = rule.severity
        self.enabled.data = rule.enabled
        for action in rule.actions or []:
            kind = action.get("type")
            if kind == "task":
                self.task.data, self.due_days.data = True, action.get("due_days", 2)
            elif kind == "notify":
                self.notify_roles.data = list(action.get("roles") or [])
            elif kind == "tag":
                self.tag.data = action.get("tag")
            elif kind == "channel":
                self.channel.data = action.get("channel")


# --- alerts --------------------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    status = request.args.get("status", "open")
    severity = request.args.get("severity") or None
    return {
        "channel": (request.args.get("channel") or "").strip()[:64] or None,
        "severity": severity if severity in playbooks.SEVERITIES else None,
        "status": status if status in playbooks.ALERT_STATUSES else "open",
    }


def _alert_page(filters: dict[str, Any], *, channel_view: bool = False) -> str:
    user = require_cs(_user())
    page, _size = clamp_page_args(request.args.get("page", 1))
    rows, total = playbooks.list_alerts(db.session, user, page=page, per_page=PER_PAGE, **filters)
    return render_template(
        "cs/alerts.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        filters=filters,
        channel_view=channel_view,
        channels=playbooks.channels(db.session, user),
        severities=SEVERITY_LABELS,
        can_close=_can(Action.MANAGE_CS),
    )


def _can(action: Action) -> bool:
    return can(current_user, action)


@bp.route("/alerts")
@login_required
def alerts() -> str:
    return _alert_page(_filters())


@bp.route("/alerts/channels/<channel>")
@login_required
def alert_channel(channel: str) -> str:
    filters = {**_filters(), "channel": channel[:64]}
    return _alert_page(filters, channel_view=True)


@bp.route("/alerts.csv")
@login_required
def alerts_csv() -> Response:
    user = require_cs(_user())
    rows = playbooks.export_alerts(db.session, user, **_filters())
    header = [_("Alert"), _("Account"), _("Rule"), _("Severity"), _("Channel"), _("Day"),
              _("Status"), _("Opened"), _("Closed"), _("Metrics")]  # fmt: skip
    return csv_response(
        "alerts.csv",
        header,
        (
            [
                r.alert.id,
                r.account,
                r.rule_name,
                r.alert.severity,
                r.alert.channel,
                r.alert.day,
                r.alert.status,
                r.alert.created_at,
                r.alert.closed_at,
                "; ".join(
                    f"{k}={v}" for k, v in sorted((r.alert.details.get("metrics") or {}).items())
                ),
            ]
            for r in rows
        ),
    )


@bp.route("/alerts/<int:alert_id>/close", methods=["POST"])
@login_required
def close_alert(alert_id: int) -> Response:
    require_cs(_user(), Action.MANAGE_CS)
    perform(
        lambda: playbooks.close_alert(db.session, _user(), alert_id),
        _("The alert is closed."),
    )
    target = request.form.get("next")
    return redirect(target if is_safe_next(target) else url_for("cs.alerts"))


# --- rules ---------------------------------------------------------------------------------


@bp.route("/rules")
@login_required
def rules() -> str:
    user = require_cs(_user())
    return render_template(
        "cs/rules.html",
        overview=playbooks.rule_overview(db.session, user),
        display_name=playbooks.display_name,
        severities=SEVERITY_LABELS,
        can_configure=_can(Action.CONFIGURE_CS),
    )


@bp.route("/rules/<int:rule_id>")
@login_required
def rule(rule_id: int) -> str:
    user = require_cs(_user())
    page, _size = clamp_page_args(request.args.get("page", 1))
    found, firings, total = playbooks.rule_firings(
        db.session, user, rule_id, page=page, per_page=PER_PAGE
    )
    return render_template(
        "cs/rules_history.html",
        rule=found,
        rule_name=playbooks.display_name(found),
        firings=firings,
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        severities=SEVERITY_LABELS,
        actions=RULE_ACTIONS,
        can_configure=_can(Action.CONFIGURE_CS),
        recompute=imports.recompute_state(user),
    )


def _rule_form(rule: AlertRule | None) -> Any:
    user = require_cs(_user(), Action.CONFIGURE_CS)
    form = RuleForm()
    accounts = playbooks.preview_accounts(db.session, user)
    form.preview_account.choices = _choices(accounts)
    if request.method == "GET" and rule is not None:
        form.fill(rule)
    preview: dict[str, Any] | None = None
    if request.method == "POST" and form.preview.data:
        preview = _preview(form)
    else:
        saved: list[AlertRule] = []

        def save() -> None:
            if rule is None:
                saved.append(playbooks.create_rule(db.session, user, **form.values()))
            else:
                saved.append(playbooks.update_rule(db.session, user, rule.id, **form.values()))

        if submit(form, save):
            return redirect(url_for("cs.rule", rule_id=saved[0].id))
    return render_form(
        "cs/rules_form.html",
        form,
        rule=rule,
        catalog=playbooks.CATALOG,
        preview=preview,
        accounts=accounts,
    )


def _preview(form: RuleForm) -> dict[str, Any] | None:
    """Evaluate the unsaved expression for one account; nothing is written. Only the fields
    a preview reads are checked (CSRFProtect has already checked the token)."""
    org_id = form.preview_account.data
    if not isinstance(org_id, int):
        attach_error(form, DomainError(_("Choose an account."), field="preview_account"))
        return None
    try:
        return playbooks.preview_rule(db.session, _user(), form.expression.data or "", org_id)
    except DomainError as error:
        db.session.rollback()
        if error.field != "expression":
            error.field = "preview_account"
        attach_error(form, error)
        return None


@bp.route("/rules/new", methods=["GET", "POST"])
@login_required
def new_rule() -> Any:
    return _rule_form(None)


@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@login_required
def edit_rule(rule_id: int) -> Any:
    require_cs(_user(), Action.CONFIGURE_CS)
    return _rule_form(playbooks.get_rule(db.session, rule_id))


@bp.route("/rules/<int:rule_id>/enabled", methods=["POST"])
@login_required
def toggle_rule(rule_id: int) -> Response:
    require_cs(_user(), Action.CONFIGURE_CS)
    enable = request.form.get("enabled") == "1"
    perform(
        lambda: playbooks.set_rule_enabled(db.session, _user(), rule_id, enable),
        _("The rule is enabled.") if enable else _("The rule is disabled."),
    )
    return redirect(url_for("cs.rules"))


@bp.route("/rules/<int:rule_id>/delete", methods=["POST"])
@login_required
def delete_rule(rule_id: int) -> Response:
    require_cs(_user(), Action.CONFIGURE_CS)
    perform(
        lambda: playbooks.delete_rule(db.session, _user(), rule_id),
        _("The rule is deleted."),
    )
    return redirect(url_for("cs.rules"))
