"""Alert rules and playbooks: metrics in SQL, the shipped rules, one open alert per rule and
account, the audit, the actions' effects, rule editing and the pages (roles, own book)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from cs_metrics import playbooks, signals
from cs_metrics.models import (
    AccountTag,
    AlertFiring,
    AlertRule,
    CsTask,
    HealthAlert,
)
from cs_metrics.settings import set_setting
from portal.core.activity import Activity
from portal.core.errors import DomainError, NotFound, PermissionDenied
from portal.core.identity import Role
from portal.core.notifications import Notification
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.cs_factories import (
    AccountFactory,
    InvoiceFactory,
    NpsFactory,
    SnapshotFactory,
    TicketFactory,
    UsageFactory,
)
from tests.factories import OrganizationFactory, UserFactory, staff

DAY = date(2026, 3, 31)


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def admin(session):
    return staff(Role.VENDOR_ADMIN)


@pytest.fixture
def csm(session):
    return staff(Role.CSM)


def at(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def account(session, csm=None, **profile):
    org = OrganizationFactory()
    AccountFactory(organization_id=org.id, csm_id=csm.id if csm else None, **profile)
    return org


def activity(session, actor, org, verb, subject_id=None, data=None, day=DAY):
    session.add(Activity(actor_id=actor.id, organization_id=org.id, verb=verb,
                         subject_type="questions", subject_id=subject_id, data=data or {},
                         occurred_at=at(day)))  # fmt: skip
    session.flush()


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def default_rule(session, key) -> AlertRule:
    playbooks.ensure_default_rules(session)
    return session.scalar(select(AlertRule).where(AlertRule.key == key))


def alerts_of(session, org, rule) -> list[HealthAlert]:
    session.expire_all()
    return list(
        session.scalars(
            select(HealthAlert).where(
                HealthAlert.organization_id == org.id, HealthAlert.rule_id == rule.id
            )
        )
    )


# --- metrics -------------------------------------------------------------------------------


def test_account_metrics_from_every_source(session):
    org = account(session, renewal_date=DAY + timedelta(days=45))
    member = UserFactory(organization=org)
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=40), score=99.0)  # too old
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=20), score=95.0)
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=9), score=60.0, band="red")
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=1), score=88.0)
    SnapshotFactory(organization_id=org.id, day=DAY, score=75.0, band="yellow")
    for days_ago, value in ((5, 10), (35, 20), (65, 30), (95, 999)):
        UsageFactory(organization_id=org.id, day=DAY - timedelta(days=days_ago), value=value)
    InvoiceFactory(organization_id=org.id, order_date=DAY - timedelta(days=100),
                   due_date=DAY - timedelta(days=70), amount=Decimal("900000"))  # fmt: skip
    InvoiceFactory(organization_id=org.id, order_date=DAY - timedelta(days=40),
                   due_date=DAY - timedelta(days=10), paid_date=DAY - timedelta(days=9),
                   amount=Decimal("1200.50"))  # fmt: skip
    TicketFactory(organization_id=org.id, opened_at=at(DAY - timedelta(days=10)), csat=3)
    TicketFactory(organization_id=org.id, opened_at=at(DAY - timedelta(days=20)), csat=4)
    TicketFactory(organization_id=org.id, opened_at=at(DAY - timedelta(days=200)), csat=1)
    NpsFactory(organization_id=org.id, score=10, responded_at=at(DAY - timedelta(days=30)))
    NpsFactory(organization_id=org.id, score=5, responded_at=at(DAY - timedelta(days=3)))
    activity(session, member, org, "question.asked", subject_id=1)
    activity(session, member, org, "question.asked", subject_id=2)
    activity(session, member, org, "answer.accepted", data={"question_id": 1})
    activity(session, staff(Role.CSM), org, "question.asked", subject_id=3)  # not a member
    activity(session, member, org, "idea.voted")
    activity(session, member, org, "idea.voted", day=DAY - timedelta(days=120))

    m = playbooks.account_metrics(session, DAY)[org.id]
    assert set(m) == set(playbooks.METRIC_TYPES)
    assert (m["health_score"], m["health_band"], m["previous_band"]) == (75.0, "yellow", "green")
    assert m["band_changed"] is True and m["health_drop_30d"] == pytest.approx(20.0)
    assert (m["usage_m0"], m["usage_m1"], m["usage_m2"]) == (10.0, 20.0, 30.0)
    assert m["usage_down_two_months"] is True
    assert (m["orders_m0"], m["orders_m1"], m["orders_m2"]) == (0.0, 1.0, 0.0)
    assert m["purchases_down_two_months"] is False
    assert m["max_days_overdue"] == 70.0
    assert m["months_since_last_order"] == pytest.approx(40 / 30, abs=0.01)
    assert m["largest_order_90d"] == pytest.approx(1200.5)
    assert m["avg_rating_90d"] == pytest.approx(3.5)
    assert (m["nps_last_score"], m["nps_category"]) == (5.0, "detractor")
    assert (m["open_questions"], m["ideas_voted"]) == (1.0, 1.0)
    assert (m["arr"], m["days_to_renewal"]) == (120000.0, 45.0)
    # The nightly run passes the signals it has read already: the same metrics.
    assert (
        playbooks.account_metrics(session, DAY, collected=signals.collect(session, DAY))[org.id]
        == m
    )


def test_open_questions_leave_out_closed_and_refused_ones_until_reopened_or_restored(session):
    """The alert metric counts what a CSM's task lists (signals.settled_questions)."""
    org = account(session)
    member = UserFactory(organization=org)
    moderator = staff(Role.MODERATOR)
    earlier = DAY - timedelta(days=1)
    for question in range(1, 7):
        activity(session, member, org, "question.asked", subject_id=question, day=earlier)

    def moderated(verb, question, day=earlier):
        activity(session, moderator, org, verb, data={"kind": "question", "object_id": question},
                 day=day)  # fmt: skip

    activity(session, moderator, org, "question.closed", subject_id=1, day=earlier)
    activity(session, moderator, org, "question.duplicate", subject_id=2, day=earlier)
    activity(session, member, org, "question.reopened", subject_id=2)
    moderated("content.rejected", 3)
    moderated("content.hidden", 4)
    moderated("content.restored", 4)
    moderated("content.removed", 5)
    moderated("content.rejected", 99)  # no such question of this account
    activity(session, moderator, org, "content.rejected", data={"kind": "question"})  # old log
    activity(session, member, org, "question.reopened", subject_id=1, day=DAY + timedelta(days=2))
    # open: 2 (reopened), 4 (restored), 6; closed 1 is reopened only after the day
    assert playbooks.account_metrics(session, DAY)[org.id]["open_questions"] == 3.0
    assert (
        playbooks.account_metrics(session, DAY + timedelta(days=2))[org.id]["open_questions"] == 4.0
    )


