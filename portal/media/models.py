from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.db import Base, utcnow


class ContentImage(Base):
    """An image uploaded for a post. Its bytes are kept once per content (``storage_key``);
    readers fetch it by ``name``, random and unguessable, and only if they may read a post
    that shows it (``service.may_see``): an image in an organization's private question stays
    with that organization and staff even when its link is passed on."""

    __tablename__ = "content_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(48), unique=True)  # "<32 hex>.<extension>"
    storage_key: Mapped[str] = mapped_column(String(80), index=True)
    content_type: Mapped[str] = mapped_column(String(20))
    width: Mapped[int]
    height: Mapped[int]
    size: Mapped[int]
    uploader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a saved post first showed it; an image never shown (a draft abandoned, an upload
    # never used) is deleted after UNCLAIMED_DAYS by the daily sweep.
    claimed_at: Mapped[datetime | None]
    # Who may fetch it besides its uploader and staff: everyone once a public post shows it;
    # else the organization whose private post first showed it (see claim_shown_images).
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    audience_organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
