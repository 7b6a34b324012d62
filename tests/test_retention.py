"""Retention: expired activity, search log and sent mail are deleted in batches by the task
and by ``cocreate privacy purge``; recent rows, unsent mail and "keep forever" stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.mail import OutboxMessage
from portal.privacy import retention
from portal.privacy.retention_tasks import BEAT_SCHEDULE, privacy_group, purge_expired
from portal.search.models import SearchLogEntry
from tests.factories import OrganizationFactory, UserFactory


@pytest.fixture
def aged(session):
    """Per kind, 3 rows past the default retention and 2 recent ones, plus unsent old mail."""
    now = utcnow()
    org = OrganizationFactory()
    user = UserFactory(organization=org)
    for days in (800, 760, 731, 10, 0):
        session.add(
            Activity(
                actor_id=user.id,
                organization_id=org.id,
                verb="question.asked",
                occurred_at=now - timedelta(days=days),
            )
        )
    for days in (400, 200, 181, 179, 1):
        session.add(
            SearchLogEntry(
                user_id=user.id, query="q", normalized="q", searched_at=now - timedelta(days=days)
            )
        )
    for days in (300, 100, 91, 89, 2):
        stamp = now - timedelta(days=days)
        session.add(
            OutboxMessage(recipient="a@example.com", subject="s", body="b", created_at=stamp,
                          sent_at=stamp)
        )  # fmt: skip
    session.add(
        OutboxMessage(recipient="b@example.com", subject="unsent", body="b",
                      created_at=now - timedelta(days=400))
    )  # fmt: skip
    session.flush()
    return user


def counts(session) -> dict[str, int]:
    session.expire_all()
    return {
        "activity": session.scalar(select(func.count()).select_from(Activity)),
        "search_log": session.scalar(select(func.count()).select_from(SearchLogEntry)),
        "outbox": session.scalar(select(func.count()).select_from(OutboxMessage)),
    }


def test_defaults_and_bad_values(app_ctx):
    assert retention.retention_days({}) == {"activity": 730, "search_log": 180, "outbox": 90}
    assert retention.retention_days(
        {
            "RETENTION_ACTIVITY_DAYS": "x",
            "RETENTION_SEARCH_LOG_DAYS": -5,
            "RETENTION_OUTBOX_DAYS": 0,
        }
    ) == {"activity": 730, "search_log": 180, "outbox": 0}


def test_purge_deletes_only_expired_rows_in_batches(app_ctx, session, aged):
    batches: list[tuple[str, int]] = []
    result = retention.purge(
        session, {}, batch_size=2, after_batch=lambda kind, done: batches.append((kind, done))
    )
    assert result == {"activity": 3, "search_log": 3, "outbox": 3}
    assert counts(session) == {"activity": 2, "search_log": 2, "outbox": 3}  # 2 recent + unsent
    assert ("activity", 2) in batches and ("activity", 3) in batches
    unsent = session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))).one()
    assert unsent.subject == "unsent"
    # Running again finds nothing: the task is idempotent.
    assert retention.purge(session, {}) == {"activity": 0, "search_log": 0, "outbox": 0}


def test_zero_keeps_forever_and_settings_shorten(app_ctx, session, aged):
    config = {"RETENTION_ACTIVITY_DAYS": 0, "RETENTION_SEARCH_LOG_DAYS": 5}
    assert retention.purge(session, config) == {"activity": 0, "search_log": 4, "outbox": 3}
    assert counts(session)["activity"] == 5


@pytest.mark.parametrize("app_config", [{"RETENTION_OUTBOX_DAYS": 1}])
def test_the_task_reads_the_app_config_and_is_on_beat(app, session, aged):
    with app.app_context():
        assert purge_expired.delay().get() == {"activity": 3, "search_log": 3, "outbox": 5}
    assert counts(session) == {"activity": 2, "search_log": 2, "outbox": 1}
    assert BEAT_SCHEDULE["privacy-purge-expired"]["task"] == purge_expired.name


def test_cli_dry_run_counts_and_purge_deletes(app, session, aged):
    runner = CliRunner()
    with app.app_context():
        dry = runner.invoke(privacy_group, ["purge", "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0
    assert "would delete" in dry.output and "activity" in dry.output
    assert [line.split()[3] for line in dry.output.splitlines()] == ["3", "3", "3"]
    assert counts(session) == {"activity": 5, "search_log": 5, "outbox": 6}
    with app.app_context():
        real = runner.invoke(privacy_group, ["purge"], catch_exceptions=False)
    assert real.exit_code == 0 and "deleted" in real.output
    assert counts(session) == {"activity": 2, "search_log": 2, "outbox": 3}