def test_an_account_without_data_has_unknown_metrics(session):
    org = account(session)
    m = playbooks.account_metrics(session, DAY)[org.id]
    assert m["health_score"] is None and m["usage_down_two_months"] is None
    assert m["max_days_overdue"] is None and m["nps_category"] is None
    assert m["open_questions"] == 0.0


def test_metrics_cost_the_same_queries_for_one_or_many_accounts(session, connection):
    def statements() -> int:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(connection, "before_cursor_execute", listener)
        try:
            playbooks.account_metrics(session, DAY)
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        return len([s for s in seen if not s.lstrip().upper().startswith(("SAVEPOINT",
                                                                           "RELEASE"))])  # fmt: skip

    org = account(session)
    UsageFactory(organization_id=org.id, day=DAY)
    one = statements()
    for _ in range(6):
        other = account(session)
        UsageFactory(organization_id=other.id, day=DAY)
        InvoiceFactory(organization_id=other.id, order_date=DAY)
        TicketFactory(organization_id=other.id, opened_at=at(DAY), csat=2)
    assert statements() == one <= 10


# --- the shipped rules -----------------------------------------------------------------------


def _usage_down(session, org, positive):
    for days_ago, value in ((70, 300), (40, 200), (5, 100 if positive else 400)):
        UsageFactory(organization_id=org.id, day=DAY - timedelta(days=days_ago), value=value)


def _overdue(session, org, positive):
    InvoiceFactory(organization_id=org.id, order_date=DAY - timedelta(days=120),
                   due_date=DAY - timedelta(days=90),
                   paid_date=None if positive else DAY - timedelta(days=80))  # fmt: skip


