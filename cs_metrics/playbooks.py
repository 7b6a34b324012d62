"""Alert rules and playbooks: staff-editable rules over account metrics, and what they do.

A rule is an expression in the safe language of ``cs_metrics.expressions`` over the metric
catalog below, with a severity and a list of actions (JSON on ``AlertRule.actions``)::

    {"type": "task", "due_days": 2}          a CSM task (kind ALERT) for the account's CSM
    {"type": "notify", "roles": ["csm"]}     an in-app notification ("csm", "vendor_admins")
    {"type": "tag", "tag": "at-risk"}        an account tag (source "rule:<id>")
    {"type": "channel", "channel": "legal"}  the alert is routed to this channel

``evaluate_rules`` runs after the nightly recompute. For each enabled rule and account where
the expression is true it opens a ``HealthAlert`` of kind ``rule:<id>`` unless one is already
open for that account, runs the actions and writes an ``AlertFiring`` audit row.

When is it a new firing?
    A condition that is still true on a later day while the alert is open is *not* a new
    firing: no audit row, no second task or notification (a CSM would otherwise get the same
    task every night). Once the alert is closed, the next evaluation that finds the condition
    true fires again. The open-alert uniqueness is also a partial unique index in the database.

Metrics are computed in SQL, one grouped query per signal for all accounts
(:func:`account_metrics`); a metric an account has no data for is ``None`` and never fires.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import has_app_context
from flask_babel import force_locale, lazy_ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, distinct, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from cs_metrics import expressions, signals
from cs_metrics.access import book_filter, require_account, require_cs
from cs_metrics.models import (
    AccountProfile,
    AccountTag,
    AlertFiring,
    AlertRule,
    AlertStatus,
    CsTask,
    HealthAlert,
    HealthSnapshot,
    NpsResponse,
    TaskKind,
    TaskStatus,
    Ticket,
)
from cs_metrics.nps import classify
from portal.core.activity import VERBS as ACTIVITY_VERBS
from portal.core.activity import Activity
from portal.core.bulk import bulk_insert
from portal.core.db import utcnow
from portal.core.errors import DomainError, NotFound
from portal.core.identity import Organization, OrgKind, Role, User, UserRole
from portal.core.notifications import Notification
from portal.core.permissions import Action

MONTH_DAYS = 30
RATING_DAYS = 90
IDEAS_DAYS = 90
HEALTH_WINDOW_DAYS = 30
QUESTION_ASKED = "question.asked"
IDEA_VOTED = "idea.voted"

SEVERITIES = ("info", "warning", "critical")
NOTIFY_ROLES = ("csm", "vendor_admins")
ACTION_TYPES = ("task", "notify", "tag", "channel")
MAX_ACTIONS = 10
MAX_DUE_DAYS = 365
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

Metrics = dict[str, expressions.Value]


# --------------------------------------------------------------------------------------------
# The metric catalog
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    name: str
    type: str  # "number", "text" or "bool" (see cs_metrics.expressions)
    unit: Any  # a lazy string ("" for none)
    description: Any


_POINTS, _DAYS, _MONEY, _COUNT = _l("points"), _l("days"), _l("currency"), _l("count")

CATALOG: tuple[MetricInfo, ...] = (
    MetricInfo("health_score", "number", _POINTS,
               _l("Computed health score on the day (0-100, before any override).")),
    MetricInfo("health_band", "text", "", _l('Health band: "green", "yellow" or "red".')),
    MetricInfo("previous_band", "text", "", _l("Health band of the previous snapshot.")),
    MetricInfo("band_changed", "bool", "",
               _l("The health band differs from the previous snapshot's.")),
    MetricInfo("health_drop_30d", "number", _POINTS,
               _l("Points below the highest score of the preceding 30 days (0 if none).")),
    MetricInfo("usage_m0", "number", _l("usage units"), _l("Usage total of the last 30 days.")),
    MetricInfo("usage_m1", "number", _l("usage units"), _l("Usage total of the 30 days before.")),
    MetricInfo("usage_m2", "number", _l("usage units"),
               _l("Usage total of the 30 days before that.")),
    MetricInfo("usage_down_two_months", "bool", "",
               _l("Usage fell two months in a row (usage_m2 > usage_m1 > usage_m0).")),
    MetricInfo("orders_m0", "number", _COUNT, _l("Orders (invoices) dated in the last 30 days.")),
    MetricInfo("orders_m1", "number", _COUNT, _l("Orders dated in the 30 days before.")),
    MetricInfo("orders_m2", "number", _COUNT, _l("Orders dated in the 30 days before that.")),
    MetricInfo("purchases_down_two_months", "bool", "",
               _l("Purchase frequency fell two months in a row (orders_m2 > orders_m1 > "
                  "orders_m0).")),
    MetricInfo("max_days_overdue", "number", _DAYS,
               _l("Days since the oldest unpaid invoice fell due (0: nothing overdue).")),
    MetricInfo("months_since_last_order", "number", _l("months"),
               _l("Months (of 30 days) since the latest order.")),
    MetricInfo("largest_order_90d", "number", _MONEY,
               _l("Largest order amount of the last 90 days (0 if none).")),
    MetricInfo("avg_rating_90d", "number", _l("stars"),
               _l("Mean support rating (CSAT, 1-5 stars) of tickets opened in 90 days.")),
    MetricInfo("nps_last_score", "number", _l("0-10"), _l("Latest NPS answer of the account.")),
    MetricInfo("nps_category", "text", "",
               _l('Category of the latest NPS answer: "promoter", "passive" or "detractor".')),
    MetricInfo("open_questions", "number", _COUNT,
               _l("Open questions of the account's members: not answered, closed or refused.")),
    MetricInfo("ideas_voted", "number", _COUNT,
               _l("Idea votes by the account's members in the last 90 days.")),
    MetricInfo("arr", "number", _MONEY, _l("Annual recurring revenue.")),
    MetricInfo("days_to_renewal", "number", _DAYS,
               _l("Days until the renewal date (negative once it has passed).")),
)  # fmt: skip
METRIC_TYPES: dict[str, str] = {m.name: m.type for m in CATALOG}


# --------------------------------------------------------------------------------------------
# Metrics in SQL
# --------------------------------------------------------------------------------------------


def _down_two(m0: Any, m1: Any, m2: Any) -> bool | None:
    if m0 is None or m1 is None or m2 is None:
        return None
    return bool(m2 > m1 > m0)


def _orgs_where(column: Any, org_ids: set[int] | None) -> Any:
    return column.in_(org_ids) if org_ids is not None else true()


IN_LIST_MAX = 500  # above this many accounts, read them all: a long IN list costs more


def _some_orgs(column: Any, org_ids: set[int]) -> Any:
    return column.in_(org_ids) if len(org_ids) <= IN_LIST_MAX else true()


def account_metrics(
    session: Session,
    day: date,
    org_ids: Iterable[int] | None = None,
    *,
    collected: signals.Signals | None = None,
    scores: Mapping[int, tuple[float | None, str | None]] | None = None,
) -> dict[int, Metrics]:
    """Every catalog metric of every customer account (or of ``org_ids``) on ``day``.

    For the nightly recompute, which has them at hand for every account: ``collected``, the
    day's health signals (their usage months and overdue days are reused, not read again), and
    ``scores``, the computed (score, band) it has just stored as the day's snapshots."""
    ids = None if org_ids is None else set(org_ids)
    if ids is not None:
        collected = scores = None  # they cover every account; a preview reads its one account
    out: dict[int, Metrics] = {}
    for org_id, arr, renewal in session.execute(
        select(Organization.id, AccountProfile.arr, AccountProfile.renewal_date)
        .outerjoin(AccountProfile, AccountProfile.organization_id == Organization.id)
        .where(Organization.kind == OrgKind.CUSTOMER, _orgs_where(Organization.id, ids))
    ):
        metrics: Metrics = dict.fromkeys(METRIC_TYPES)
        metrics["arr"] = float(arr) if arr is not None else None
        metrics["days_to_renewal"] = float((renewal - day).days) if renewal else None
        metrics["open_questions"] = 0.0
        metrics["ideas_voted"] = 0.0
        out[org_id] = metrics
    if not out:
        return out
    _health_metrics(session, day, out, ids, scores)
    _usage_metrics(session, day, out, ids, collected)
    _order_metrics(session, day, out, ids, collected)
    _rating_metrics(session, day, out, ids, collected)
    _nps_metrics(session, day, out, ids)
    _community_metrics(session, day, out, ids)
    return out


