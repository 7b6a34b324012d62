"""Customer-success data layer: imports into the database, recompute, overrides, alerts,
health models, permissions and the ``metrics`` CLI."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import object_session

from cs_metrics import service
from cs_metrics.cli import metrics_group
from cs_metrics.models import (
    AccountProfile,
    AlertRule,
    Contact,
    CsTask,
    HealthAlert,
    HealthSnapshot,
    ImportJob,
    Invoice,
    JobStatus,
    NpsResponse,
    RecomputeRun,
    Ticket,
    UsageEvent,
)
from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.errors import DomainError, PermissionDenied
from portal.core.identity import Organization, Role
from tests import cs_factories
from tests.cs_factories import AccountFactory, InvoiceFactory, SnapshotFactory, UsageFactory
from tests.factories import OrganizationFactory, UserFactory, staff

DAY = date(2026, 3, 31)
ACCOUNTS_CSV = (
    "external_id,name,arr,plan,renewal_date,csm_email,region\n"
    'ACME-1,Acme Corp,"120,000.50",enterprise,2026-09-30,csm@vendor.example,EMEA\n'
    "GLOBEX,Globex,80000,pro,2026/12/01,,APAC\n"
)


@pytest.fixture
def csm(session):
    return staff(Role.CSM, email="csm@vendor.example")


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def do_import(app, session, kind, text, *, encoding="utf-8", **options) -> ImportJob:
    """Queue and run an import like the task does; the test transaction holds the result."""
    data = text.encode(encoding) if isinstance(text, str) else text
    with app.app_context():
        job = service.queue_import(session, kind, f"{kind}.csv", io.BytesIO(data), **options)
        session.commit()
        finished = service.run_import(app.extensions["cocreate_sessionmaker"], job.id)
    session.expire_all()
    return finished


def profile(session, external_id) -> AccountProfile:
    session.expire_all()
    return session.scalar(select(AccountProfile).where(AccountProfile.external_id == external_id))


# --- imports ------------------------------------------------------------------------------


def test_accounts_import_creates_organizations_and_is_idempotent(app, session, csm):
    job = do_import(app, session, "accounts", ACCOUNTS_CSV)
    assert (job.status, job.rows_total, job.rows_valid, job.rows_done) == ("done", 2, 2, 2)
    acme = profile(session, "ACME-1")
    assert acme.arr == Decimal("120000.50") and acme.csm_id == csm.id
    assert acme.renewal_date == date(2026, 9, 30) and acme.region == "EMEA"
    org = session.get(Organization, acme.organization_id)
    assert (org.name, org.slug, org.kind) == ("Acme Corp", "acme-1", "customer")
    stamp = acme.updated_at

    again = do_import(app, session, "accounts", ACCOUNTS_CSV)
    assert again.status == "done"
    assert count(session, AccountProfile) == 2
    assert count(session, Organization, Organization.slug.in_(["acme-1", "globex"])) == 2
    assert profile(session, "ACME-1").updated_at == stamp  # nothing changed, nothing written


def test_accounts_import_updates_only_the_columns_in_the_file(app, session, csm):
    do_import(app, session, "accounts", ACCOUNTS_CSV)
    job = do_import(app, session, "accounts", "external_id,name,region\nACME-1,Acme Inc,AMER\n")
    assert job.status == "done"
    acme = profile(session, "ACME-1")
    assert acme.region == "AMER"
    assert acme.arr == Decimal("120000.50") and acme.plan == "enterprise"  # kept
    assert acme.csm_id == csm.id
    assert session.get(Organization, acme.organization_id).name == "Acme Inc"


def test_accounts_import_links_an_existing_customer_org_by_slug(app, session):
    demo = OrganizationFactory(slug="acme-1", name="Acme (demo)")
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme Corp\n")
    assert profile(session, "ACME-1").organization_id == demo.id


def test_gbk_file_with_chinese_headers_is_imported(app, session):
    text = '客户编号,客户名称,年度经常性收入,区域\nCN-001,北京示例科技有限公司,"1,000,000",华北\n'
    job = do_import(app, session, "accounts", text, encoding="gbk")
    assert job.status == "done" and job.report["encoding"] == "gb18030"
    cn = profile(session, "CN-001")
    assert cn.arr == Decimal("1000000") and cn.region == "华北"
    assert session.get(Organization, cn.organization_id).name == "北京示例科技有限公司"


def test_usage_with_bom_upserts_and_later_duplicate_row_wins(app, session):
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    text = (
        "\ufeffaccount_id,day,metric,value\n"
        "ACME-1,2026-03-01,logins,5\n"
        "ACME-1,2026-03-01,logins,7\n"
        'ACME-1,03/02/2026,logins,"1,200"\n'
    )
    job = do_import(app, session, "usage_events", text)
    assert job.status == "done" and job.report["encoding"] == "utf-8-sig"
    session.expire_all()
    values = dict(session.execute(select(UsageEvent.day, UsageEvent.value)).all())
    assert values == {date(2026, 3, 1): 7.0, date(2026, 3, 2): 1200.0}
    do_import(app, session, "usage_events", text)
    assert count(session, UsageEvent) == 2


def test_a_later_duplicate_in_another_batch_still_wins(app, session, monkeypatch):
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    monkeypatch.setattr(service, "BATCH_SIZE", 2)
    text = (
        "account_id,day,metric,value\n"
        "ACME-1,2026-03-01,logins,1\n"
        "ACME-1,2026-03-02,logins,2\n"
        "ACME-1,2026-03-03,logins,3\n"
        "ACME-1,2026-03-01,logins,9\n"
    )
    assert do_import(app, session, "usage_events", text).status == "done"
    values = dict(session.execute(select(UsageEvent.day, UsageEvent.value)).all())
    assert values[date(2026, 3, 1)] == 9.0 and len(values) == 3


def test_awkward_text_survives_the_bulk_load_unchanged(app, session):
    """Tabs, newlines, backslashes and a literal \\N travel through COPY text format intact."""
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    comment = 'tab\there, "quoted"\nnew line, back\\slash, \\N'
    nps = (
        "response_id,account_id,email,score,responded_at,comment\n"
        f'R1,ACME-1,a@acme.example,8,2026-03-05,"{comment.replace(chr(34), chr(34) * 2)}"\n'
    )
    assert do_import(app, session, "nps_responses", nps).status == "done"
    assert session.scalar(select(NpsResponse.comment)) == comment


def test_a_domain_too_long_is_a_row_error_not_a_failed_job(app, session):
    long_domain = ("a" * 60 + ".") * 5 + "com"
    job = do_import(app, session, "accounts", f"external_id,name,domain\nX-1,X,{long_domain}\n")
    assert job.status == "failed" and job.error_count == 1
    assert job.report["errors"][0]["column"] == "domain"
    assert count(session, AccountProfile) == 0


def test_header_error_imports_nothing(app, session):
    job = do_import(app, session, "accounts", "name,arr\nAcme,100\n")
    assert job.status == "failed"
    assert job.report["file_error"]["code"] == "missing_columns"
    assert count(session, AccountProfile) == 0
    assert b"missing_columns" in service.import_errors_csv(job)


def test_unknown_account_id_rejects_the_whole_file_with_a_row_report(app, session):
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    text = (
        "external_id,account_id,email,role\n"
        "C1,ACME-1,a@acme.example,champion\n"
        "C2,NOPE,b@nope.example,user\n"
    )
    job = do_import(app, session, "contacts", text)
    assert job.status == "failed" and job.error_count == 1
    (error,) = job.report["errors"]
    assert (error["line"], error["column"], error["code"]) == (3, "account_external_id",
                                                               "unknown_account")  # fmt: skip
    assert count(session, Contact) == 0  # the valid row was not imported either
    assert b"unknown_account" in service.import_errors_csv(job)


def test_skip_invalid_imports_the_valid_rows(app, session):
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    text = (
        "external_id,account_id,amount,order_date,due_date,paid_date\n"
        'I1,ACME-1,"1,000.00",2026-01-05,2026-02-04,\n'
        "I2,NOPE,10,2026-01-05,,\n"
        "I3,ACME-1,-5,2026-01-05,,\n"
        "I4,ACME-1,250,2026-02-01,2026-03-01,2026-02-20\n"
    )
    job = do_import(app, session, "invoices", text, skip_invalid=True)
    assert job.status == "done" and job.error_count == 2 and job.rows_done == 2
    session.expire_all()
    assert set(session.scalars(select(Invoice.external_id))) == {"I1", "I4"}
    assert session.scalar(select(Invoice.amount).where(Invoice.external_id == "I1")) == Decimal(
        "1000.00"
    )


def test_tickets_and_nps_import(app, session):
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    tickets = (
        "ticket_id,account_id,opened_at,closed_at,severity,csat\n"
        "T1,ACME-1,2026-03-01 10:00,,urgent,\n"
        "T2,ACME-1,2026-03-02T09:00:00Z,2026-03-03T09:00:00Z,3,5\n"
    )
    assert do_import(app, session, "tickets", tickets).status == "done"
    session.expire_all()
    t1 = session.scalar(select(Ticket).where(Ticket.external_id == "T1"))
    assert t1.severity == 1 and t1.closed_at is None
    assert t1.opened_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    nps = "response_id,account_id,email,score,responded_at,comment\nR1,ACME-1,X@Acme.example,9,2026-03-05,great\n"
    assert do_import(app, session, "nps_responses", nps).status == "done"
    session.expire_all()
    response = session.scalar(select(NpsResponse))
    assert (response.score, response.contact_email, response.source) == (
        9, "x@acme.example", "import",
    )  # fmt: skip


def test_imported_nps_opens_loop_and_referral_tasks_for_the_csm_once(app, session, csm):
    do_import(app, session, "accounts", ACCOUNTS_CSV)
    recent = (utcnow() - timedelta(days=1)).date().isoformat()
    nps = (
        "response_id,account_id,email,score,responded_at,comment\n"
        f"R1,ACME-1,a@acme.example,3,{recent},slow reports\n"
        f"R2,ACME-1,b@acme.example,10,{recent},\n"
    )
    assert do_import(app, session, "nps_responses", nps).status == "done"
    tasks = session.scalars(select(CsTask).order_by(CsTask.kind)).all()
    assert [(t.kind, t.assignee_id, t.source_type) for t in tasks] == [
        ("close_the_loop", csm.id, "nps_response"),  # the detractor
        ("referral_ask", csm.id, "nps_response"),  # the promoter may be asked for a referral
    ]
    do_import(app, session, "nps_responses", nps)  # the same file again: no second task
    assert count(session, CsTask) == 2


def test_a_database_error_mid_import_rolls_everything_back(app, session, monkeypatch):
    do_import(app, session, "accounts", "external_id,name\nACME-1,Acme\n")
    monkeypatch.setattr(service, "BATCH_SIZE", 2)
    real = service._import_batch
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("INSERT", {}, Exception("disk full"))
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "_import_batch", failing)
    rows = "".join(f"ACME-1,2026-03-{d:02d},logins,{d}\n" for d in range(1, 6))
    job = do_import(app, session, "usage_events", "account_id,day,metric,value\n" + rows)
    assert job.status == "failed" and job.report["file_error"]["code"] == "database_error"
    assert len(calls) == 2
    assert count(session, UsageEvent) == 0  # the first batch was rolled back too


def test_start_import_is_for_cs_staff_and_runs_after_commit(app, session, csm):
    customer = UserFactory()
    with app.app_context():
        with pytest.raises(PermissionDenied):
            service.start_import(session, customer, "accounts", "a.csv", io.BytesIO(b"x"))
        job = service.start_import(
            session, csm, "accounts", "a.csv", io.BytesIO(ACCOUNTS_CSV.encode())
        )
        assert job.status == "queued"
        assert service.import_path(job.id).exists()
        session.commit()  # the eager task runs now
    session.expire_all()
    assert session.get(ImportJob, job.id).status == "done"
    assert profile(session, "GLOBEX") is not None


def test_oversized_upload_is_refused_before_parsing(app, session):
    with app.app_context(), pytest.raises(DomainError) as raised:
        service.queue_import(
            session, "accounts", "big.csv", io.BytesIO(b"x" * 3000), max_bytes=1000
        )
    assert raised.value.field == "file"


# --- recompute ----------------------------------------------------------------------------


def account(session, **kwargs) -> Organization:
    org = OrganizationFactory(**kwargs)
    AccountFactory(organization_id=org.id)
    return org


def usage(org, previous, current) -> None:
    UsageFactory(organization_id=org.id, day=DAY - timedelta(days=40), value=previous)
    UsageFactory(organization_id=org.id, day=DAY - timedelta(days=3), value=current)


def snapshot(session, org) -> HealthSnapshot:
    session.expire_all()
    return session.scalar(
        select(HealthSnapshot).where(
            HealthSnapshot.organization_id == org.id, HealthSnapshot.day == DAY
        )
    )


def components(snap) -> dict[str, dict]:
    stored = service.snapshot_components(object_session(snap), snap)
    return {c["name"]: c for c in stored}


def test_recompute_scores_known_bands_and_explains_with_renormalized_weights(session):
    yellow = account(session)  # flat usage, one paid order: 84.17
    usage(yellow, 100, 100)
    InvoiceFactory(organization_id=yellow.id, order_date=DAY - timedelta(days=20),
                   due_date=DAY - timedelta(days=5), paid_date=DAY - timedelta(days=6))  # fmt: skip
    green = account(session)  # +10% usage, two orders: 100
    usage(green, 100, 110)
    for days in (20, 200):
        InvoiceFactory(organization_id=green.id, order_date=DAY - timedelta(days=days))
    red = account(session)  # usage halved, invoice 70 days overdue, no order this year: 5
    usage(red, 100, 50)
    InvoiceFactory(organization_id=red.id, order_date=DAY - timedelta(days=400),
                   due_date=DAY - timedelta(days=70))  # fmt: skip
    empty = account(session)

    result = service.recompute(session, DAY)
    assert result.accounts >= 4 and result.no_data >= 1

    snap = snapshot(session, yellow)
    assert snap.score == pytest.approx((20 * 250 / 3 + 10 * 100 + 10 * 70) / 40)
    assert (snap.band, snap.complete, snap.model_version) == ("yellow", False, "default-1")
    parts = components(snap)
    assert parts["usage_trend"]["raw"] == pytest.approx(0.0)
    assert parts["usage_trend"]["share"] == pytest.approx(0.5)  # 20 of 40 present weight
    assert parts["usage_trend"]["configured_share"] == pytest.approx(0.2)
    assert parts["nps"]["missing"] and parts["nps"]["contribution"] == 0
    assert sum(c["contribution"] for c in parts.values()) == pytest.approx(snap.score)
    assert snap.effective_score == snap.score

    assert (snapshot(session, green).score, snapshot(session, green).band) == (100.0, "green")
    red_snap = snapshot(session, red)
    assert red_snap.score == pytest.approx(5.0) and red_snap.band == "red"
    assert components(red_snap)["payment_days_overdue"]["raw"] == 70
    empty_snap = snapshot(session, empty)
    assert empty_snap.score is None and empty_snap.band is None


def test_recompute_reads_the_activity_log_tickets_and_nps(session, csm):
    org = account(session)
    reader, _idle = UserFactory(organization=org), UserFactory(organization=org)
    t0 = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) - timedelta(days=2)

    def act(user, verb, minutes):
        session.add(Activity(actor_id=user.id, organization_id=org.id, verb=verb,
                             occurred_at=t0 + timedelta(minutes=minutes), data={}))  # fmt: skip

    act(reader, "search.performed", 0)
    act(reader, "article.helpful", 5)  # session 1 resolved by content
    act(reader, "search.performed", 120)
    act(reader, "question.asked", 130)  # session 2 ended in a question
    act(csm, "search.performed", 10)  # staff acting on the account are not its members
    cs_factories.TicketFactory(organization_id=org.id, severity=1, opened_at=t0)
    cs_factories.TicketFactory(organization_id=org.id, severity=3, csat=5, opened_at=t0,
                               closed_at=t0 + timedelta(hours=1))  # fmt: skip
    cs_factories.TicketFactory(organization_id=org.id, severity=2, csat=3, opened_at=t0,
                               closed_at=t0 + timedelta(hours=1))  # fmt: skip
    for score in (10, 9, 3):
        cs_factories.NpsFactory(organization_id=org.id, score=score, responded_at=t0)
    session.flush()

    service.recompute(session, DAY)
    raw = {name: c["raw"] for name, c in components(snapshot(session, org)).items()}
    assert raw["active_seats"] == pytest.approx(0.5)  # 1 of 2 members
    assert raw["community_engagement"] == pytest.approx(1.0 + 0.5)  # 1 question, 1 helpful
    assert raw["self_service_rate"] == pytest.approx(0.5)
    assert raw["severe_tickets"] == 1
    assert raw["csat"] == pytest.approx(50.0)
    assert raw["nps"] == pytest.approx(100 * (2 - 1) / 3)


def today_snapshot(session, org) -> HealthSnapshot:
    session.expire_all()
    return session.scalar(
        select(HealthSnapshot).where(
            HealthSnapshot.organization_id == org.id, HealthSnapshot.day == utcnow().date()
        )
    )


def test_override_survives_recompute_and_expires(session, csm):
    org = account(session)
    UsageFactory(organization_id=org.id, day=utcnow().date() - timedelta(days=3), value=100)
    service.recompute(session)
    computed = today_snapshot(session, org).score
    expiry = utcnow() + timedelta(days=30)
    service.set_override(session, csm, org.id, 95, "Renewal signed yesterday", expiry)
    assert today_snapshot(session, org).effective_score == 95  # shown at once

    service.recompute(session)
    snap = today_snapshot(session, org)
    assert (snap.score, snap.effective_score, snap.effective_band) == (computed, 95.0, "green")
    explained = service.explain(session, org.id)
    assert explained["override"]["reason"] == "Renewal signed yesterday"
    assert explained["latest"]["components"] and explained["history"][-1]["overridden"]

    override = service.active_override(session, org.id)
    override.expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    service.recompute(session)
    snap = today_snapshot(session, org)
    assert snap.effective_score == computed and snap.override_id is None


def test_a_past_day_counts_only_the_override_in_force_on_that_day(session, csm):
    org = account(session)
    today = utcnow().date()
    past = today - timedelta(days=14)
    UsageFactory(organization_id=org.id, day=past - timedelta(days=40), value=100)
    UsageFactory(organization_id=org.id, day=past - timedelta(days=3), value=100)
    service.recompute(session, past)
    computed = session.scalar(select(HealthSnapshot.score).where(HealthSnapshot.day == past))
    assert computed is not None and computed != 95
    # Set today: not in force two weeks ago, neither when set nor when that day is recomputed.
    service.set_override(session, csm, org.id, 95, "Renewal signed", utcnow() + timedelta(days=18))
    service.recompute(session, past)
    session.expire_all()
    snap = session.scalar(select(HealthSnapshot).where(HealthSnapshot.day == past))
    assert (snap.effective_score, snap.override_id) == (computed, None)
    assert not service.explain(session, org.id)["history"][0]["overridden"]

    # Created before the day and revoked after it: it counted then.
    override = service.active_override(session, org.id)
    override.created_at = utcnow() - timedelta(days=20)
    session.flush()
    service.revoke_override(session, csm, org.id)
    service.recompute(session, past)
    session.expire_all()
    snap = session.scalar(select(HealthSnapshot).where(HealthSnapshot.day == past))
    assert (snap.effective_score, snap.override_id) == (95.0, override.id)
    service.recompute(session)  # revoked: today is the computed score
    assert today_snapshot(session, org).override_id is None

    # Revoked or expired before the day: it no longer counts.
    for end in ("revoked_at", "expires_at"):
        override.revoked_at = None
        override.expires_at = utcnow() + timedelta(days=10)
        setattr(override, end, datetime.combine(past, datetime.min.time(), UTC))
        session.flush()
        service.recompute(session, past)
        session.expire_all()
        snap = session.scalar(select(HealthSnapshot).where(HealthSnapshot.day == past))
        assert (snap.effective_score, snap.override_id) == (computed, None), end


def test_override_rules_and_permissions(session, csm):
    org = account(session)
    later = utcnow() + timedelta(days=10)
    with pytest.raises(PermissionDenied):
        service.set_override(session, UserFactory(organization=org), org.id, 90, "why", later)
    with pytest.raises(PermissionDenied):
        service.set_override(session, staff(Role.PRODUCT_MANAGER), org.id, 90, "why", later)
    with pytest.raises(DomainError) as raised:
        service.set_override(session, csm, org.id, 90, "  ", later)
    assert raised.value.field == "reason"
    with pytest.raises(DomainError) as raised:
        service.set_override(session, csm, org.id, 90, "why", utcnow() + timedelta(days=181))
    assert raised.value.field == "expires_at"
    with pytest.raises(DomainError) as raised:
        service.set_override(session, csm, org.id, 101, "why", later)
    assert raised.value.field == "score"


def test_a_fifteen_point_drop_raises_one_rule_alert(session):
    # The default rule "health band change or 15-point drop" replaced the hard-coded alerts.
    org = account(session)
    usage(org, 100, 100)  # scores 84.17 today (yellow)
    InvoiceFactory(organization_id=org.id, order_date=DAY - timedelta(days=20))
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=10), score=100.0)
    result = service.recompute(session, DAY)
    session.expire_all()
    rule = session.scalar(select(AlertRule).where(AlertRule.key == "health_change"))
    (alert,) = session.scalars(select(HealthAlert).where(HealthAlert.organization_id == org.id))
    assert result.alerts_raised == 1
    assert (alert.kind, alert.rule_id, alert.status) == (f"rule:{rule.id}", rule.id, "open")
    assert alert.details["metrics"]["band_changed"] is True
    assert alert.details["metrics"]["health_drop_30d"] == pytest.approx(100 - 84.1666, abs=0.01)
    assert count(session, Activity, Activity.verb == "cs.alert_raised",
                 Activity.organization_id == org.id) == 1  # fmt: skip

    again = service.recompute(session, DAY)  # again: still one open alert for the rule
    assert again.alerts_raised == 0
    assert count(session, HealthAlert, HealthAlert.organization_id == org.id) == 1


def test_no_alert_for_a_small_dip(session):
    org = account(session)
    usage(org, 100, 100)
    InvoiceFactory(organization_id=org.id, order_date=DAY - timedelta(days=20))
    SnapshotFactory(organization_id=org.id, day=DAY - timedelta(days=10), score=80.0,
                    band="yellow")  # fmt: skip
    service.recompute(session, DAY)
    assert count(session, HealthAlert, HealthAlert.organization_id == org.id) == 0


def test_health_model_versions(session, csm):
    admin = staff(Role.VENDOR_ADMIN)
    config = {
        "components": [
            {"name": "usage_trend", "weight": 3, "scale": {"type": "linear", "at_0": -50,
                                                            "at_100": 50}},
            {"name": "payment_days_overdue", "weight": 1,
             "scale": {"type": "thresholds", "steps": [[0, 100], [30, 0]]}},
        ],
        "bands": {"green_min": 80, "yellow_min": 60},
    }  # fmt: skip
    with pytest.raises(PermissionDenied):
        service.save_health_model(session, csm, config)
    zero = {**config, "components": [{**c, "weight": 0} for c in config["components"]]}
    with pytest.raises(DomainError) as raised:
        service.save_health_model(session, admin, zero)
    assert raised.value.field == "components[0].weight"
    bad_scale = {"components": [{"name": "x", "weight": 1, "scale": {"type": "cubic"}}]}
    with pytest.raises(DomainError) as raised:
        service.save_health_model(session, admin, bad_scale)
    assert raised.value.field == "components[0].scale.type"

    unknown = {"components": [{**config["components"][0], "name": "foo_metric"}]}
    with pytest.raises(DomainError) as raised:
        service.save_health_model(session, admin, unknown)
    assert raised.value.field == "components[0].name"
    assert "foo_metric" in raised.value.message and "usage_trend" in raised.value.message

    saved = service.save_health_model(session, admin, config)
    assert saved.version == "v1" and saved.active
    assert service.model_to_config(service.active_model(session)) == service.model_to_config(
        service.model_from_config("v1", config)
    )
    org = account(session)
    usage(org, 100, 100)
    service.recompute(session, DAY)
    snap = snapshot(session, org)
    assert snap.model_version == "v1"
    assert snap.score == pytest.approx(50.0) and snap.band == "red"  # usage alone: 50 < 60
    changed = {**config, "components": [{**config["components"][0], "weight": 1}]}
    assert service.save_health_model(session, admin, changed).version == "v2"
    assert service.active_model(session).version == "v2"
    # The day's snapshot is still explained by the model it was scored with (v1): the
    # snapshot keeps raw values and scores, the names and weights come from its version.
    assert isinstance(snapshot(session, org).components[0], list)
    parts = components(snapshot(session, org))
    assert list(parts) == ["usage_trend", "payment_days_overdue"]
    assert parts["usage_trend"]["weight"] == 3 and parts["usage_trend"]["configured_share"] == 0.75
    assert parts["usage_trend"]["contribution"] == pytest.approx(50.0)
    assert parts["payment_days_overdue"]["missing"]


def test_a_snapshot_written_with_the_whole_explanation_is_still_explained(session):
    org = account(session)
    whole = [{"name": "usage_trend", "raw": 5.0, "score": 60.0, "weight": 20.0,
              "configured_share": 0.2, "share": 1.0, "contribution": 60.0, "missing": False}]  # fmt: skip
    SnapshotFactory(organization_id=org.id, day=DAY, score=60.0, band="red", components=whole)
    assert service.explain(session, org.id)["latest"]["components"] == whole


def test_an_nps_response_dated_in_the_future_is_refused_and_opens_no_task(app, session, csm):
    do_import(app, session, "accounts", ACCOUNTS_CSV)
    text = (
        "external_id,account_external_id,score,responded_at\n"
        f"N1,ACME-1,2,{utcnow().date().isoformat()}\n"
        "N2,ACME-1,1,2099-01-01\n"
    )
    job = do_import(app, session, "nps_responses", text)
    assert (job.status, job.error_count) == ("failed", 1)
    [error] = job.report["errors"]
    assert (error["line"], error["column"], error["code"]) == (3, "responded_at", "in_future")
    assert count(session, NpsResponse) == 0 and count(session, CsTask) == 0
    job = do_import(app, session, "nps_responses", text, skip_invalid=True)
    assert job.rows_done == 1 and count(session, NpsResponse) == 1
    assert session.scalar(select(func.max(CsTask.due_on))) < utcnow().date() + timedelta(days=30)


def test_an_import_reads_ambiguous_dates_in_the_order_the_column_proves(app, session, csm):
    do_import(app, session, "accounts", ACCOUNTS_CSV)
    text = (
        "account_external_id,day,metric,value\n"
        "ACME-1,06/11/2025,logins,1\nACME-1,11.08.2024,logins,2\nACME-1,13/01/2024,logins,3\n"
    )
    job = do_import(app, session, "usage_events", text)
    assert (job.status, job.rows_done, job.error_count) == ("done", 3, 0)
    days = session.execute(select(UsageEvent.value, UsageEvent.day).order_by(UsageEvent.value))
    assert [d for _v, d in days] == [date(2025, 11, 6), date(2024, 8, 11), date(2024, 1, 13)]
    assert [w["code"] for w in job.report["warnings"]] == ["date_order_from_file"]


def test_cli_import_summary_of_a_refused_file_and_of_one_without_rows(app, session, tmp_path):
    runner = app.test_cli_runner()
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("colour,size\nred,1\n")
    result = runner.invoke(metrics_group, ["import", "accounts", str(wrong)])
    assert result.exit_code != 0 and "refused: " in result.output
    assert "rows read" not in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("external_id,name\n")
    result = runner.invoke(metrics_group, ["import", "accounts", str(empty)])
    assert "done: the file has no data rows; nothing imported." in result.output


# --- CLI ----------------------------------------------------------------------------------


def test_cli_import_and_recompute(app, session, csm, tmp_path):
    good = tmp_path / "accounts.csv"
    good.write_text(ACCOUNTS_CSV, encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(metrics_group, ["import", "accounts", str(good)])
    assert result.exit_code == 0, result.output
    assert "done: 2 rows read, 2 valid, 2 imported, 0 errors." in result.output
    assert profile(session, "ACME-1") is not None

    bad = tmp_path / "contacts.csv"
    bad.write_text("external_id,account_id,email\nC1,NOPE,a@b.example\n", encoding="utf-8")
    result = runner.invoke(metrics_group, ["import", "contacts", str(bad)])
    assert result.exit_code == 1
    assert "line 2, account_external_id: no account has this id" in result.output
    assert count(session, Contact) == 0

    result = runner.invoke(metrics_group, ["import", "contacts", str(bad), "--skip-invalid"])
    assert result.exit_code == 0 and "0 imported, 1 errors" in result.output

    result = runner.invoke(metrics_group, ["recompute", "--day", DAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert f"{DAY}:" in result.output and "model default-1" in result.output
    session.expire_all()
    assert count(session, HealthSnapshot, HealthSnapshot.day == DAY) >= 2


# --- recompute runs ------------------------------------------------------------------------


def test_a_recompute_run_records_its_progress_and_outcome(app, session, csm):
    account(session, name="Acme")
    account(session, name="Globex")
    factory = app.extensions["cocreate_sessionmaker"]
    seen: list[tuple[int, int]] = []
    with app.app_context():
        run = service.queue_recompute(session, csm)
        session.commit()
        finished = service.run_recompute(factory, run.id, lambda d, t: seen.append((d, t)))
        again = service.run_recompute(factory, run.id)  # a task sent twice: nothing more
    assert finished.status == JobStatus.DONE and finished.requested_by_id == csm.id
    assert finished.accounts_done == finished.accounts_total == count(session, Organization,
        Organization.kind == "customer")  # fmt: skip
    assert seen[-1] == (finished.accounts_done, finished.accounts_done)
    assert finished.started_at <= finished.finished_at
    assert sum(finished.summary["bands"].values()) + finished.summary["no_data"] >= 2
    assert (again.status, again.finished_at) == (JobStatus.DONE, finished.finished_at)
    assert count(session, HealthSnapshot, HealthSnapshot.day == run.day) == finished.accounts_done
    assert service.recompute_runs(session) == (None, session.get(RecomputeRun, run.id))


def test_a_failed_run_says_so_and_the_next_request_starts_a_new_one(app, session, csm, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the signals query timed out")

    monkeypatch.setattr(service, "recompute", broken)
    factory = app.extensions["cocreate_sessionmaker"]
    with app.app_context():
        run = service.queue_recompute(session, csm)
        session.commit()
        with pytest.raises(RuntimeError):
            service.run_recompute(factory, run.id)
        session.expire_all()
        failed = session.get(RecomputeRun, run.id)
        assert failed.status == JobStatus.FAILED and failed.finished_at is not None
        assert failed.error == "RuntimeError: the signals query timed out"
        assert service.recompute_runs(session) == (None, failed)
        assert service.start_recompute(session, csm).id != run.id  # a new run, not the failed


def test_only_csms_and_vendor_admins_start_a_recompute(app, session):
    with app.app_context():
        for role in (Role.PRODUCT_MANAGER,):
            with pytest.raises(PermissionDenied):
                service.start_recompute(session, staff(role))
        with pytest.raises(PermissionDenied):
            service.start_recompute(session, UserFactory(roles=[Role.ORG_ADMIN]))
        assert service.start_recompute(session, staff(Role.VENDOR_ADMIN)).status == "queued"


def test_the_nightly_task_records_a_run_without_a_requester(app, session):
    from cs_metrics.tasks import recompute_task

    account(session, name="Acme")
    session.commit()
    with app.app_context():
        accounts = recompute_task.apply().get()
    run = session.scalars(select(RecomputeRun)).one()
    assert (run.status, run.requested_by_id, run.accounts_done) == ("done", None, accounts)
    assert accounts >= 1


def test_a_run_shows_its_progress_while_it_runs_on_postgresql(app, session, csm, monkeypatch):
    """The page polls the run's row: between scoring and the alerts, the accounts scored so far
    are already committed there (on SQLite only the start and the end are: see
    ``service._run_recompute``)."""
    account(session, name="Acme")
    account(session, name="Globex")
    factory = app.extensions["cocreate_sessionmaker"]
    seen: list[tuple[str, int, int]] = []
    raise_alerts = service._raise_alerts

    def meanwhile(*args, **kwargs):
        with factory() as other:
            row = other.get(RecomputeRun, run.id)
            seen.append((row.status, row.accounts_done, row.accounts_total))
        return raise_alerts(*args, **kwargs)

    monkeypatch.setattr(service, "_raise_alerts", meanwhile)
    with app.app_context():
        run = service.queue_recompute(session, csm)
        session.commit()
        service.run_recompute(factory, run.id)
    customers = count(session, Organization, Organization.kind == "customer")
    if session.get_bind().dialect.name == "postgresql":
        assert seen == [("running", customers, customers)]
    else:
        assert seen == [("running", 0, 0)]