def _vip(session, org, positive):
    InvoiceFactory(organization_id=org.id, order_date=DAY - timedelta(days=20),
                   amount=Decimal("600000.00"), paid_date=DAY)  # fmt: skip
    TicketFactory(organization_id=org.id, opened_at=at(DAY - timedelta(days=5)),
                  csat=3 if positive else 5)  # fmt: skip


def _health(session, org, positive):
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=1), score=90.0)
    if positive:
        SnapshotFactory(organization_id=org.id, day=DAY, score=72.0, band="yellow")
    else:
        SnapshotFactory(organization_id=org.id, day=DAY, score=86.0, band="green")


def _detractor(session, org, positive):
    member = UserFactory(organization=org)
    NpsFactory(organization_id=org.id, score=3 if positive else 9,
               responded_at=at(DAY - timedelta(days=2)))  # fmt: skip
    activity(session, member, org, "question.asked", subject_id=77)


@pytest.mark.parametrize(
    ("key", "setup", "channel"),
    [
        ("usage_or_purchases_down", _usage_down, None),
        ("overdue_no_orders", _overdue, "legal"),
        ("big_order_low_rating", _vip, "vip"),
        ("health_change", _health, None),
        ("engaged_detractor", _detractor, None),
    ],
)
def test_default_rule_fires_on_its_case_only(session, key, setup, channel):
    rule = default_rule(session, key)
    hit, miss = account(session), account(session)
    setup(session, hit, True)
    setup(session, miss, False)
    playbooks.evaluate_rules(session, DAY)
    (alert,) = alerts_of(session, hit, rule)
    assert (alert.kind, alert.severity, alert.channel) == (f"rule:{rule.id}", rule.severity,
                                                           channel)  # fmt: skip
    assert alert.details["metrics"] and alert.details["expression"] == rule.expression
    assert alerts_of(session, miss, rule) == []


def test_a_drop_of_fifteen_points_within_a_band_fires_the_health_rule(session):
    rule = default_rule(session, "health_change")
    org = account(session)
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=25), score=72.0,
                    band="yellow")  # fmt: skip
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=10), score=84.0,
                    band="yellow")  # fmt: skip
    SnapshotFactory(organization_id=org.id, day=DAY, score=69.0, band="red")
    playbooks.evaluate_rules(session, DAY)
    (alert,) = alerts_of(session, org, rule)
    assert alert.details["metrics"] == {"band_changed": True, "health_drop_30d": 15.0}


def test_default_rules_are_seeded_once_and_edits_survive(session, admin):
    assert playbooks.ensure_default_rules(session) == 5
    assert playbooks.ensure_default_rules(session) == 0
    rule = default_rule(session, "health_change")
    playbooks.update_rule(session, admin, rule.id, name="Health", expression="band_changed",
                          severity="info", actions=[], enabled=False)  # fmt: skip
    assert playbooks.ensure_default_rules(session) == 0
    assert count(session, AlertRule) == 5
    session.refresh(rule)
    assert (rule.name, rule.expression, rule.enabled) == ("Health", "band_changed", False)
    with pytest.raises(DomainError) as raised:
        playbooks.delete_rule(session, admin, rule.id)
    assert raised.value.field == "rule"


def test_disabled_rules_do_not_fire(session, admin):
    rule = default_rule(session, "health_change")
    playbooks.set_rule_enabled(session, admin, rule.id, False)
    org = account(session)
    _health(session, org, True)
    assert playbooks.evaluate_rules(session, DAY) == 0
    assert alerts_of(session, org, rule) == []


# --- one open alert per rule and account, the audit -----------------------------------------


