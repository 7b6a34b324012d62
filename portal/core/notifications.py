"""In-app notifications: the bell in the layout. Features call :func:`notify`."""

from __future__ import annotations

from datetime import datetime

from flask_babel import force_locale
from sqlalchemy import ForeignKey, Index, ScalarSelect, Select, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base, utcnow
from portal.core.identity import User


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


def notify(
    session: Session, user: User, kind: str, message: object, link: str | None = None
) -> Notification:
    """Store a notification; ``message`` is a lazy string rendered in the user's language."""
    with force_locale(user.locale):
        text = str(message)
    notification = Notification(user_id=user.id, kind=kind, message=text[:500], link=link)
    session.add(notification)
    return notification


# The bell counts unread notifications up to this many and shows "99+" from there: the exact
# size of a long backlog (a CSM's alerts and tasks pile up) tells nobody anything, and counting
# all of it cost every page that person opened a scan of the whole backlog.
UNREAD_COUNT_CAP = 100


def _unread_capped(user_id: object) -> Select[tuple[int]]:
    unread = (
        select(Notification.id)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .limit(UNREAD_COUNT_CAP)
        .correlate(User)
    )
    return select(func.count()).select_from(unread.subquery())


def unread_count_column(user_id: object) -> ScalarSelect[int]:
    """The unread count (at most ``UNREAD_COUNT_CAP``) as a subquery, so the layout gets it
    with the user in one query."""
    return _unread_capped(user_id).scalar_subquery()


def unread_count(session: Session, user: User) -> int:
    """Unread notifications of ``user``, counted up to ``UNREAD_COUNT_CAP``."""
    return session.scalar(_unread_capped(user.id)) or 0


def unread_badge(count: int) -> str:
    """What the bell shows for ``count`` unread notifications."""
    return f"{UNREAD_COUNT_CAP - 1}+" if count >= UNREAD_COUNT_CAP else str(count)


def mark_read(session: Session, user: User, notification_id: int | None = None) -> int:
    """Mark one (or, without an id, every) notification of ``user`` read."""
    statement = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    return session.execute(statement.values(read_at=utcnow())).rowcount
