"""Report templates and industry solutions, their versions, ratings, reviews and downloads.

``published`` mirrors moderation, as in Q&A. A template is listed once it has a published
version; the template row carries what the gallery list sorts and filters on (the current
version's product range as integer keys, the rating sum and count with the Bayesian score,
how many organizations use it), each recomputed from the rows that own it, so the list is one
indexed query.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from portal.core.db import Base, utcnow
from portal.core.identity import Organization, User


class Category(enum.StrEnum):
    REPORT = "report"
    DASHBOARD = "dashboard"
    SOLUTION = "solution"


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    ORGANIZATION = "organization"


class TemplateTag(Base):
    __tablename__ = "gallery_template_tags"

    template_id: Mapped[int] = mapped_column(
        ForeignKey("gallery_templates.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class Template(Base):
    __tablename__ = "gallery_templates"
    __table_args__ = (
        Index(
            "ix_gallery_templates_listed_created",
            "created_at",
            sqlite_where=text("listed"),
            postgresql_where=text("listed"),
        ),
        Index(
            "ix_gallery_templates_listed_score",
            "bayes_score",
            sqlite_where=text("listed"),
            postgresql_where=text("listed"),
        ),
        CheckConstraint("category IN ('report', 'dashboard', 'solution')", name="category"),
        CheckConstraint("visibility IN ('public', 'organization')", name="visibility"),
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
    category: Mapped[str] = mapped_column(String(16), default=Category.REPORT)
    industry: Mapped[str | None] = mapped_column(String(40), index=True)
    license: Mapped[str] = mapped_column(String(40), default="CC-BY-4.0")
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PUBLIC)
    # The template itself passed moderation.
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    # Published with at least one published version: what the gallery lists.
    listed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("gallery_versions.id", ondelete="SET NULL", use_alter=True)
    )
    latest_version: Mapped[str | None] = mapped_column(String(60))
    product_range: Mapped[str | None] = mapped_column(String(100))
    product_min: Mapped[int | None] = mapped_column(BigInteger)  # inclusive key
    product_max: Mapped[int | None] = mapped_column(BigInteger)  # exclusive key
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    bayes_score: Mapped[float] = mapped_column(Float, default=0.0)
    download_count: Mapped[int] = mapped_column(Integer, default=0)
    org_count: Mapped[int] = mapped_column(Integer, default=0)  # organizations that downloaded
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship()
    author: Mapped[User | None] = relationship()
    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template",
        foreign_keys="TemplateVersion.template_id",
        order_by="TemplateVersion.id.desc()",
        passive_deletes=True,
    )
    current_version: Mapped[TemplateVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )
    tag_rows: Mapped[list[TemplateTag]] = relationship(
        order_by=TemplateTag.tag, cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]

    @property
    def image_audience(self) -> int | None:
        """Who may fetch the images it shows (portal.media): an organization-only template's
        organization (and staff), else everyone."""
        return self.organization_id if self.visibility == Visibility.ORGANIZATION else None


class TemplateVersion(Base):
    __tablename__ = "gallery_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("gallery_templates.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    version: Mapped[str] = mapped_column(String(60))
    version_key: Mapped[int] = mapped_column(BigInteger)
    changelog_source: Mapped[str] = mapped_column(Text, default="")
    changelog_html: Mapped[str] = mapped_column(Text, default="")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    product_range: Mapped[str | None] = mapped_column(String(100))
    product_min: Mapped[int | None] = mapped_column(BigInteger)
    product_max: Mapped[int | None] = mapped_column(BigInteger)
    file_key: Mapped[str] = mapped_column(String(100))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_name: Mapped[str] = mapped_column(String(200))
    file_kind: Mapped[str] = mapped_column(String(8))
    preview: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    template: Mapped[Template] = relationship(back_populates="versions", foreign_keys=[template_id])
    author: Mapped[User | None] = relationship()

    @property
    def image_audience(self) -> int | None:
        return _template_of(self).image_audience


class Rating(Base):
    """One rating per user per template (changeable): the unique constraint is the rule."""

    __tablename__ = "gallery_ratings"
    __table_args__ = (
        UniqueConstraint("template_id", "user_id"),
        CheckConstraint("stars BETWEEN 1 AND 5", name="one_to_five"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("gallery_templates.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    stars: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    """A moderated review text, one per user per template (an edit is moderated again)."""

    __tablename__ = "gallery_reviews"
    __table_args__ = (UniqueConstraint("template_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("gallery_templates.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    body_source: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    template: Mapped[Template] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def image_audience(self) -> int | None:
        return _template_of(self).image_audience


class Download(Base):
    """Each download: the adoption signal CS reads per organization."""

    __tablename__ = "gallery_downloads"
    __table_args__ = (
        Index("ix_gallery_downloads_template_created", "template_id", "created_at"),
        Index("ix_gallery_downloads_org_created", "organization_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("gallery_templates.id", ondelete="CASCADE"))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("gallery_versions.id", ondelete="SET NULL")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthorDigest(Base):
    """When an author last got the digest of reviews and downloads of their templates."""

    __tablename__ = "gallery_author_digests"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    sent_through: Mapped[datetime] = mapped_column(default=utcnow)


def _template_of(row: TemplateVersion | Review) -> Template:
    """A row's template, also when the row is new and knows only the id (pending objects do
    not load their relationships)."""
    if row.template is not None:
        return row.template
    return object_session(row).get(Template, row.template_id)  # type: ignore[union-attr, return-value]