def test_one_open_alert_per_rule_and_account_and_every_firing_audited(session, csm):
    rule = default_rule(session, "health_change")
    org = account(session, csm=csm)
    _health(session, org, True)
    assert playbooks.evaluate_rules(session, DAY) == 1
    assert playbooks.evaluate_rules(session, DAY) == 0  # still true, alert open: not new
    assert len(alerts_of(session, org, rule)) == 1
    (firing,) = session.scalars(select(AlertFiring).where(AlertFiring.rule_id == rule.id))
    assert firing.alert_id == alerts_of(session, org, rule)[0].id
    assert firing.metrics["health_score"] == 72.0 and firing.metrics["health_band"] == "yellow"
    assert [a["type"] for a in firing.actions] == ["task", "notify"]
    assert count(session, CsTask, CsTask.organization_id == org.id) == 1  # no second task
    assert count(session, Activity, Activity.verb == "cs.alert_raised",
                 Activity.organization_id == org.id) == 1  # fmt: skip

    playbooks.close_alert(session, csm, firing.alert_id)
    assert playbooks.evaluate_rules(session, DAY) == 1  # closed, still true: fires again
    statuses = sorted(a.status for a in alerts_of(session, org, rule))
    assert statuses == ["closed", "open"]
    assert count(session, AlertFiring, AlertFiring.rule_id == rule.id) == 2


def test_actions_create_a_task_notify_tag_and_route(app_ctx, session, csm, admin):
    rule = playbooks.create_rule(
        session, admin, name="Renewal risk", expression="days_to_renewal < 60 and arr > 1000",
        severity="critical",
        actions=[{"type": "task", "due_days": 3}, {"type": "notify", "roles": ["csm",
                 "vendor_admins"]}, {"type": "tag", "tag": "renewal-risk"},
                 {"type": "channel", "channel": "renewals"}],
    )  # fmt: skip
    org = account(session, csm=csm, renewal_date=DAY + timedelta(days=30))
    account(session, csm=csm, renewal_date=DAY + timedelta(days=300))  # does not fire
    assert playbooks.evaluate_rules(session, DAY) == 1
    (alert,) = alerts_of(session, org, rule)
    assert (alert.severity, alert.channel) == ("critical", "renewals")
    task = session.scalar(select(CsTask).where(CsTask.organization_id == org.id))
    assert (task.kind, task.assignee_id, task.due_on) == ("alert", csm.id, DAY + timedelta(3))
    assert (task.source_type, task.source_id) == ("alert", alert.id)
    tag = session.scalar(select(AccountTag).where(AccountTag.organization_id == org.id))
    assert (tag.tag, tag.source) == ("renewal-risk", f"rule:{rule.id}")
    told = {n.user_id: n for n in session.scalars(select(Notification))}
    assert set(told) == {csm.id, admin.id}
    assert "Renewal risk" in told[csm.id].message and told[csm.id].link.endswith("/cs/alerts")
    firing = session.scalar(select(AlertFiring).where(AlertFiring.rule_id == rule.id))
    assert firing.actions[0] == {"type": "task", "task_id": task.id, "assignee_id": csm.id}
    assert firing.actions[2] == {"type": "tag", "tag": "renewal-risk", "added": True}


def test_a_rule_firing_for_many_accounts_notifies_each_person_once(app_ctx, session, admin):
    csm = staff(Role.CSM)
    csm.locale = "zh_CN"
    renewal = playbooks.create_rule(session, admin, name="Renewal soon",
                                    expression="days_to_renewal < 60",
                                    actions=[{"type": "notify", "roles": ["csm"]}])  # fmt: skip
    playbooks.create_rule(session, admin, name="Big account", expression="arr > 5000",
                          actions=[{"type": "notify", "roles": ["csm"]}])  # fmt: skip
    soon = DAY + timedelta(days=30)
    orgs = [account(session, csm=csm, renewal_date=soon, arr=100) for _ in range(5)]
    big = account(session, csm=csm, renewal_date=DAY + timedelta(days=300), arr=9000)
    assert playbooks.evaluate_rules(session, DAY) == 6
    told = session.scalars(
        select(Notification.message).where(Notification.user_id == csm.id).order_by(Notification.id)
    ).all()
    first_three = ", ".join(o.name for o in sorted(orgs, key=lambda o: o.id)[:3])
    assert sorted(told) == sorted([f"5 个客户触发告警“Renewal soon”：{first_three}…",
                                   f"{big.name} 触发告警“Big account”"])  # fmt: skip
    firings = session.scalars(select(AlertFiring).where(AlertFiring.rule_id == renewal.id)).all()
    assert [f.actions for f in firings] == [[{"type": "notify", "user_ids": [csm.id]}]] * 5


