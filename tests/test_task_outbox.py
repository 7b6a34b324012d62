"""Work sent after commit survives a broker outage: a failed send is kept in ``task_outbox``
(never an error for the user), and the flush sends it once the broker is back."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from portal.core.db import db
from portal.core.mail import OutboxMessage, queue_mail
from portal.core.tasks import PendingTask, flush_task_outbox

SEND_MAIL = "portal.core.mail.send_outbox_message"


def _closed_port() -> int:
    """A port nothing listens on: a broker there refuses every connection, as a stopped
    Redis does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker_down() -> dict[str, str]:
    return {"BROKER_URL": f"redis://127.0.0.1:{_closed_port()}/0"}


def _mail() -> OutboxMessage:
    return queue_mail(db.session, "a@example.com", "Hi", "confirm_email", user=_Named(), link="x")


def _rows(session) -> list[PendingTask]:
    session.expire_all()
    return list(session.scalars(select(PendingTask).order_by(PendingTask.id)))


class TestBrokerDown:
    @pytest.fixture
    def app_config(self, broker_down):
        return broker_down

    def test_a_failed_send_is_kept_in_the_outbox_and_the_commit_stands(self, app_ctx, session):
        started = time.monotonic()
        message = _mail()
        db.session.commit()  # must not raise: the mail is saved, the broker is only late
        elapsed = time.monotonic() - started
        print(f"commit with the broker down: {elapsed:.2f} s")
        assert elapsed < 2
        assert session.get(OutboxMessage, message.id) is not None
        [row] = _rows(session)
        assert (row.name, row.args, row.attempts) == (SEND_MAIL, [message.id], 0)
        assert "refused" in row.last_error.lower()

    def test_several_sends_of_one_commit_wait_for_the_broker_once(self, app_ctx, session):
        started = time.monotonic()
        ids = [_mail().id for _ in range(5)]
        db.session.commit()
        assert time.monotonic() - started < 2
        assert [row.args for row in _rows(session)] == [[i] for i in ids]

    def test_a_rollback_keeps_nothing(self, app_ctx, session):
        _mail()
        db.session.rollback()
        assert _rows(session) == []
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0

    def test_a_failing_flush_keeps_the_rows_and_stops(self, app_ctx, session):
        first, second = _mail().id, _mail().id
        db.session.commit()
        result = flush_task_outbox(db.session)
        assert (result.sent, result.failed, result.waiting) == (0, 1, 2)
        rows = _rows(session)
        assert [row.args for row in rows] == [[first], [second]]
        assert [row.attempts for row in rows] == [1, 0]  # stopped at the first broker error
        assert "refused" in rows[0].last_error.lower()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A Redis that accepts connections but never replies (failover, a dropped NAT entry):
    the kernel completes the handshake, nobody ever answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield silent.getsockname()[1]


class TestSilentBroker:
    @pytest.fixture
    def app_config(self, silent_port):
        return {"BROKER_URL": f"redis://127.0.0.1:{silent_port}/0"}

    def test_it_costs_one_commit_its_timeouts_and_later_ones_nothing(self, app_ctx, session):
        timings = []
        for _ in range(3):
            started = time.monotonic()
            _mail()
            db.session.commit()
            timings.append(time.monotonic() - started)
        print("commits with a silent broker:", ", ".join(f"{t:.2f} s" for t in timings))
        assert timings[0] < 3  # two attempts of BROKER_SOCKET_TIMEOUT (1 s) each
        assert max(timings[1:]) < 0.5  # BROKER_RETRY_AFTER: straight to the outbox
        rows = _rows(session)
        assert len(rows) == 3 and rows[2].last_error.startswith("not tried: ")


def test_the_flush_sends_oldest_first_and_deletes_what_it_sent(app_ctx, session):
    """No broker configured: tasks run inline, so the flush's sends do the work at once."""
    first = OutboxMessage(recipient="a@example.com", subject="S", body="B")
    second = OutboxMessage(recipient="b@example.com", subject="S", body="B")
    session.add_all([first, second])
    session.flush()
    session.add_all(
        [
            PendingTask(name=SEND_MAIL, args=[first.id]),
            PendingTask(name=SEND_MAIL, args=[second.id]),
        ]
    )
    session.flush()
    result = flush_task_outbox(db.session)
    assert (result.sent, result.failed, result.waiting) == (2, 0, 0)
    assert _rows(session) == []
    assert session.get(OutboxMessage, first.id).sent_at is not None
    assert session.get(OutboxMessage, second.id).sent_at is not None
    again = flush_task_outbox(db.session)
    assert (again.sent, again.waiting) == (0, 0)


def test_an_unknown_task_does_not_block_the_rest_and_is_held_after_the_cap(app, app_ctx, session):
    app.config["TASK_OUTBOX_MAX_ATTEMPTS"] = 2
    message = OutboxMessage(recipient="a@example.com", subject="S", body="B")
    session.add(message)
    session.flush()
    session.add_all(
        [
            PendingTask(name="gone.after.a.deploy", args=[1]),
            PendingTask(name=SEND_MAIL, args=[message.id]),
        ]
    )
    session.flush()
    result = flush_task_outbox(db.session)
    assert (result.sent, result.failed, result.waiting, result.held) == (1, 1, 1, 0)
    session.expire_all()
    assert session.get(OutboxMessage, message.id).sent_at is not None
    assert flush_task_outbox(db.session).held == 1  # second failure: held from now on
    [row] = _rows(session)
    assert row.attempts == 2 and "gone.after.a.deploy" in row.last_error
    assert flush_task_outbox(db.session).failed == 0  # the periodic flush leaves it alone
    assert flush_task_outbox(db.session, include_held=True).failed == 1  # the CLI tries it
    assert _rows(session)[0].attempts == 3


def test_beat_flushes_the_task_outbox_every_half_minute(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    entry = next(e for e in schedule.values() if e["task"] == "portal.core.tasks.flush_task_outbox")
    assert 30 <= entry["schedule"] <= 60
    assert "portal.core.tasks.flush_task_outbox" in app.extensions["celery"].tasks


class _Named:
    display_name = "Ann"
