"""The ``cocreate`` command on a fresh database: migrate, load demo data twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from moderation.models import ModerationItem
from portal.cli import cli
from portal.core.activity import Activity
from portal.core.db import make_engine
from portal.core.identity import Organization, User
from portal.core.notifications import Notification
from portal.demo import DEMO_PASSWORD
from portal.roadmap.models import Idea
from tests.conftest import TEST_DATABASE_URL, sibling_database


def test_db_upgrade_and_demo_load_are_idempotent(tmp_root, monkeypatch):
    url = sibling_database(TEST_DATABASE_URL, "cli", tmp_root)
    monkeypatch.setenv("COCREATE_DATABASE_URL", url)
    monkeypatch.setenv("COCREATE_INSTANCE_PATH", str(tmp_root / "cli-instance"))
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], catch_exceptions=False).exit_code == 0
    first = runner.invoke(cli, ["demo", "load"], catch_exceptions=False)
    second = runner.invoke(cli, ["demo", "load"], catch_exceptions=False)
    assert first.exit_code == second.exit_code == 0
    assert first.output == second.output
    assert "admin@vendor.example" in first.output and DEMO_PASSWORD in first.output

    engine = make_engine(url)
    with engine.connect() as connection:
        orgs = connection.execute(select(Organization.name, Organization.kind)).all()
        users = connection.scalar(select(func.count()).select_from(User))
        # The demo's history is coherent: nobody did anything before joining, what waits for
        # review comes from newcomers, held as a new user's posts are, and the others' history
        # earned them their trust levels.
        before_joining = connection.scalar(
            select(func.count())
            .select_from(Activity)
            .join(User, User.id == Activity.actor_id)
            .where(Activity.occurred_at < User.created_at)
        )
        waiting = connection.execute(
            select(
                ModerationItem.kind,
                ModerationItem.author_id,
                ModerationItem.held_reasons,
                User.trust_level,
            )
            .join(User, User.id == ModerationItem.author_id)
            .where(ModerationItem.state == "pending")
        ).all()
        shipped = (
            connection.execute(select(Idea.shipped_at).where(Idea.shipped_at.is_not(None)))
            .scalars()
            .all()
        )
        week_ago = datetime.now(UTC) - timedelta(days=7)
        day_ago = datetime.now(UTC) - timedelta(days=1)
        notified = connection.execute(
            select(
                func.count().filter(Notification.created_at < week_ago),
                func.count().filter(
                    Notification.created_at < week_ago, Notification.read_at.is_(None)
                ),
                # Today's health alerts are today's; the community's notices are its history's.
                func.count().filter(
                    Notification.created_at > day_ago, Notification.kind.not_like("cs%")
                ),
            )
        ).one()
        levels = connection.execute(
            select(User.trust_level, func.count()).group_by(User.trust_level)
        ).all()
        published_by = {
            author_id: connection.scalar(
                select(func.count()).where(
                    ModerationItem.author_id == author_id, ModerationItem.state == "published"
                )
            )
            for _kind, author_id, _reasons, _level in waiting
        }
    engine.dispose()
    assert before_joining == 0
    assert {"profile_about", "question"} <= {kind for kind, *_ in waiting}
    for _kind, author_id, reasons, level in waiting:
        assert level == 0 and "new_user" in reasons and published_by[author_id] == 0
    assert dict(levels)[1] >= 10  # reached by reading, not set by the demo
    # Notifications came with the history, and the older ones were read as they came.
    assert notified[0] >= 20 and notified[1] == 0 and notified[2] == 0
    # The changelog tells releases over the months, not all on the day of `demo load`.
    assert len(shipped) >= 3 and len(set(shipped)) == len(shipped)
    assert max(shipped) < datetime.now(UTC) - timedelta(days=1)
    assert {0, 1, 2, 3} <= dict(levels).keys()
    assert len([o for o in orgs if o.kind == "customer"]) == 5
    assert len([o for o in orgs if o.kind == "vendor"]) == 1
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in o.name) for o in orgs)  # a Chinese name
    assert users == 17
    for role in ("vendor_admin", "moderator", "csm", "product_manager", "org_admin", "member"):
        assert role in first.output


def test_demo_load_is_refused_in_production(tmp_root, monkeypatch):
    """The demo accounts' password is published: a real installation never gets them."""
    monkeypatch.setenv("COCREATE_ENV", "production")
    monkeypatch.setenv("COCREATE_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("COCREATE_RATELIMIT_STORAGE_URI", "memory://")
    monkeypatch.setenv("COCREATE_INSTANCE_PATH", str(tmp_root / "cli-production"))
    result = CliRunner().invoke(cli, ["demo", "load"])
    assert result.exit_code != 0 and "refused in production" in result.output