def test_missing_data_never_fires(session, admin):
    playbooks.create_rule(session, admin, name="Low", expression="not (health_score > 50)")
    account(session)  # no snapshot at all
    assert playbooks.evaluate_rules(session, DAY) == 0


# --- editing rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"expression": "helth_score < 3"}, "expression", ['"helth_score"', "health_score"]),
        ({"expression": "health_score < "}, "expression", ["ends too early"]),
        ({"expression": 'nps_category > "a"'}, "expression", ["needs a number"]),
        ({"expression": ""}, "expression", ["expression"]),
        ({"name": " "}, "name", ["name"]),
        ({"severity": "panic"}, "severity", ["severity"]),
        ({"actions": [{"type": "tag", "tag": "Not A Slug!"}]}, "tag", ["lowercase"]),
        ({"actions": [{"type": "channel", "channel": ""}]}, "channel", ["lowercase"]),
        ({"actions": [{"type": "task", "due_days": 9999}]}, "due_days", ["365"]),
        ({"actions": [{"type": "notify", "roles": ["ceo"]}]}, "notify_roles", ["notify"]),
        ({"actions": [{"type": "email"}]}, "actions", ["action"]),
    ],
)
def test_bad_rule_input_names_the_field(session, admin, values, field, words):
    kwargs = {"name": "R", "expression": "band_changed", "severity": "warning", **values}
    with pytest.raises(DomainError) as raised:
        playbooks.create_rule(session, admin, **kwargs)
    assert raised.value.field == field
    for word in words:
        assert word in raised.value.message


def test_only_vendor_admins_edit_rules(session, csm, admin):
    with pytest.raises(PermissionDenied):
        playbooks.create_rule(session, csm, name="R", expression="band_changed")
    rule = playbooks.create_rule(session, admin, name="R", expression="band_changed")
    with pytest.raises(PermissionDenied):
        playbooks.delete_rule(session, csm, rule.id)
    playbooks.delete_rule(session, admin, rule.id)
    with pytest.raises(NotFound):
        playbooks.get_rule(session, rule.id)


def test_deleting_a_rule_closes_its_alerts_and_keeps_the_audit(session, admin):
    rule = playbooks.create_rule(session, admin, name="R", expression="arr > 0")
    org = account(session)
    playbooks.evaluate_rules(session, DAY)
    playbooks.delete_rule(session, admin, rule.id)
    session.expire_all()
    (alert,) = session.scalars(select(HealthAlert).where(HealthAlert.organization_id == org.id))
    assert alert.status == "closed"
    assert count(session, AlertFiring, AlertFiring.organization_id == org.id) == 1


# --- pages -----------------------------------------------------------------------------------

PAGES = ["/cs/alerts", "/cs/rules", "/cs/rules/new", "/cs/alerts.csv", "/cs/alerts/channels/vip"]


@pytest.mark.parametrize("url", PAGES)
def test_customers_get_403_and_anonymous_sign_in(client, session, url):
    assert client.get(url).status_code in (302, 401)
    login(client, UserFactory(organization=account(session)))
    assert client.get(url).status_code == 403


def test_csm_reads_but_does_not_edit_rules(client, session, csm):
    rule = default_rule(session, "health_change")
    login(client, csm)
    page = client.get("/cs/rules")
    assert page.status_code == 200 and "Health band change or a 15-point drop" in page.text
    assert "/cs/rules/new" not in page.text
    assert client.get(f"/cs/rules/{rule.id}").status_code == 200
    assert client.get("/cs/rules/new").status_code == 403
    assert client.get(f"/cs/rules/{rule.id}/edit").status_code == 403
    assert client.post(f"/cs/rules/{rule.id}/delete").status_code in (400, 403)


