"""Ideas on the public roadmap: votes, comments, subscriptions, status history and merges.

``vote_count`` and ``comment_count`` are counters moved by atomic SQL (``n = n + 1``) beside
the rows they count; the one-vote-per-user rule is the unique constraint on ``roadmap_votes``.
``trending`` is precomputed in SQL (see ``service.refresh_trending``) so the board sorts on an
index instead of aggregating every vote of every idea per request.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import Base, utcnow
from portal.core.identity import Organization, User


class IdeaStatus(enum.StrEnum):
    OPEN = "open"
    UNDER_REVIEW = "under_review"
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    SHIPPED = "shipped"
    DECLINED = "declined"
    DUPLICATE = "duplicate"


class Importance(enum.IntEnum):
    NICE_TO_HAVE = 1
    IMPORTANT = 2
    CRITICAL = 3


class Idea(Base):
    __tablename__ = "roadmap_ideas"
    __table_args__ = (
        Index("ix_roadmap_ideas_published_votes", "published", "vote_count"),
        Index("ix_roadmap_ideas_published_trending", "published", "trending"),
        Index("ix_roadmap_ideas_published_created", "published", "created_at"),
        Index("ix_roadmap_ideas_status_shipped", "status", "shipped_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description_source: Mapped[str] = mapped_column(Text, default="")
    description_html: Mapped[str] = mapped_column(Text, default="")
    product_area: Mapped[str | None] = mapped_column(String(60), index=True)
    status: Mapped[str] = mapped_column(String(20), default=IdeaStatus.OPEN)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="SET NULL"), index=True
    )
    vote_count: Mapped[int] = mapped_column(Integer, default=0)
    comment_count: Mapped[int] = mapped_column(Integer, default=0)
    trending: Mapped[float] = mapped_column(Float, default=0.0)
    release_notes_source: Mapped[str | None] = mapped_column(Text)
    release_notes_html: Mapped[str | None] = mapped_column(Text)
    shipped_at: Mapped[datetime | None]

    # Images it shows may be fetched by anyone (portal.media claims them at save).
    image_audience: ClassVar[int | None] = None
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship()
    author: Mapped[User | None] = relationship()
    tags: Mapped[list[IdeaTag]] = relationship(
        order_by="IdeaTag.name", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tag_names(self) -> list[str]:
        return [tag.name for tag in self.tags]


class IdeaTag(Base):
    __tablename__ = "roadmap_idea_tags"

    idea_id: Mapped[int] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class IdeaVote(Base):
    """One vote per user per idea. ``on_behalf_by_id``: the staff member who recorded it for a
    customer contact (from a call). ``merged_from_id``: the idea it was moved from by a merge."""

    __tablename__ = "roadmap_votes"
    __table_args__ = (
        UniqueConstraint("user_id", "idea_id"),
        CheckConstraint("importance IN (1, 2, 3)", name="importance_level"),
        Index("ix_roadmap_votes_idea_created", "idea_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("roadmap_ideas.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    importance: Mapped[int] = mapped_column(SmallInteger, default=Importance.IMPORTANT)
    on_behalf_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    merged_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    organization: Mapped[Organization] = relationship()


class IdeaComment(Base):
    __tablename__ = "roadmap_comments"
    __table_args__ = (Index("ix_roadmap_comments_idea_created", "idea_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("roadmap_ideas.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body_source: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User | None] = relationship()

    # Images it shows may be fetched by anyone (portal.media claims them at save).
    image_audience: ClassVar[int | None] = None


class IdeaSubscription(Base):
    """Who hears about status changes; voters and authors are added automatically."""

    __tablename__ = "roadmap_subscriptions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    idea_id: Mapped[int] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatusChange(Base):
    """Every status change with its public response: the history on the idea page."""

    __tablename__ = "roadmap_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    response_source: Mapped[str] = mapped_column(Text, default="")
    response_html: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship()

    # Images it shows may be fetched by anyone (portal.media claims them at save).
    image_audience: ClassVar[int | None] = None


class StatusLabel(Base):
    """A vendor admin's label and color for a status (defaults live in the service)."""

    __tablename__ = "roadmap_status_labels"

    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    label: Mapped[str] = mapped_column(String(60))
    color: Mapped[str] = mapped_column(String(7))  # "#rrggbb"


class RoadmapSetting(Base):
    __tablename__ = "roadmap_settings"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class IdeaMerge(Base):
    """A merge of ``source`` into ``target`` and what it changed, so that undo restores it
    exactly: moved vote and comment ids, the dropped duplicate votes, the added subscriptions
    and the source's previous status."""

    __tablename__ = "roadmap_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("roadmap_ideas.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    previous_status: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]
