"""The nightly evaluation writes its firings in bulk: the statements it sends do not grow with
the number of firings, and what each firing did is still audited row by row."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event, func, select

from cs_metrics import playbooks, service
from cs_metrics.models import AccountTag, AlertFiring, CsTask, HealthAlert, HealthSnapshot
from portal.core.activity import Activity
from portal.core.identity import Role
from portal.core.notifications import Notification
from tests import cs_factories
from tests.cs_factories import AccountFactory, UsageFactory
from tests.factories import OrganizationFactory, staff

DAY = date(2026, 3, 31)
ACTIONS = [
    {"type": "task", "due_days": 3},
    {"type": "notify", "roles": ["csm", "vendor_admins"]},
    {"type": "tag", "tag": "renewal-risk"},
    {"type": "channel", "channel": "renewals"},
]


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


def renewing(csm, n):
    orgs = []
    for _ in range(n):
        org = OrganizationFactory()
        AccountFactory(organization_id=org.id, csm_id=csm.id, arr=5000,
                       renewal_date=DAY + timedelta(days=20))  # fmt: skip
        orgs.append(org)
    return orgs


def statements(session, connection, run) -> int:
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(connection, "before_cursor_execute", listener)
    try:
        run()
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    return len([s for s in seen if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))])


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_firings_cost_the_same_statements_for_two_or_twenty_accounts(session, connection):
    admin, csm = staff(Role.VENDOR_ADMIN), staff(Role.CSM)
    rule = playbooks.create_rule(session, admin, name="Renewal", severity="critical",
                                 expression="days_to_renewal < 60", actions=ACTIONS)  # fmt: skip
    few = renewing(csm, 2)
    two = statements(session, connection, lambda: playbooks.evaluate_rules(session, DAY))
    session.execute(HealthAlert.__table__.update().values(status="closed"))
    renewing(csm, 18)
    twenty = statements(session, connection, lambda: playbooks.evaluate_rules(session, DAY))
    assert twenty == two
    assert count(session, AlertFiring, AlertFiring.rule_id == rule.id) == 2 + 20
    org = few[0]
    assert count(session, CsTask, CsTask.organization_id == org.id) == 2  # one per firing
    # one notification per person and rule per run, naming how many accounts
    for person in (csm, admin):
        told = session.scalars(
            select(Notification.message)
            .where(Notification.user_id == person.id)
            .order_by(Notification.id)
        ).all()
        assert len(told) == 2
        assert told[0].startswith("Alert “Renewal” for 2 accounts: ")
        assert told[1].startswith("Alert “Renewal” for 20 accounts: ") and told[1].endswith("…")
    assert count(session, Activity, Activity.verb == "cs.alert_raised") == 22
    assert count(session, AccountTag, AccountTag.organization_id == org.id) == 1


def test_each_firing_records_its_own_task_and_a_shared_tag_once(session):
    admin, csm = staff(Role.VENDOR_ADMIN), staff(Role.CSM)
    first = playbooks.create_rule(
        session,
        admin,
        name="Renewal",
        expression="arr > 1000",
        actions=[{"type": "task"}, {"type": "tag", "tag": "watch"}],
    )
    second = playbooks.create_rule(
        session,
        admin,
        name="Soon",
        expression="days_to_renewal < 60",
        actions=[{"type": "task"}, {"type": "tag", "tag": "watch"}],
    )
    (org,) = renewing(csm, 1)
    assert playbooks.evaluate_rules(session, DAY) == 2
    firings = {f.rule_id: f for f in session.scalars(select(AlertFiring))}
    tasks = {t.details["rule_id"]: t for t in session.scalars(select(CsTask))}
    for rule in (first, second):
        alert = session.scalar(select(HealthAlert).where(HealthAlert.rule_id == rule.id))
        task = tasks[rule.id]
        assert (task.source_id, task.assignee_id) == (alert.id, csm.id)
        assert firings[rule.id].alert_id == alert.id
        assert firings[rule.id].actions[0] == {"type": "task", "task_id": task.id,
                                               "assignee_id": csm.id}  # fmt: skip
    assert [firings[r.id].actions[1]["added"] for r in (first, second)] == [True, False]
    assert count(session, AccountTag, AccountTag.organization_id == org.id) == 1


def test_recompute_twice_a_day_keeps_unchanged_snapshots(session):
    org = OrganizationFactory()
    AccountFactory(organization_id=org.id)
    for days_ago, value in ((40, 100), (5, 120)):
        UsageFactory(organization_id=org.id, day=DAY - timedelta(days=days_ago), value=value)
    service.recompute(session, DAY)
    first = session.scalar(select(HealthSnapshot).where(HealthSnapshot.organization_id == org.id))
    stamp, score = first.computed_at, first.score
    service.recompute(session, DAY)
    session.expire_all()
    again = session.scalar(select(HealthSnapshot).where(HealthSnapshot.organization_id == org.id))
    assert (again.score, again.computed_at) == (score, stamp)
    UsageFactory(organization_id=org.id, day=DAY - timedelta(days=45), value=900)  # falls
    service.recompute(session, DAY)
    session.expire_all()
    changed = session.scalar(select(HealthSnapshot).where(HealthSnapshot.organization_id == org.id))
    assert changed.score != score and count(session, HealthSnapshot) == 1


def test_a_rerun_sends_only_the_snapshots_that_changed(session, connection):
    orgs = [OrganizationFactory() for _ in range(3)]
    for org in orgs:
        AccountFactory(organization_id=org.id)
        UsageFactory(organization_id=org.id, day=DAY - timedelta(days=40), value=100)
        UsageFactory(organization_id=org.id, day=DAY - timedelta(days=5), value=120 + org.id)
    service.recompute(session, DAY)

    def digests() -> dict[int, str]:
        session.expire_all()
        return dict(
            session.execute(
                select(HealthSnapshot.organization_id, HealthSnapshot.computed_digest)
            ).all()
        )

    def rerun_sends() -> str:
        """The parameters of every snapshot write, as text (each row carries its digest)."""
        sent: list[str] = []

        def listener(conn, cursor, statement, parameters, context, executemany):
            if "INTO cs_health_snapshots" in statement:
                sent.append(repr(parameters))

        event.listen(connection, "before_cursor_execute", listener)
        try:
            service.recompute(session, DAY)
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        return "".join(sent)

    before = digests()
    assert len(set(before.values())) == 3 and rerun_sends() == ""
    UsageFactory(organization_id=orgs[1].id, day=DAY - timedelta(days=3), value=5000)
    sent = rerun_sends()
    after = digests()
    assert after[orgs[1].id] != before[orgs[1].id] and after[orgs[1].id] in sent
    assert [after[o.id] in sent for o in (orgs[0], orgs[2])] == [False, False]
    assert rerun_sends() == ""  # the stored digest is the one a rerun computes


def test_the_cycle_collector_is_paused_for_a_recompute_and_back_after(session, monkeypatch):
    import gc

    from cs_metrics import signals

    org = OrganizationFactory()
    AccountFactory(organization_id=org.id)
    seen: list[bool] = []
    collect = signals.collect
    monkeypatch.setattr(
        signals, "collect", lambda *a: (seen.append(gc.isenabled()), collect(*a))[1]
    )
    assert gc.isenabled()
    service.recompute(session, DAY)
    assert seen == [False] and gc.isenabled()
    with pytest.raises(RuntimeError):  # a failed run leaves it as it found it too
        monkeypatch.setattr(signals, "collect", lambda *a: (_ for _ in ()).throw(RuntimeError))
        service.recompute(session, DAY)
    assert gc.isenabled()
