"""Mail goes through an outbox table: written in the caller's transaction, sent by a task
after commit, and swept by a periodic task, so no mail is lost when the broker is away."""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage

from celery import shared_task
from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base, new_session, utcnow
from portal.core.tasks import RETRY_POLICY, enqueue_after_commit


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


def queue_mail(
    session: Session,
    recipient: str,
    subject: object,
    template: str,
    locale: str = "en",
    **context: object,
) -> OutboxMessage:
    """Render ``templates/mail/<template>.txt`` in the recipient's language and queue it."""
    with force_locale(locale):
        body = render_template(f"mail/{template}.txt", **context)
        subject = str(subject)
    message = OutboxMessage(recipient=recipient, subject=subject[:200], body=body)
    session.add(message)
    session.flush()
    enqueue_after_commit(session, send_outbox_message, message.id)
    return message


def deliver(message: OutboxMessage) -> None:
    """Hand one message to the configured backend; ``outbox`` keeps it for the dev page."""
    if current_app.config["MAIL_BACKEND"] != "smtp":
        return
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_DEFAULT_SENDER"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email.set_content(message.body)
    config = current_app.config
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=30) as smtp:
        if config["MAIL_USE_TLS"]:
            smtp.starttls()
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        smtp.send_message(email)


def send_message(session: Session, message_id: int) -> bool:
    """Send one queued message unless it was sent already; return whether it was sent now."""
    message = session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None or message.sent_at is not None:
        return False
    message.attempts += 1
    try:
        deliver(message)
    except (OSError, smtplib.SMTPException) as error:
        message.last_error = str(error)[:500]
        session.commit()
        raise
    message.sent_at = utcnow()
    message.last_error = None
    return True


@shared_task(name="portal.core.mail.send_outbox_message", **RETRY_POLICY)
def send_outbox_message(message_id: int) -> None:
    with new_session() as session:
        send_message(session, message_id)
        session.commit()


@shared_task(name="portal.core.mail.flush_outbox", **RETRY_POLICY)
def flush_outbox() -> int:
    """Send what the after-commit task did not (broker down, SMTP down)."""
    cutoff = utcnow() - timedelta(minutes=2)
    with new_session() as session:
        ids = session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.created_at < cutoff)
            .where(OutboxMessage.attempts < 20)
            .order_by(OutboxMessage.id)
            .limit(500)
        ).all()
    sent = 0
    for message_id in ids:
        with new_session() as session:
            sent += send_message(session, message_id)
            session.commit()
    return sent