def _health_metrics(
    session: Session,
    day: date,
    out: dict[int, Metrics],
    ids: set[int] | None,
    scores: Mapping[int, tuple[float | None, str | None]] | None,
) -> None:
    """Computed scores of the last 31 days (an override must not hide a falling account).

    In SQL, one grouped pass over the month's earlier snapshots (the best score and the
    newest day per account), then the band of that newest day through the (account, day)
    index: a month of nightly snapshots is 31 rows per account, too many to carry into Python
    every night, and a window over them sorted all of them (2.4x slower at 10,000 accounts on
    PostgreSQL). With ``scores`` (the day's, just computed) the day's own snapshots are not
    read."""
    earlier_days = (
        select(
            HealthSnapshot.organization_id.label("org_id"),
            func.max(HealthSnapshot.score).label("top"),
            func.max(HealthSnapshot.day).label("newest"),
        )
        .where(
            HealthSnapshot.day >= day - timedelta(days=HEALTH_WINDOW_DAYS),
            HealthSnapshot.day < day,
            HealthSnapshot.score.is_not(None),
            _orgs_where(HealthSnapshot.organization_id, ids),
        )
        .group_by(HealthSnapshot.organization_id)
        .subquery()
    )
    newest = aliased(HealthSnapshot)
    newest_band = (
        select(newest.band)
        .where(
            newest.organization_id == earlier_days.c.org_id,
            newest.day == earlier_days.c.newest,
        )
        .scalar_subquery()
    )
    earlier: dict[int, tuple[Any, Any]] = {  # org -> (best earlier score, newest earlier band)
        org_id: (top, band)
        for org_id, top, band in session.execute(
            select(earlier_days.c.org_id, earlier_days.c.top, newest_band)
        )
    }
    today: dict[int, tuple[float | None, str | None]] = {}
    if scores is None:
        today = {
            org_id: (score, band)
            for org_id, score, band in session.execute(
                select(
                    HealthSnapshot.organization_id, HealthSnapshot.score, HealthSnapshot.band
                ).where(
                    HealthSnapshot.day == day,
                    HealthSnapshot.score.is_not(None),
                    _orgs_where(HealthSnapshot.organization_id, ids),
                )
            )
        }
    for org_id, (score, band) in (scores if scores is not None else today).items():
        metrics = out.get(org_id)
        if metrics is None or score is None:
            continue  # no score on the day: nothing to judge
        metrics["health_score"] = float(score)
        metrics["health_band"] = band
        top, previous_band = earlier.get(org_id, (None, None))
        if top is not None:
            metrics["previous_band"] = previous_band
            metrics["band_changed"] = previous_band != band
            metrics["health_drop_30d"] = max(0.0, float(top) - float(score))
        else:
            metrics["health_drop_30d"] = 0.0


