"""Mail goes through an outbox table: written in the caller's transaction, sent by a task
after commit, and swept by a periodic task, so no mail is lost when the broker is away.

Mail about what happens in the community (a new answer, a digest, a moderator's decision)
belongs to a *topic* a feature registers; each person can turn a topic off on their profile or
with the one-click unsubscribe link every such mail carries (RFC 8058). Account mail (sign-up
confirmation, password reset, invitations) has no topic and is always sent.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from celery import shared_task
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import ForeignKey, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base, new_session, utcnow
from portal.core.errors import Invalid
from portal.core.identity import User
from portal.core.tasks import RETRY_POLICY, enqueue_after_commit
from portal.core.urls import external_url


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
    # A topic mail's one-click unsubscribe URL, sent as List-Unsubscribe (RFC 8058).
    list_unsubscribe: Mapped[str | None] = mapped_column(String(500))


# --- topics: mail a person may turn off ------------------------------------------------------


@dataclass(frozen=True)
class MailTopic:
    name: str
    label: Any  # a lazy string: what the profile's checkbox and the unsubscribe page say


_TOPICS: dict[str, MailTopic] = {}


def register_topic(name: str, label: Any) -> None:
    """Declare a kind of community mail (idempotent: app factories run once per test app)."""
    _TOPICS[name] = MailTopic(name, label)


def topics() -> list[MailTopic]:
    return [_TOPICS[name] for name in sorted(_TOPICS)]


def topic(name: str) -> MailTopic | None:
    return _TOPICS.get(name)


class MailOptOut(Base):
    """A topic a person turned off; everything else is on (they followed the question, voted
    on the idea, posted the item: the mail is what they asked for)."""

    __tablename__ = "mail_opt_outs"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def topics_off(session: Session, user_id: int) -> set[str]:
    return set(session.scalars(select(MailOptOut.topic).where(MailOptOut.user_id == user_id)))


def choose_topics(session: Session, user_id: int, wanted: Iterable[str]) -> None:
    """Keep exactly ``wanted`` on (the profile's checkboxes); an unknown name is a 422."""
    wanted = set(wanted)
    if unknown := wanted - _TOPICS.keys():
        raise Invalid(str(_l("Unknown email topic: %(name)s", name=sorted(unknown)[0])), "topic")
    off = topics_off(session, user_id)
    session.execute(
        delete(MailOptOut).where(MailOptOut.user_id == user_id, MailOptOut.topic.in_(wanted))
    )
    for name in _TOPICS.keys() - wanted - off:
        session.add(MailOptOut(user_id=user_id, topic=name))
    session.flush()


def turn_off(session: Session, user_id: int, name: str) -> None:
    """One topic off (the unsubscribe link); turning it off twice changes nothing."""
    if session.get(MailOptOut, (user_id, name)) is None:
        session.add(MailOptOut(user_id=user_id, topic=name))
        session.flush()


def _unsubscribe_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="mail-unsubscribe")


def unsubscribe_token(user_id: int, name: str) -> str:
    """Signed, so only the mail's recipient can use it; it does not expire, as a link in an
    old mail must still work."""
    return _unsubscribe_serializer().dumps([user_id, name])


def read_unsubscribe_token(token: str) -> tuple[int, str] | None:
    try:
        value = _unsubscribe_serializer().loads(token)
    except BadSignature:
        return None
    if not (isinstance(value, list) and len(value) == 2):
        return None
    user_id, name = value
    if not isinstance(user_id, int) or isinstance(user_id, bool) or name not in _TOPICS:
        return None
    return user_id, name


@dataclass(frozen=True)
class Mail:
    """One mail to queue: ``templates/mail/<template>.txt`` rendered with ``context`` in
    ``locale``. With a ``topic``, ``context["user"]`` is the recipient (see ``queue_mails``)."""

    recipient: str
    subject: object
    template: str
    locale: str = "en"
    topic: str | None = None
    context: Mapping[str, object] = field(default_factory=dict)


# Opt-outs are read for this many people per query (SQLite allows 32,766 parameters).
OPT_OUT_BATCH = 1000


def _opted_out(session: Session, wanted: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of these (person, topic) pairs the person turned off, a query per thousand."""
    people = sorted({user_id for user_id, _ in wanted})
    names = sorted({name for _, name in wanted})
    off: set[tuple[int, str]] = set()
    for start in range(0, len(people), OPT_OUT_BATCH):
        rows = session.execute(
            select(MailOptOut.user_id, MailOptOut.topic).where(
                MailOptOut.user_id.in_(people[start : start + OPT_OUT_BATCH]),
                MailOptOut.topic.in_(names),
            )
        )
        off.update((user_id, name) for user_id, name in rows)
    return off


def _topic_user(mail: Mail) -> User:
    user = mail.context.get("user")
    if mail.topic not in _TOPICS or not isinstance(user, User):
        raise ValueError(f"a topic mail needs a registered topic and its user: {mail.topic!r}")
    return user


def queue_mails(session: Session, mails: Iterable[Mail]) -> list[OutboxMessage]:
    """Render and queue ``mails``, leaving out each topic mail whose recipient turned that
    topic off (a topic mail ends with how to stop it). A fan-out to a thousand followers is
    one query for their choices and one INSERT, not two round trips a person (3 s before)."""
    mails = list(mails)
    wanted = {(_topic_user(m).id, m.topic) for m in mails if m.topic is not None}
    off = _opted_out(session, wanted) if wanted else set()
    messages = []
    for mail in mails:
        unsubscribe = None
        if mail.topic is not None:
            user_id = _topic_user(mail).id
            if (user_id, mail.topic) in off:
                continue
            unsubscribe = external_url(
                "main.unsubscribe", token=unsubscribe_token(user_id, mail.topic)
            )
        with force_locale(mail.locale):
            body = render_template(f"mail/{mail.template}.txt", **mail.context)
            if unsubscribe is not None:
                body += render_template(
                    "mail/_topic_footer.txt",
                    topic=_TOPICS[mail.topic],
                    unsubscribe=unsubscribe,
                    choices=external_url("accounts.profile", _anchor="mail-heading"),
                )
            subject = str(mail.subject)
        messages.append(
            OutboxMessage(
                recipient=mail.recipient,
                subject=subject[:200],
                body=body,
                list_unsubscribe=unsubscribe,
            )
        )
    if messages:
        session.add_all(messages)
        session.flush()
    for message in messages:
        enqueue_after_commit(session, send_outbox_message, message.id)
    return messages


def queue_mail(
    session: Session,
    recipient: str,
    subject: object,
    template: str,
    locale: str = "en",
    topic: str | None = None,
    **context: object,
) -> OutboxMessage | None:
    """One mail (see ``queue_mails``); None if its recipient turned its topic off."""
    queued = queue_mails(session, [Mail(recipient, subject, template, locale, topic, context)])
    return queued[0] if queued else None


def deliver(message: OutboxMessage) -> None:
    """Hand one message to the configured backend; ``outbox`` keeps it for the dev page."""
    if current_app.config["MAIL_BACKEND"] != "smtp":
        return
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_DEFAULT_SENDER"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    if message.list_unsubscribe:
        email["List-Unsubscribe"] = f"<{message.list_unsubscribe}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
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
