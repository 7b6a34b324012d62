"""What moderation keeps about a person: the flags they raised and the items they wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from moderation.models import Flag, ModerationItem, TrustLock
from portal.core import personal_data
from portal.core.identity import User


def export(session: Session, user: User) -> dict[str, Any]:
    flags = session.scalars(select(Flag).where(Flag.user_id == user.id).order_by(Flag.id))
    items = session.scalars(
        select(ModerationItem)
        .where(ModerationItem.author_id == user.id)
        .order_by(ModerationItem.id)
    )
    return {
        "flags_raised": personal_data.rows(flags, "item_id", "reason", "note", "created_at"),
        "submitted_items": personal_data.rows(
            items, "kind", "object_id", "state", "summary", "submitted_at", "decided_at",
            "rejection_reason",
        ),
    }  # fmt: skip


def erase(session: Session, user: User, mode: str) -> None:
    """Flags stay counted, without their note; the items keep the text of content that stays
    and go with content that goes (``remove``), so no copy of it is left in the queue."""
    session.execute(
        update(Flag)
        .where(Flag.user_id == user.id)
        .values(note=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(TrustLock).where(TrustLock.user_id == user.id))
    if mode != personal_data.KEEP:
        session.execute(delete(ModerationItem).where(ModerationItem.author_id == user.id))


def register() -> None:
    personal_data.register("moderation", export, erase)
