"""Work is sent only after commit, with ids; a rollback sends nothing."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import select

from portal.core.db import db
from portal.core.mail import OutboxMessage, flush_outbox, queue_mail
from portal.core.tasks import enqueue_after_commit


def test_mail_is_sent_after_commit_and_not_after_rollback(app_ctx, session):
    queue_mail(db.session, "a@example.com", "Hello", "confirm_email", user=_Named(), link="x")
    db.session.rollback()
    assert session.scalar(select(OutboxMessage)) is None

    message = queue_mail(
        db.session, "a@example.com", "Hello", "confirm_email", user=_Named(), link="x"
    )
    session.expire_all()
    assert session.get(OutboxMessage, message.id).sent_at is None  # not before commit
    db.session.commit()
    session.expire_all()
    assert session.get(OutboxMessage, message.id).sent_at is not None


def test_a_savepoint_neither_sends_nor_drops_the_outer_transactions_work(app_ctx):
    """Services use savepoints (get-or-create races); releasing or rolling one back is not the
    end of the request's transaction, so nothing is sent early and nothing is dropped."""
    from portal.core.tasks import _PENDING_KEY

    message = queue_mail(
        db.session, "c@example.com", "Hello", "confirm_email", user=_Named(), link="x"
    )
    with db.session.begin_nested():
        db.session.execute(select(1))
    try:
        with db.session.begin_nested():
            db.session.execute(select(1))
            raise ValueError("a savepoint that rolls back")
    except ValueError:
        pass
    db.session.refresh(message)
    assert message.sent_at is None  # not sent at savepoint release
    assert len(db.session().info.get(_PENDING_KEY, [])) == 1  # still waiting for the commit
    db.session.rollback()
    assert not db.session().info.get(_PENDING_KEY)


def test_flush_outbox_sends_what_the_broker_missed(app_ctx, session):
    from datetime import timedelta

    from portal.core.db import utcnow

    old = OutboxMessage(
        recipient="b@example.com", subject="S", body="B", created_at=utcnow() - timedelta(hours=1)
    )
    session.add(old)
    session.flush()
    assert flush_outbox.apply().get() == 1
    session.expire_all()
    assert session.get(OutboxMessage, old.id).sent_at is not None
    assert flush_outbox.apply().get() == 0  # idempotent


class _Named:
    display_name = "Ann"


_seen_by_probe: list[tuple[bool, bool, int]] = []


@shared_task(name="tests.probe_context")
def _probe_context() -> None:
    from flask import has_app_context, has_request_context

    _seen_by_probe.append((has_request_context(), has_app_context(), id(db.session())))


def test_an_inline_task_runs_as_a_worker_would_outside_the_request(app):
    """Without a broker a task runs at the request's commit, but not inside the request: with
    its own app context and session, no request and no signed-in user (templates it renders
    must not load one through the request's session, committed and inside its commit hook)."""
    _seen_by_probe.clear()
    with app.test_request_context("/"):
        request_session = db.session()
        enqueue_after_commit(request_session, _probe_context)
        request_session.commit()
        [(in_request, in_app, task_session)] = _seen_by_probe
    assert (in_request, in_app) == (False, True)
    assert task_session != id(request_session)