def _usage_metrics(
    session: Session,
    day: date,
    out: dict[int, Metrics],
    ids: set[int] | None,
    collected: signals.Signals | None,
) -> None:
    months = (
        collected.usage_months if collected is not None else signals.usage_months(session, day, ids)
    )
    for org_id, values in months.items():
        metrics = out.get(org_id)
        if metrics is None:
            continue
        metrics["usage_m0"], metrics["usage_m1"], metrics["usage_m2"] = values
        metrics["usage_down_two_months"] = _down_two(*values)


def _order_metrics(
    session: Session,
    day: date,
    out: dict[int, Metrics],
    ids: set[int] | None,
    collected: signals.Signals | None,
) -> None:
    """Orders are invoices (by order date); overdue days as the health signal counts them."""
    facts = (
        collected.invoices if collected is not None else signals.invoice_facts(session, day, ids)
    )
    for org_id, f in facts.items():
        metrics = out.get(org_id)
        if metrics is None:
            continue
        metrics["orders_m0"], metrics["orders_m1"], metrics["orders_m2"] = f.order_months
        metrics["purchases_down_two_months"] = _down_two(*f.order_months)
        metrics["largest_order_90d"] = f.largest_recent if f.largest_recent is not None else 0.0
        if f.last_order is not None:
            metrics["months_since_last_order"] = round((day - f.last_order).days / MONTH_DAYS, 2)
        metrics["max_days_overdue"] = f.days_overdue


def _rating_metrics(
    session: Session,
    day: date,
    out: dict[int, Metrics],
    ids: set[int] | None,
    collected: signals.Signals | None,
) -> None:
    if collected is not None:
        for org_id, mean in collected.mean_ratings.items():
            if org_id in out:
                out[org_id]["avg_rating_90d"] = mean
        return
    end = signals.day_end(day)
    for org_id, mean in session.execute(
        select(Ticket.organization_id, func.avg(Ticket.csat))
        .where(
            Ticket.csat.is_not(None),
            Ticket.opened_at >= end - timedelta(days=RATING_DAYS),
            Ticket.opened_at < end,
            _orgs_where(Ticket.organization_id, ids),
        )
        .group_by(Ticket.organization_id)
    ):
        if org_id in out and mean is not None:
            out[org_id]["avg_rating_90d"] = round(float(mean), 4)


def _nps_metrics(
    session: Session, day: date, out: dict[int, Metrics], ids: set[int] | None
) -> None:
    end = signals.day_end(day)
    ranked = (
        select(
            NpsResponse.organization_id.label("org_id"),
            NpsResponse.score.label("score"),
            func.row_number()
            .over(
                partition_by=NpsResponse.organization_id,
                order_by=(NpsResponse.responded_at.desc(), NpsResponse.id.desc()),
            )
            .label("rank"),
        )
        .where(NpsResponse.responded_at < end, _orgs_where(NpsResponse.organization_id, ids))
        .subquery()
    )
    for org_id, score in session.execute(
        select(ranked.c.org_id, ranked.c.score).where(ranked.c.rank == 1)
    ):
        if org_id in out and score is not None and 0 <= score <= 10:
            out[org_id]["nps_last_score"] = float(score)
            out[org_id]["nps_category"] = classify(int(score)).value


def _community_metrics(
    session: Session, day: date, out: dict[int, Metrics], ids: set[int] | None
) -> None:
    """From the activity log, counting the account's own members (not staff acting on it).

    A question is open until ``signals.settled_questions`` counts it settled (answered, closed,
    refused by moderation); un-accepting an answer records no activity, so such a question
    stays counted as answered."""
    end = signals.day_end(day)
    members = and_(
        User.organization_id == Activity.organization_id,
        _orgs_where(Activity.organization_id, ids),
    )
    for org_id, n in session.execute(
        select(Activity.organization_id, func.count(distinct(Activity.subject_id)))
        .join(User, User.id == Activity.actor_id)
        .where(
            members,
            Activity.verb == QUESTION_ASKED,
            Activity.occurred_at < end,
            Activity.subject_id.is_not(None),
            Activity.subject_id.not_in(signals.settled_questions(end)),
        )
        .group_by(Activity.organization_id)
    ):
        if org_id in out:
            out[org_id]["open_questions"] = float(n)
    for org_id, n in session.execute(
        select(Activity.organization_id, func.count())
        .join(User, User.id == Activity.actor_id)
        .where(
            members,
            Activity.verb == IDEA_VOTED,
            Activity.occurred_at >= end - timedelta(days=IDEAS_DAYS),
            Activity.occurred_at < end,
        )
        .group_by(Activity.organization_id)
    ):
        if org_id in out:
            out[org_id]["ideas_voted"] = float(n)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_EXPRESSION_MESSAGES: dict[str, Any] = {
    "empty": _l("Write an expression."),
    "too_long": _l("The expression is too long."),
    "too_deep": _l("The expression nests too deeply (at character %(position)s)."),
    "bad_number": _l("Not a number at character %(position)s."),
    "unterminated_string": _l("A quoted text is not closed (at character %(position)s)."),
    "use_instead": _l('Write "%(instead)s" instead of "%(found)s" (at character %(position)s).'),
    "bad_character": _l('Unexpected character "%(found)s" at character %(position)s.'),
    "unexpected": _l('Unexpected "%(found)s" at character %(position)s.'),
    "unexpected_end": _l("The expression ends too early (at character %(position)s)."),
    "unclosed_parenthesis": _l("A parenthesis is not closed (at character %(position)s)."),
    "chained_comparison": _l(
        "Comparisons do not chain: join them with “and” (at character %(position)s)."
    ),
    "unknown_function": _l(
        'Unknown function "%(name)s" at character %(position)s: use abs, min or max.'
    ),
    "bad_arguments": _l('Wrong number of values for "%(name)s" at character %(position)s.'),
    "unknown_metric": _l('Unknown metric "%(name)s" at character %(position)s.'),
    "type_mismatch": _l(
        "%(operator)s needs %(wanted)s, not %(found)s (at character %(position)s)."
    ),
    "not_a_condition": _l(
        "The condition must be true or false, not %(found)s (at character %(position)s)."
    ),
}
_TYPE_WORDS: dict[str, Any] = {
    "number": _l("a number"),
    "text": _l("a text"),
    "bool": _l("true or false"),
    "any": _l("a value"),
}


