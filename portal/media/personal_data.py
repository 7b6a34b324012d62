"""What media keeps about a person: the images they uploaded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal.core import personal_data
from portal.core.identity import User
from portal.media.models import ContentImage


def export(session: Session, user: User) -> dict[str, Any]:
    images = session.scalars(
        select(ContentImage).where(ContentImage.uploader_id == user.id).order_by(ContentImage.id)
    )
    return {
        "images": personal_data.rows(
            images, "name", "content_type", "width", "height", "size", "created_at"
        )
    }


def erase(session: Session, user: User, mode: str) -> None:
    """``keep``: the images stay in the posts they are in, no longer tied to the person;
    ``remove`` and ``purge``: they go with the posts (the daily sweep deletes their files)."""
    mine = ContentImage.uploader_id == user.id
    if mode == personal_data.KEEP:
        session.execute(update(ContentImage).where(mine).values(uploader_id=None))
    else:
        session.execute(delete(ContentImage).where(mine))


def register() -> None:
    personal_data.register("media", export, erase)
