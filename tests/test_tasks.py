"""Work is sent only after commit, with ids; a rollback sends nothing."""

from __future__ import annotations

from sqlalchemy import select

from portal.core.db import db
from portal.core.mail import OutboxMessage, flush_outbox, queue_mail


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