def expression_message(error: expressions.ExpressionError) -> str:
    """The parser's error in the reader's language (the parser itself only speaks codes)."""
    code = error.code
    params = {k: v for k, v in error.params.items() if isinstance(v, str | int)}
    if code == "type_mismatch":
        params["wanted"] = str(_TYPE_WORDS.get(params.get("wanted", "any"), ""))
        params["found"] = str(_TYPE_WORDS.get(params.get("found", "any"), ""))
        if params.get("operator") == "rule":
            code = "not_a_condition"
    template = _EXPRESSION_MESSAGES.get(code)
    if template is None:
        return error.message
    for key in ("found", "name", "instead", "operator", "wanted"):
        params.setdefault(key, "")
    text = str(template) % {**params, "position": error.position + 1}
    if error.code == "unknown_metric" and error.params.get("suggestion"):
        text += " " + str(_l('Did you mean "%(name)s"?', name=error.params["suggestion"]))
    return text


def parse_expression(text: str) -> expressions.Expr:
    """The rule expression's tree; a DomainError on field ``expression`` otherwise."""
    try:
        return expressions.parse(text, METRIC_TYPES)
    except expressions.ExpressionError as error:
        raise DomainError(expression_message(error), field="expression") from error


def _slug(value: Any, field: str) -> str:
    text = str(value or "").strip().lower()
    if not _SLUG.match(text):
        raise DomainError(
            str(_l("Use 1 to 40 lowercase letters, digits, - or _, starting with a letter or "
                   "digit.")),
            field=field,
        )  # fmt: skip
    return text


def validate_actions(actions: Any) -> list[dict[str, Any]]:
    """The actions, cleaned; a DomainError naming the field (``due_days``, ``notify_roles``,
    ``tag``, ``channel`` or ``actions``) otherwise."""
    if not isinstance(actions, list | tuple) or len(actions) > MAX_ACTIONS:
        raise DomainError(str(_l("Give at most %(n)s actions.", n=MAX_ACTIONS)), field="actions")
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for action in actions:
        kind = action.get("type") if isinstance(action, Mapping) else None
        if kind not in ACTION_TYPES:
            raise DomainError(str(_l("Unknown action.")), field="actions")
        if kind in seen and kind in ("task", "channel", "notify"):
            raise DomainError(str(_l("Give each kind of action once.")), field="actions")
        seen.add(kind)
        if kind == "task":
            due = action.get("due_days", 2)
            if isinstance(due, bool) or not isinstance(due, int) or not 0 <= due <= MAX_DUE_DAYS:
                raise DomainError(
                    str(_l("Give a number of days from 0 to %(n)s.", n=MAX_DUE_DAYS)),
                    field="due_days",
                )
            clean.append({"type": "task", "due_days": due})
        elif kind == "notify":
            roles = action.get("roles")
            if (
                not isinstance(roles, list | tuple)
                or not roles
                or any(r not in NOTIFY_ROLES for r in roles)
            ):
                raise DomainError(str(_l("Choose whom to notify.")), field="notify_roles")
            clean.append({"type": "notify", "roles": sorted(set(roles))})
        elif kind == "tag":
            clean.append({"type": "tag", "tag": _slug(action.get("tag"), "tag")})
        else:
            clean.append({"type": "channel", "channel": _slug(action.get("channel"), "channel")})
    return clean


def _validated(
    name: Any, expression: Any, severity: Any, actions: Any
) -> tuple[str, str, str, list[dict[str, Any]]]:
    name = str(name or "").strip()
    if not name:
        raise DomainError(str(_l("Give the rule a name.")), field="name")
    if len(name) > 200:
        raise DomainError(str(_l("Use at most %(max)d characters.", max=200)), field="name")
    expression = str(expression or "").strip()
    parse_expression(expression)
    if severity not in SEVERITIES:
        raise DomainError(str(_l("Unknown severity.")), field="severity")
    return name, expression, severity, validate_actions(actions)


# --------------------------------------------------------------------------------------------
# Rules CRUD
# --------------------------------------------------------------------------------------------


def _require_configure(actor: User | None) -> User:
    return require_cs(actor, Action.CONFIGURE_CS)


def get_rule(session: Session, rule_id: int) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(str(_l("No such alert rule.")))
    return rule


def rules(session: Session) -> list[AlertRule]:
    return list(session.scalars(select(AlertRule).order_by(AlertRule.id)))


def create_rule(
    session: Session,
    actor: User | None,
    *,
    name: str,
    expression: str,
    severity: str = "warning",
    actions: Sequence[Mapping[str, Any]] = (),
    enabled: bool = True,
) -> AlertRule:
    staff = _require_configure(actor)
    name, expression, severity, clean = _validated(name, expression, severity, list(actions))
    rule = AlertRule(
        name=name,
        expression=expression,
        severity=severity,
        actions=clean,
        enabled=bool(enabled),
        created_by_id=staff.id,
    )
    session.add(rule)
    session.flush()
    return rule


def update_rule(
    session: Session,
    actor: User | None,
    rule_id: int,
    *,
    name: str,
    expression: str,
    severity: str,
    actions: Sequence[Mapping[str, Any]],
    enabled: bool,
) -> AlertRule:
    """Change a rule; its open alerts stay open (closing them is the CSM's decision)."""
    _require_configure(actor)
    rule = get_rule(session, rule_id)
    rule.name, rule.expression, rule.severity, rule.actions = _validated(
        name, expression, severity, list(actions)
    )
    rule.enabled = bool(enabled)
    session.flush()
    return rule


