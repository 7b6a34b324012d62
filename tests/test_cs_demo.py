"""The customer-success demo: seeded files in the import formats, a load that shows every band
and the data behind every default alert, and that can run twice."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cs_metrics import demo, service
from cs_metrics.models import (
    AccountProfile,
    AlertRule,
    HealthAlert,
    HealthSnapshot,
    Invoice,
    NpsResponse,
    Ticket,
    UsageEvent,
)
from portal.cli import cli
from portal.core.identity import Role, User

TODAY = date(2026, 11, 26)
N = 40


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def loaded(app, session):
    with app.app_context():
        result = demo.load(app.extensions["cocreate_sessionmaker"], N, today=TODAY)
    session.expire_all()
    return result


def test_generation_is_seeded_and_covers_every_story():
    first, again = demo.generate(N, today=TODAY), demo.generate(N, today=TODAY)
    assert all(first.csv_bytes(k) == again.csv_bytes(k) for k in demo.FILES)
    other = demo.generate(N, seed=7, today=TODAY)
    assert other.csv_bytes("usage_events") != first.csv_bytes("usage_events")
    assert {a.story for a in first.accounts} == set(demo.STORIES)
    assert [a.external_id for a in first.accounts[:5]] == [
        "acme", "huaxin", "globex", "initech", "chenguang",
    ]  # fmt: skip


def test_demo_csv_files_import_cleanly_through_the_service(app, session, tmp_path):
    result = CliRunner().invoke(
        cli, ["demo", "csv", "--accounts", "25", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(demo.FILES.values())
    with app.app_context():
        demo.ensure_csms(session, demo.csm_count(25))
        session.commit()
        for kind, name in demo.FILES.items():
            data = (tmp_path / name).read_bytes()
            job = service.queue_import(session, kind, name, io.BytesIO(data))
            session.commit()
            finished = service.run_import(app.extensions["cocreate_sessionmaker"], job.id)
            assert (finished.status, finished.error_count) == ("done", 0), finished.report
            assert finished.rows_done == finished.rows_total == data.count(b"\n") - 1
    assert count(session, AccountProfile) == 25
    assert count(session, AccountProfile, AccountProfile.csm_id.is_(None)) == 1  # unassigned


def test_load_shows_every_band_and_the_alert_patterns(loaded, session):
    assert set(loaded.bands) == {"green", "yellow", "red"}
    csms = session.scalars(select(User).where(User.email.in_(loaded.csms))).all()
    assert len(csms) == demo.csm_count(N) and all(u.has_role(Role.CSM) for u in csms)
    latest = session.scalars(select(HealthSnapshot.effective_band).where(
        HealthSnapshot.day == TODAY)).all()  # fmt: skip
    assert {"green", "yellow", "red"} <= set(latest)
    # the default alert rules that need no community activity all fire somewhere
    fired = set(session.scalars(
        select(AlertRule.key).join(HealthAlert, HealthAlert.rule_id == AlertRule.id)
    ))  # fmt: skip
    assert fired >= {
        "usage_or_purchases_down", "overdue_no_orders", "big_order_low_rating", "health_change",
    }  # fmt: skip
    # usage down two 30-day windows in a row for a declining account
    declining = session.scalar(
        select(AccountProfile.organization_id).where(AccountProfile.external_id == "globex")
    )

    def usage(days_back: int) -> float:
        return session.scalar(
            select(func.sum(UsageEvent.value)).where(
                UsageEvent.organization_id == declining,
                UsageEvent.day > TODAY - timedelta(days=days_back),
                UsageEvent.day <= TODAY - timedelta(days=days_back - 30),
            )
        )

    assert usage(90) > usage(60) > usage(30)
    # an invoice overdue more than 30 days and no order in three months
    overdue = session.scalar(
        select(AccountProfile.organization_id).where(AccountProfile.external_id == "initech")
    )
    unpaid = session.scalars(select(Invoice).where(
        Invoice.organization_id == overdue, Invoice.paid_date.is_(None))).all()  # fmt: skip
    assert any(i.due_date < TODAY - timedelta(days=30) for i in unpaid)
    last_order = session.scalar(
        select(func.max(Invoice.order_date)).where(Invoice.organization_id == overdue)
    )
    assert last_order < TODAY - timedelta(days=90)
    # an order over 500,000 from an account whose support ratings average below 4
    big = session.scalars(select(Invoice.organization_id).where(Invoice.amount > 500_000)).all()
    assert big
    ratings = session.scalar(select(func.avg(Ticket.csat)).where(Ticket.organization_id == big[0]))
    assert ratings < 4
    # detractors and promoters
    assert count(session, NpsResponse, NpsResponse.score <= 6) > 0
    assert count(session, NpsResponse, NpsResponse.score >= 9) > 0


def test_load_twice_is_idempotent(app, session, loaded):
    tables = (AccountProfile, UsageEvent, Ticket, Invoice, NpsResponse, HealthSnapshot, User)
    before = {t.__name__: count(session, t) for t in tables}
    alerts = count(session, HealthAlert)
    with app.app_context():
        again = demo.load(app.extensions["cocreate_sessionmaker"], N, today=TODAY)
    assert {t.__name__: count(session, t) for t in tables} == before
    assert count(session, HealthAlert) == alerts
    assert again.bands == loaded.bands