def test_the_rules_list_says_when_a_rule_last_fired_in_the_readers_words(client, session, csm):
    rule = default_rule(session, "health_change")
    _health(session, account(session), True)
    assert playbooks.evaluate_rules(session, DAY) == 1
    (firing,) = session.scalars(select(AlertFiring).where(AlertFiring.rule_id == rule.id))
    firing.fired_at = datetime(2026, 3, 31, 19, 23, tzinfo=UTC)
    session.flush()
    login(client, csm)

    def last_fired() -> str:
        return client.get("/cs/rules").text.split(f'data-rule-id="{rule.id}"')[1].split("</tr>")[0]

    # It said "2026-03-31 19:23" (strftime) to everyone, where other pages say it as people do.
    row = last_fired()
    assert "Mar 31, 2026, 7:23\u202fPM" in row or "Mar 31, 2026, 7:23 PM" in row, row
    assert "2026-03-31" not in row
    csm.locale = "zh_CN"
    session.flush()
    row = last_fired()
    assert "2026年3月31日 19:23" in row and "2026-03-31" not in row, row


def test_admin_creates_edits_toggles_and_deletes_a_rule(client, session, admin):
    login(client, admin)
    form = client.get("/cs/rules/new")
    assert form.status_code == 200 and "largest_order_90d" in form.text  # the catalog
    bad = client.post("/cs/rules/new", data={"name": "Big", "expression": "largest_ordr > 1",
                                             "severity": "warning", "save": "1"})  # fmt: skip
    assert bad.status_code == 400
    assert "largest_ordr" in bad.text and "largest_order_90d" in bad.text
    bad = client.post("/cs/rules/new", data={"name": "Big", "expression": "arr > 1",
                                             "severity": "warning", "tag": "NO WAY",
                                             "save": "1"})  # fmt: skip
    assert bad.status_code == 400 and 'id="tag-errors"' in bad.text

    made = client.post(
        "/cs/rules/new",
        data={
            "name": "Big",
            "expression": "arr > 100000",
            "severity": "critical",
            "enabled": "y",
            "task": "y",
            "due_days": "4",
            "notify_roles": ["csm"],
            "channel": "vip",
            "save": "1",
        },
    )
    assert made.status_code == 302  # fmt: skip
    rule = session.scalar(select(AlertRule).where(AlertRule.name == "Big"))
    assert rule.actions == [{"type": "channel", "channel": "vip"},
                            {"type": "task", "due_days": 4},
                            {"type": "notify", "roles": ["csm"]}]  # fmt: skip
    edit = client.get(f"/cs/rules/{rule.id}/edit")
    assert edit.status_code == 200 and "arr &gt; 100000" in edit.text
    saved = client.post(
        f"/cs/rules/{rule.id}/edit",
        data={"name": "Bigger", "expression": "arr > 200000", "severity": "info", "save": "1"},
    )
    assert saved.status_code == 302  # fmt: skip
    session.expire_all()
    assert (rule.name, rule.expression, rule.enabled, rule.actions) == (
        "Bigger",
        "arr > 200000",
        False,
        [],
    )
    assert client.post(f"/cs/rules/{rule.id}/enabled", data={"enabled": "1"}).status_code == 302
    session.expire_all()
    assert rule.enabled is True
    assert client.post(f"/cs/rules/{rule.id}/delete").status_code == 302
    assert count(session, AlertRule, AlertRule.name == "Bigger") == 0


def test_preview_shows_the_metrics_and_whether_it_fires(client, session, admin):
    org = account(session, arr=Decimal("250000"))
    login(client, admin)
    page = client.post("/cs/rules/new", data={
        "name": "Big", "expression": "arr > 200000", "severity": "warning",
        "preview_account": str(org.id), "preview": "1"})  # fmt: skip
    assert page.status_code == 200
    assert "The rule fires for this account." in page.text and "250,000" in page.text
    assert count(session, AlertRule) == 0  # nothing saved
    page = client.post("/cs/rules/new", data={
        "name": "Big", "expression": "arr > 300000", "severity": "warning",
        "preview_account": str(org.id), "preview": "1"})  # fmt: skip
    assert "The rule does not fire for this account." in page.text
    page = client.post("/cs/rules/new", data={
        "name": "Big", "expression": "ar > 1", "severity": "warning",
        "preview_account": str(org.id), "preview": "1"})  # fmt: skip
    assert page.status_code == 400 and "Unknown metric" in page.text
    assert 'id="expression-errors"' in page.text


