"""The search log: what people looked for, what they clicked, and whether it helped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.db import Base, utcnow


class SearchLogEntry(Base):
    __tablename__ = "search_log"
    __table_args__ = (
        Index("ix_search_log_time", "searched_at"),
        Index("ix_search_log_user_time", "user_id", "searched_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    searched_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # Groups the searches of one visit (a signed, random id kept in the Flask session).
    session_key: Mapped[str] = mapped_column(String(32), default="", index=True)
    source: Mapped[str] = mapped_column(String(16), default="page")  # page | suggest | api | ask
    query: Mapped[str] = mapped_column(String(200))
    normalized: Mapped[str] = mapped_column(String(200), index=True)
    result_count: Mapped[int] = mapped_column(Integer, default=0)
    clicked_kind: Mapped[str | None] = mapped_column(String(24))
    clicked_id: Mapped[int | None]
    clicked_at: Mapped[datetime | None]
