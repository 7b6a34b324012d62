"""Consent a person gives or withdraws, per purpose: the latest row per user and purpose
counts. In the kernel because ``cs_metrics`` (which may import only ``portal.core``) must not
ask a person who withdrew NPS consent, and notes the consent an answer implies; the profile
page (``portal.privacy.consent``) records choices through the same functions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base, utcnow

NPS_SURVEY = "nps_survey"
MARKETING_EMAIL = "marketing_email"
PURPOSES = (NPS_SURVEY, MARKETING_EMAIL)
# What a person who never said anything is taken to have chosen: surveys are part of the
# service (withdrawable), marketing mail needs an explicit yes (opt-in).
DEFAULTS = {NPS_SURVEY: True, MARKETING_EMAIL: False}


class Consent(Base):
    """Each time a person gives or withdraws consent for a purpose (the latest row counts)."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_user_purpose", "user_id", "purpose", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32), default="profile")  # or "survey", "sign_up"
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


consents = Consent.__table__


def latest(session: Session, user_id: int, purpose: str) -> bool | None:
    """The person's latest choice for ``purpose``, or None when they never made one."""
    return session.execute(
        select(consents.c.granted)
        .where(consents.c.user_id == user_id, consents.c.purpose == purpose)
        .order_by(consents.c.recorded_at.desc(), consents.c.id.desc())
        .limit(1)
    ).scalar()


def effective(session: Session, user_id: int, purpose: str) -> bool:
    """The latest choice, or the purpose's default when none was made."""
    choice = latest(session, user_id, purpose)
    return DEFAULTS[purpose] if choice is None else bool(choice)


def nps_allowed(session: Session, user_id: int) -> bool:
    """False only when the person withdrew consent to NPS surveys."""
    return effective(session, user_id, NPS_SURVEY)


def add(
    session: Session,
    user_id: int,
    purpose: str,
    granted: bool,
    source: str,
    now: datetime | None = None,
) -> None:
    """Append one consent row in the caller's transaction (history is never rewritten)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    session.execute(
        insert(consents).values(
            user_id=user_id,
            purpose=purpose,
            granted=bool(granted),
            source=source[:32],
            recorded_at=now or utcnow(),
        )
    )


def choose(session: Session, user_id: int, purpose: str, granted: bool, source: str) -> bool:
    """Record a choice only when it differs from the latest one (True when a row was added),
    so saving a form twice keeps the history short."""
    if latest(session, user_id, purpose) == bool(granted):
        return False
    add(session, user_id, purpose, granted, source)
    return True