def test_preview_needs_no_name_and_uses_the_last_recompute_day(client, session, admin):
    org = account(session)
    SnapshotFactory(organization_id=org.id, day=DAY, score=42.0, band="red")
    login(client, admin)
    page = client.post(
        "/cs/rules/new",
        data={"expression": "health_score < 50", "preview_account": str(org.id), "preview": "1"},
    )
    assert page.status_code == 200 and "The rule fires for this account." in page.text
    assert f"Value on {DAY.isoformat()}" in page.text and "<td>42</td>" in page.text
    page = client.post(
        "/cs/rules/new",
        data={"expression": "health_score < 50", "preview_account": "x", "preview": "1"},
    )
    assert page.status_code == 400 and 'id="preview_account-errors"' in page.text
    vendor_org_id = admin.organization_id  # not a customer account
    page = client.post("/cs/rules/new", data={
        "expression": "health_score < 50", "preview_account": str(vendor_org_id),
        "preview": "1"})  # fmt: skip
    assert page.status_code == 404 and 'id="preview_account-errors"' in page.text


def _alert(session, org, severity="warning", channel=None):
    rule = playbooks.create_rule(session, staff(Role.VENDOR_ADMIN), name=f"R {channel}",
                                 expression="arr > 0", severity=severity,
                                 actions=[{"type": "channel", "channel": channel}]
                                 if channel else [])  # fmt: skip
    alert = HealthAlert(organization_id=org.id, kind=f"rule:{rule.id}", rule_id=rule.id,
                        severity=severity, channel=channel, day=DAY,
                        details={"metrics": {"arr": 1.0}})  # fmt: skip
    session.add(alert)
    session.flush()
    return alert


def test_alert_list_filters_exports_and_closes(client, session, csm):
    legal = _alert(session, account(session, csm=csm), "critical", "legal")
    vip = _alert(session, account(session, csm=csm), "warning", "vip")
    login(client, csm)
    page = client.get("/cs/alerts")
    assert f'data-alert-id="{legal.id}"' in page.text and f'data-alert-id="{vip.id}"' in page.text
    page = client.get("/cs/alerts?severity=critical")
    assert f'data-alert-id="{legal.id}"' in page.text
    assert f'data-alert-id="{vip.id}"' not in page.text
    page = client.get("/cs/alerts/channels/vip")
    assert f'data-alert-id="{vip.id}"' in page.text
    assert f'data-alert-id="{legal.id}"' not in page.text
    assert client.get("/cs/alerts?severity=bogus&status=bogus&page=x").status_code == 200

    csv = client.get("/cs/alerts.csv?channel=legal")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    lines = csv.data.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 2 and "legal" in lines[1] and "arr=1.0" in lines[1]

    closed = client.post(f"/cs/alerts/{legal.id}/close", data={"next": "/cs/alerts"})
    assert closed.status_code == 302
    session.expire_all()
    assert legal.status == "closed" and legal.closed_at is not None
    assert f'data-alert-id="{legal.id}"' not in client.get("/cs/alerts").text
    assert client.post("/cs/alerts/999999/close").status_code == 404


def test_product_managers_read_alerts_but_cannot_close(client, session):
    alert = _alert(session, account(session))
    login(client, staff(Role.PRODUCT_MANAGER))
    assert client.get("/cs/alerts").status_code == 200
    assert client.post(f"/cs/alerts/{alert.id}/close").status_code == 403


def test_own_book_csm_sees_and_closes_only_their_accounts_alerts(client, session, csm, admin):
    set_setting(session, admin, "own_book_only", True)
    mine = _alert(session, account(session, csm=csm), channel="legal")
    theirs = _alert(session, account(session, csm=staff(Role.CSM)), channel="legal")
    login(client, csm)
    page = client.get("/cs/alerts/channels/legal")
    assert f'data-alert-id="{mine.id}"' in page.text
    assert f'data-alert-id="{theirs.id}"' not in page.text
    csv = client.get("/cs/alerts.csv").data.decode("utf-8-sig")
    assert len(csv.strip().splitlines()) == 2
    assert client.post(f"/cs/alerts/{theirs.id}/close").status_code == 404
    session.expire_all()
    assert theirs.status == "open"
    with pytest.raises(NotFound):
        playbooks.close_alert(session, csm, theirs.id)