def set_rule_enabled(
    session: Session, actor: User | None, rule_id: int, enabled: bool
) -> AlertRule:
    _require_configure(actor)
    rule = get_rule(session, rule_id)
    rule.enabled = bool(enabled)
    session.flush()
    return rule


def delete_rule(session: Session, actor: User | None, rule_id: int) -> None:
    """Delete a custom rule and close its open alerts (nothing can fire them any more); the
    firing history stays. A shipped default is only disabled: seeding would bring it back."""
    _require_configure(actor)
    rule = get_rule(session, rule_id)
    if rule.key is not None:
        raise DomainError(
            str(_l("A default rule cannot be deleted; disable it instead.")), field="rule"
        )
    now = utcnow()
    for alert in session.scalars(
        select(HealthAlert).where(
            HealthAlert.kind == rule_kind(rule.id), HealthAlert.status == AlertStatus.OPEN
        )
    ):
        alert.status, alert.closed_at = AlertStatus.CLOSED, now
    session.delete(rule)
    session.flush()


# --------------------------------------------------------------------------------------------
# Default rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultRule:
    key: str
    name: Any  # lazy: stored in English, shown translated while unchanged
    expression: str
    severity: str
    actions: tuple[dict[str, Any], ...]


DEFAULT_RULES: tuple[DefaultRule, ...] = (
    DefaultRule(
        "usage_or_purchases_down",
        _l("Usage or purchases down two months in a row"),
        "usage_down_two_months or purchases_down_two_months",
        "warning",
        ({"type": "task", "due_days": 5}, {"type": "notify", "roles": ["csm"]},
         {"type": "tag", "tag": "at-risk"}),
    ),
    DefaultRule(
        "overdue_no_orders",
        _l("Invoice overdue over 30 days and no order in 3 months"),
        "max_days_overdue > 30 and months_since_last_order >= 3",
        "critical",
        ({"type": "channel", "channel": "legal"}, {"type": "notify", "roles": ["csm"]},
         {"type": "tag", "tag": "legal-escalation"}),
    ),
    DefaultRule(
        "big_order_low_rating",
        _l("Order over 500,000 with a rating below 4 stars"),
        "largest_order_90d > 500000 and avg_rating_90d < 4",
        "critical",
        ({"type": "channel", "channel": "vip"}, {"type": "task", "due_days": 1},
         {"type": "notify", "roles": ["csm", "vendor_admins"]}),
    ),
    DefaultRule(
        "health_change",
        _l("Health band change or a 15-point drop"),
        "band_changed or health_drop_30d >= 15",
        "warning",
        ({"type": "task", "due_days": 2}, {"type": "notify", "roles": ["csm"]}),
    ),
    DefaultRule(
        "engaged_detractor",
        _l("Detractor with open questions or idea votes"),
        'nps_category == "detractor" and (open_questions > 0 or ideas_voted > 0)',
        "warning",
        ({"type": "task", "due_days": 2}, {"type": "tag", "tag": "detractor"}),
    ),
)  # fmt: skip
_DEFAULTS_BY_KEY = {d.key: d for d in DEFAULT_RULES}


def _english(text: Any) -> str:
    """The msgid of a lazy string (what is stored, whatever the seeding request's language)."""
    args = getattr(text, "_args", None)
    return str(args[0]) if args else str(text)


def display_name(rule: AlertRule) -> str:
    """A shipped rule's name in the reader's language while staff have not renamed it."""
    default = _DEFAULTS_BY_KEY.get(rule.key or "")
    if default is not None and rule.name == _english(default.name):
        return str(default.name)
    return rule.name


def display_label(name: str) -> str:
    """A rule name as stored earlier (in a task's title) in the reader's language when it is a
    shipped rule's English name; any other name as it is."""
    for default in DEFAULT_RULES:
        if name == _english(default.name):
            return str(default.name)
    return name


def ensure_default_rules(session: Session) -> int:
    """Add the shipped rules that are missing (by ``key``); never changes edited ones."""
    have = set(session.scalars(select(AlertRule.key).where(AlertRule.key.is_not(None))))
    added = 0
    for default in DEFAULT_RULES:
        if default.key in have:
            continue
        try:
            with session.begin_nested():  # two first recomputes at once seed the same key
                session.add(
                    AlertRule(
                        key=default.key,
                        name=_english(default.name),
                        expression=default.expression,
                        severity=default.severity,
                        actions=[dict(a) for a in default.actions],
                        enabled=True,
                    )
                )
        except IntegrityError:
            continue  # the other one added it (uq_cs_alert_rules_key)
        added += 1
    return added


# --------------------------------------------------------------------------------------------
# Evaluation and actions
# --------------------------------------------------------------------------------------------


def rule_kind(rule_id: int) -> str:
    return f"rule:{rule_id}"


