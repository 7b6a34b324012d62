"""Moderation state lives beside the content, keyed by (kind, object id)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import Base, utcnow
from portal.core.identity import Organization, User


class State(enum.StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    REJECTED = "rejected"
    HIDDEN = "hidden"
    REMOVED = "removed"


class FlagReason(enum.StrEnum):
    SPAM = "spam"
    OFFENSIVE = "offensive"
    OFF_TOPIC = "off_topic"
    OTHER = "other"


class ModerationItem(Base):
    __tablename__ = "moderation_items"
    __table_args__ = (
        UniqueConstraint("kind", "object_id"),
        # The queue: items a moderator must look at, oldest first.
        Index("ix_moderation_items_queue", "needs_review", "submitted_at", "id"),
        Index("ix_moderation_items_author_submitted", "author_id", "submitted_at"),
        # The identical-post check of every submit (the newest post with this digest). With
        # the digest alone SQLite, which keeps no statistics, preferred the index above for
        # its order and read every post of the author's day (0.5 ms for a busy author).
        Index("ix_moderation_items_author_digest", "author_id", "source_digest", "submitted_at"),
        # A new user's published posts, counted by every submit of theirs: without it the
        # count read every item of a busy queue (10,000 pending: 2.4 ms on PostgreSQL).
        Index(
            "ix_moderation_items_author_published",
            "author_id",
            sqlite_where=text("state = 'published'"),
            postgresql_where=text("state = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int]
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=State.PENDING)
    # Pending, or hidden by flags and not yet looked at; kept by every transition.
    needs_review: Mapped[bool] = mapped_column(Boolean, default=True)
    held_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[str] = mapped_column(Text, default="")
    previous_source: Mapped[str | None] = mapped_column(Text)
    source_digest: Mapped[str] = mapped_column(String(64), default="")
    preview_html: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    flag_weight: Mapped[float] = mapped_column(default=0.0)

    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    organization: Mapped[Organization | None] = relationship()


class AuditEntry(Base):
    """Every transition of every item: who, when, why, and the text before and after edits."""

    __tablename__ = "moderation_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("moderation_items.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    before_text: Mapped[str | None] = mapped_column(Text)
    after_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    actor: Mapped[User | None] = relationship()


class Flag(Base):
    __tablename__ = "moderation_flags"
    __table_args__ = (UniqueConstraint("item_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("moderation_items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(500))
    weight: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a moderator decides on the flagged item: True agreed, False disagreed.
    upheld: Mapped[bool | None] = mapped_column(Boolean)


class WatchedWordEntry(Base):
    __tablename__ = "watched_words"

    id: Mapped[int] = mapped_column(primary_key=True)
    pattern: Mapped[str] = mapped_column(String(200), unique=True)
    action: Mapped[str] = mapped_column(String(16))
    replacement: Mapped[str] = mapped_column(String(200), default="")
    is_regex: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReasonTemplate(Base):
    """Canned rejection reasons moderators pick from."""

    __tablename__ = "moderation_reason_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)
    text: Mapped[str] = mapped_column(Text)


class TrustLock(Base):
    """A moderator's fixed trust level for a user; the periodic promotion leaves it alone."""

    __tablename__ = "trust_locks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer)
    locked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModerationSetting(Base):
    """Vendor-admin settings (rule thresholds, trust thresholds) as JSON by key."""

    __tablename__ = "moderation_settings"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