def test_rule_history_lists_firings_in_the_viewers_book(client, session, csm, admin):
    rule = playbooks.create_rule(session, admin, name="Any ARR", expression="arr > 0")
    account(session, csm=csm)
    account(session, csm=staff(Role.CSM))
    playbooks.evaluate_rules(session, DAY)
    login(client, csm)
    assert client.get(f"/cs/rules/{rule.id}").text.count('class="cs-firing"') == 2
    set_setting(session, admin, "own_book_only", True)
    assert client.get(f"/cs/rules/{rule.id}").text.count('class="cs-firing"') == 1
    assert client.get("/cs/rules/999999").status_code == 404


def test_list_pages_run_a_constant_number_of_queries(client, session, connection, csm):
    login(client, csm)
    _alert(session, account(session, csm=csm), channel="legal")
    pages = ["/cs/alerts", "/cs/rules", "/cs/alerts/channels/legal"]
    before = [count_statements(client, connection, url) for url in pages]
    for channel in ("legal", "vip", None, "legal"):
        _alert(session, account(session, csm=csm), channel=channel)
    assert [count_statements(client, connection, url) for url in pages] == before


def test_rule_pages_show_action_labels_and_readable_metric_values(client, session, csm, admin):
    rule = playbooks.create_rule(
        session, admin, name="Slipping", expression="arr > 0",
        actions=[{"type": "task", "due_days": 2}, {"type": "notify", "roles": ["csm"]},
                 {"type": "tag", "tag": "at-risk"}],
    )  # fmt: skip
    account(session, csm=csm)
    playbooks.evaluate_rules(session, DAY)
    alert = session.scalar(select(HealthAlert).where(HealthAlert.rule_id == rule.id))
    alert.details = {
        "metrics": {
            "band_changed": True,
            "health_drop_30d": 16.45323502678032,
            "usage_down_two_months": False,
            "nps_last_score": None,
        }
    }
    session.flush()
    login(client, csm)
    alerts = client.get("/cs/alerts", headers={"Accept-Language": "en"}).text
    assert "<code>band_changed</code>=Yes" in alerts and "=No" in alerts
    assert "<code>health_drop_30d</code>=16.45" in alerts and "16.453" not in alerts
    assert "<code>nps_last_score</code>=—" in alerts and "True" not in alerts

    history = client.get(f"/cs/rules/{rule.id}", headers={"Accept-Language": "en"}).text
    assert "Task, Notify, Tag (at-risk)" in history
    csm.locale = "zh_CN"
    session.flush()
    history = client.get(f"/cs/rules/{rule.id}").text
    assert "任务, 通知, 标签 (at-risk)" in history and "task," not in history
    assert "<code>arr</code>=120,000" in history  # what the firing saw, rounded
    firing = session.scalar(select(AlertFiring).where(AlertFiring.rule_id == rule.id))
    firing.fired_at = datetime(2026, 3, 1, 20, 5, tzinfo=UTC)
    csm.timezone = "Asia/Shanghai"  # fired at 04:05 the next morning there
    session.flush()
    assert "2026年3月2日 04:05" in client.get(f"/cs/rules/{rule.id}").text
    assert "<code>band_changed</code>=是" in client.get("/cs/alerts").text


def test_account_page_names_a_shipped_rule_and_its_task_in_the_readers_language(
    client, session, csm
):
    default_rule(session, "health_change")
    org = account(session, csm=csm)
    _health(session, org, True)
    playbooks.evaluate_rules(session, DAY)
    login(client, csm)
    page = client.get(f"/cs/accounts/{org.id}", headers={"Accept-Language": "en"}).text
    assert f"Health band change or a 15-point drop: {org.name}</a>" in page
    csm.locale = "zh_CN"
    session.flush()
    page = client.get(f"/cs/accounts/{org.id}").text
    alerts = page.split('id="alerts"')[1].split("</section>")[0]
    tasks = page.split('id="tasks"')[1].split("</section>")[0]
    assert "健康等级变化或下降 15 分" in alerts and "Health band" not in alerts
    assert f"健康等级变化或下降 15 分：{org.name}</a>" in tasks and "Health band" not in tasks
    assert f"健康等级变化或下降 15 分：{org.name}" in client.get("/cs/tasks?scope=book").text