def _json_value(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def preview_rule(
    session: Session, actor: User | None, expression: str, org_id: int, day: date | None = None
) -> dict[str, Any]:
    """What a rule would say about one account: its metrics and whether it fires, as of the
    last recompute (the day of the newest snapshot; today before the first one)."""
    require_account(session, actor, org_id)
    expr = parse_expression(str(expression or "").strip())
    if day is None:
        day = (
            signals.as_date(session.scalar(select(func.max(HealthSnapshot.day)))) or utcnow().date()
        )
    metrics = account_metrics(session, day, [org_id]).get(org_id, {})
    used = expressions.metric_names(expr)
    return {
        "day": day,
        "fires": expressions.evaluate(expr, metrics),
        "metrics": metrics,
        "used": used,
    }


def _alerts_link() -> str | None:
    if not has_app_context():
        return None
    from portal.core.urls import external_url

    return external_url("cs.alerts")


def _channel(rule: AlertRule) -> str | None:
    return next((a.get("channel") for a in rule.actions or [] if a.get("type") == "channel"), None)


@dataclass
class _Person:
    id: int
    locale: str | None
    active: bool


def _people(
    session: Session, csm_ids: set[int], admins: bool
) -> tuple[dict[int, _Person], list[_Person]]:
    """The accounts' CSMs by id, and the active vendor admins (only when a rule notifies them)."""
    csms = {
        uid: _Person(uid, locale, bool(active))
        for uid, locale, active in session.execute(
            select(User.id, User.locale, User.active).where(User.id.in_(csm_ids))
        )
    } if csm_ids else {}  # fmt: skip
    admin_list: list[_Person] = []
    if admins:
        admin_list = [
            _Person(uid, locale, True)
            for uid, locale in session.execute(
                select(User.id, User.locale)
                .join(UserRole, UserRole.user_id == User.id)
                .join(Organization, Organization.id == User.organization_id)
                .where(
                    UserRole.role == Role.VENDOR_ADMIN,
                    User.active.is_(True),
                    Organization.kind == OrgKind.VENDOR,
                )
                .order_by(User.id)
                .distinct()
            )
        ]
    return csms, admin_list


# Accounts a notification names before "…" when one rule fires for several at once.
NAMED_ACCOUNTS = 3


def _notification_rows(
    pending: list[tuple[_Person, str, str]], link: str | None
) -> list[dict[str, Any]]:
    """Notification rows as ``notify`` writes them (message in the recipient's language).

    One notification per person and rule per run, naming the account, or for several the
    count and the first ``NAMED_ACCOUNTS``: the first run after an import fired one rule for
    more than half of the accounts, and a CSM got a bell of hundreds of near-identical lines,
    all linking to the same alert list. (So the messages are as few as people times rules,
    and each is translated on its own.)"""
    accounts: dict[tuple[int, str | None, str], list[str]] = defaultdict(list)
    for person, rule_name, account in pending:
        accounts[person.id, person.locale, rule_name].append(account)
    rows: list[dict[str, Any]] = []
    for (user_id, locale, rule_name), names in accounts.items():
        with force_locale(locale):
            if len(names) == 1:
                message = str(
                    _l("Alert “%(rule)s” for %(account)s", rule=rule_name, account=names[0])
                )
            else:
                named = ", ".join(names[:NAMED_ACCOUNTS])
                message = str(
                    lazy_ngettext(
                        "Alert “%(rule)s” for %(num)d account: %(accounts)s",
                        "Alert “%(rule)s” for %(num)d accounts: %(accounts)s",
                        len(names),
                        rule=rule_name,
                        accounts=named + ("…" if len(names) > NAMED_ACCOUNTS else ""),
                    )
                )
        rows.append(
            {"user_id": user_id, "kind": "cs_alert", "message": message[:500], "link": link}
        )
    return rows


def evaluate_rules(
    session: Session,
    day: date,
    *,
    now: datetime | None = None,
    collected: signals.Signals | None = None,
    scores: Mapping[int, tuple[float | None, str | None]] | None = None,
) -> int:
    """Run every enabled rule over every account for ``day``; the number of alerts opened.

    A rule whose stored expression no longer parses (the catalog changed) is skipped.
    ``collected`` and ``scores``: what the nightly recompute has at hand already (see
    ``account_metrics``), so it reads the big tables once per run, not twice."""
    now = now or utcnow()
    parsed: list[tuple[AlertRule, expressions.Expr]] = []
    for rule in session.scalars(
        select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    ):
        try:
            parsed.append((rule, expressions.parse(rule.expression, METRIC_TYPES)))
        except expressions.ExpressionError:
            continue
    if not parsed:
        return 0
    metrics = account_metrics(session, day, collected=collected, scores=scores)
    ordered = sorted(metrics.items())
    fired: list[tuple[AlertRule, expressions.Expr, int]] = []
    for rule, expr in parsed:
        fires = expressions.compile_rule(expr)
        fired.extend((rule, expr, org_id) for org_id, seen in ordered if fires(seen))
    if not fired:
        return 0
    open_now: set[tuple[int, str]] = set(
        session.execute(
            select(HealthAlert.organization_id, HealthAlert.kind).where(
                HealthAlert.status == AlertStatus.OPEN,
                HealthAlert.kind.in_({rule_kind(r.id) for r, _ in parsed}),
            )
        ).all()
    )
    new = [(r, e, o) for r, e, o in fired if (o, rule_kind(r.id)) not in open_now]
    if not new:
        return 0
    return _open_alerts(session, day, now, new, metrics)


def _open_alerts(
    session: Session,
    day: date,
    now: datetime,
    new: list[tuple[AlertRule, expressions.Expr, int]],
    metrics: dict[int, Metrics],
) -> int:
    """Open the alerts of ``new`` firings and run their actions, writing each table's rows in
    bulk; what each firing did is its ``AlertFiring.actions`` (task ids filled in once the
    tasks exist)."""
    if "cs.alert_raised" not in ACTIVITY_VERBS:
        raise ValueError("unknown activity verb 'cs.alert_raised'")
    org_ids = {o for _, _, o in new}
    names = dict(
        session.execute(
            select(Organization.id, Organization.name).where(_some_orgs(Organization.id, org_ids))
        ).all()
    )
    csm_of = dict(
        session.execute(
            select(AccountProfile.organization_id, AccountProfile.csm_id).where(
                _some_orgs(AccountProfile.organization_id, org_ids),
                AccountProfile.csm_id.is_not(None),
            )
        ).all()
    )
    rules_used = {r.id: r for r, _, _ in new}
    wants_admins = any(
        a.get("type") == "notify" and "vendor_admins" in (a.get("roles") or [])
        for r in rules_used.values()
        for a in r.actions or []
    )
    csms, admins = _people(session, set(csm_of.values()), wants_admins)
    tags = {
        str(a.get("tag"))
        for r in rules_used.values()
        for a in r.actions or []
        if a.get("type") == "tag"
    }
    tagged: set[tuple[int, str]] = set()
    if tags:
        tagged = set(
            session.execute(
                select(AccountTag.organization_id, AccountTag.tag).where(
                    _some_orgs(AccountTag.organization_id, org_ids), AccountTag.tag.in_(tags)
                )
            ).all()
        )
    label = {rid: display_name(r) for rid, r in rules_used.items()}
    channel = {rid: _channel(r) for rid, r in rules_used.items()}
    exprs = {r.id: e for r, e, _ in new}
    used = {rid: sorted(expressions.metric_names(e)) for rid, e in exprs.items()}
    alert_ids = bulk_insert(
        session,
        HealthAlert.__table__,
        [
            {
                "organization_id": org_id,
                "kind": rule_kind(rule.id),
                "rule_id": rule.id,
                "severity": rule.severity,
                "channel": channel[rule.id],
                "day": day,
                "details": {
                    "rule": rule.name,
                    "expression": rule.expression,
                    "metrics": {n: _json_value(metrics[org_id].get(n)) for n in used[rule.id]},
                },
                "status": AlertStatus.OPEN,
                "created_at": now,
                "closed_at": None,
            }
            for rule, _, org_id in new
        ],
    )
    tasks: list[dict[str, Any]] = []
    task_done: list[dict[str, Any]] = []  # the firing's "task" entries, ids filled in below
    new_tags: list[dict[str, Any]] = []
    pending: list[tuple[_Person, str, str]] = []
    firings: list[dict[str, Any]] = []
    activities: list[dict[str, Any]] = []
    for (rule, _, org_id), alert_id in zip(new, alert_ids, strict=True):
        csm = csms.get(csm_of.get(org_id, -1))
        done: list[dict[str, Any]] = []
        for action in rule.actions or []:
            kind = action.get("type")
            if kind == "task":
                tasks.append(
                    {
                        "organization_id": org_id,
                        "assignee_id": csm.id if csm is not None else None,
                        "kind": TaskKind.ALERT,
                        "title": f"{label[rule.id]}: {names[org_id]}"[:300],
                        "details": {"rule_id": rule.id, "alert_id": alert_id,
                                    "severity": rule.severity},
                        "due_on": day + timedelta(days=int(action.get("due_days", 2))),
                        "status": TaskStatus.OPEN,
                        "source_type": "alert",
                        "source_id": alert_id,
                    }
                )  # fmt: skip
                entry = {"type": "task", "task_id": None, "assignee_id": tasks[-1]["assignee_id"]}
                task_done.append(entry)
                done.append(entry)
            elif kind == "notify":
                people: dict[int, _Person] = {}
                roles = action.get("roles") or []
                if "csm" in roles and csm is not None and csm.active:
                    people[csm.id] = csm
                if "vendor_admins" in roles:
                    people.update((p.id, p) for p in admins)
                pending.extend((p, label[rule.id], names[org_id]) for p in people.values())
                done.append({"type": "notify", "user_ids": sorted(people)})
            elif kind == "tag":
                tag = str(action.get("tag"))
                added = (org_id, tag) not in tagged
                if added:
                    tagged.add((org_id, tag))
                    new_tags.append({"organization_id": org_id, "tag": tag,
                                     "source": rule_kind(rule.id)})  # fmt: skip
                done.append({"type": "tag", "tag": tag, "added": added})
            elif kind == "channel":
                done.append({"type": "channel", "channel": channel[rule.id]})
        seen = metrics[org_id]
        firings.append(
            {
                "rule_id": rule.id,
                "organization_id": org_id,
                "alert_id": alert_id,
                "fired_at": now,
                "metrics": {k: _json_value(v) for k, v in seen.items()},
                "actions": done,
            }
        )
        activities.append(
            {
                "actor_id": None,
                "organization_id": org_id,
                "verb": "cs.alert_raised",
                "subject_type": HealthAlert.__tablename__,
                "subject_id": alert_id,
                "data": {"kind": rule_kind(rule.id), "rule_id": rule.id,
                         "severity": rule.severity, "channel": channel[rule.id]},
            }
        )  # fmt: skip
    for entry, task_id in zip(
        task_done, bulk_insert(session, CsTask.__table__, tasks), strict=True
    ):
        entry["task_id"] = task_id
    bulk_insert(session, AccountTag.__table__, new_tags)
    bulk_insert(
        session,
        Notification.__table__,
        _notification_rows(pending, _alerts_link() if pending else None),
    )
    bulk_insert(session, AlertFiring.__table__, firings)
    bulk_insert(session, Activity.__table__, activities)
    return len(new)


# --------------------------------------------------------------------------------------------
# Alerts: reading and closing
# --------------------------------------------------------------------------------------------


def close_alert(session: Session, actor: User | None, alert_id: int) -> HealthAlert:
    """A CSM closes an alert they dealt with; the next firing of its rule opens a new one.

    An alert of an account outside the CSM's book is *not found*."""
    alert = session.get(HealthAlert, alert_id)
    if alert is None:
        require_cs(actor, Action.MANAGE_CS)
        raise NotFound(str(_l("No such alert.")))
    require_account(session, actor, alert.organization_id, Action.MANAGE_CS)
    if alert.status == AlertStatus.OPEN:
        alert.status, alert.closed_at = AlertStatus.CLOSED, utcnow()
        session.flush()
    return alert


# --------------------------------------------------------------------------------------------
# Reading for the pages
# --------------------------------------------------------------------------------------------

ALERT_STATUSES = ("open", "closed", "all")
EXPORT_LIMIT = 50_000


@dataclass(frozen=True)
class AlertRow:
    alert: HealthAlert
    account: str
    rule: AlertRule | None

    @property
    def rule_name(self) -> str:
        if self.rule is not None:
            return display_name(self.rule)
        return str(self.alert.details.get("rule") or self.alert.kind)


def _alerts_query(
    session: Session,
    viewer: User,
    *,
    channel: str | None = None,
    severity: str | None = None,
    status: str = "open",
    rule_id: int | None = None,
) -> Any:
    stmt = (
        select(HealthAlert, Organization.name, AlertRule)
        .join(Organization, Organization.id == HealthAlert.organization_id)
        .outerjoin(AlertRule, AlertRule.id == HealthAlert.rule_id)
        .where(book_filter(session, viewer))
    )
    if status in ("open", "closed"):
        stmt = stmt.where(HealthAlert.status == status)
    if channel:
        stmt = stmt.where(HealthAlert.channel == channel)
    if severity:
        stmt = stmt.where(HealthAlert.severity == severity)
    if rule_id is not None:
        stmt = stmt.where(HealthAlert.rule_id == rule_id)
    return stmt


def list_alerts(
    session: Session,
    viewer: User | None,
    *,
    channel: str | None = None,
    severity: str | None = None,
    status: str = "open",
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[AlertRow], int]:
    """Alerts of the viewer's book, newest first, and their total (for the pager)."""
    staff = require_cs(viewer)
    stmt = _alerts_query(session, staff, channel=channel, severity=severity, status=status)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.execute(
        stmt.order_by(HealthAlert.created_at.desc(), HealthAlert.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [AlertRow(a, name, rule) for a, name, rule in rows], int(total or 0)


def export_alerts(
    session: Session,
    viewer: User | None,
    *,
    channel: str | None = None,
    severity: str | None = None,
    status: str = "open",
) -> list[AlertRow]:
    staff = require_cs(viewer)
    stmt = _alerts_query(session, staff, channel=channel, severity=severity, status=status)
    rows = session.execute(
        stmt.order_by(HealthAlert.created_at.desc(), HealthAlert.id.desc()).limit(EXPORT_LIMIT)
    ).all()
    return [AlertRow(a, name, rule) for a, name, rule in rows]


def channels(session: Session, viewer: User | None) -> list[tuple[str, int]]:
    """Channels with their open alerts in the viewer's book (the channel list)."""
    staff = require_cs(viewer)
    return [
        (channel, n)
        for channel, n in session.execute(
            select(HealthAlert.channel, func.count())
            .join(Organization, Organization.id == HealthAlert.organization_id)
            .where(
                HealthAlert.channel.is_not(None),
                HealthAlert.status == AlertStatus.OPEN,
                book_filter(session, staff),
            )
            .group_by(HealthAlert.channel)
            .order_by(HealthAlert.channel)
        )
    ]


def rule_overview(session: Session, viewer: User | None) -> list[tuple[AlertRule, int, Any]]:
    """Every rule with its open alerts (in the viewer's book) and its last firing."""
    staff = require_cs(viewer)
    open_counts = dict(
        session.execute(
            select(HealthAlert.rule_id, func.count())
            .join(Organization, Organization.id == HealthAlert.organization_id)
            .where(HealthAlert.status == AlertStatus.OPEN, book_filter(session, staff))
            .group_by(HealthAlert.rule_id)
        ).all()
    )
    last_fired = dict(
        session.execute(
            select(AlertFiring.rule_id, func.max(AlertFiring.fired_at)).group_by(
                AlertFiring.rule_id
            )
        ).all()
    )
    return [(r, open_counts.get(r.id, 0), last_fired.get(r.id)) for r in rules(session)]


@dataclass(frozen=True)
class FiringRow:
    firing: AlertFiring
    account: str


def rule_firings(
    session: Session, viewer: User | None, rule_id: int, *, page: int = 1, per_page: int = 50
) -> tuple[AlertRule, list[FiringRow], int]:
    """A rule's firing history (the audit) within the viewer's book, newest first."""
    staff = require_cs(viewer)
    rule = get_rule(session, rule_id)
    stmt = (
        select(AlertFiring, Organization.name)
        .join(Organization, Organization.id == AlertFiring.organization_id)
        .where(AlertFiring.rule_id == rule.id, book_filter(session, staff))
    )
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.execute(
        stmt.order_by(AlertFiring.fired_at.desc(), AlertFiring.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return rule, [FiringRow(f, name) for f, name in rows], int(total or 0)


def preview_accounts(session: Session, viewer: User | None, limit: int = 1000) -> list[Any]:
    """(id, name) of the accounts a rule can be tested against (the viewer's book)."""
    staff = require_cs(viewer)
    return list(
        session.execute(
            select(Organization.id, Organization.name)
            .where(Organization.kind == OrgKind.CUSTOMER, book_filter(session, staff))
            .order_by(Organization.name, Organization.id)
            .limit(limit)
        ).all()
    )


__all__ = [
    "ALERT_STATUSES",
    "CATALOG",
    "DEFAULT_RULES",
    "METRIC_TYPES",
    "SEVERITIES",
    "MetricInfo",
    "account_metrics",
    "bulk_insert",
    "channels",
    "close_alert",
    "create_rule",
    "delete_rule",
    "display_name",
    "ensure_default_rules",
    "evaluate_rules",
    "export_alerts",
    "expression_message",
    "list_alerts",
    "parse_expression",
    "preview_accounts",
    "preview_rule",
    "rule_firings",
    "rule_kind",
    "rule_overview",
    "rules",
    "set_rule_enabled",
    "update_rule",
    "validate_actions",
]
