"""What the roadmap keeps about a person, for export and erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portal.core import personal_data
from portal.core.identity import User
from portal.roadmap.models import Idea, IdeaComment, IdeaSubscription, IdeaVote
from portal.roadmap.service import IDEA_KIND, _refresh_vote_count, refresh_comment_count
from portal.search.index import schedule


def export(session: Session, user: User) -> dict[str, Any]:
    def mine(model: Any, column: Any) -> list[Any]:
        return list(session.scalars(select(model).where(column == user.id).order_by(model.id)))

    return {
        "ideas": personal_data.rows(
            mine(Idea, Idea.author_id),
            "id", "title", "description_source", "status", "published", "created_at",
        ),
        "idea_comments": personal_data.rows(
            mine(IdeaComment, IdeaComment.author_id),
            "id", "idea_id", "body_source", "published", "created_at",
        ),
        "idea_votes": personal_data.rows(
            mine(IdeaVote, IdeaVote.user_id), "idea_id", "importance", "created_at"
        ),
        "idea_subscriptions": personal_data.rows(
            session.scalars(select(IdeaSubscription).where(IdeaSubscription.user_id == user.id)),
            "idea_id", "created_at",
        ),
    }  # fmt: skip


def erase(session: Session, user: User, mode: str) -> None:
    """Subscriptions are personal; votes stay (vote counts stay exact) unless the
    organization goes (``purge``)."""
    session.execute(delete(IdeaSubscription).where(IdeaSubscription.user_id == user.id))
    idea_ids = list(session.scalars(select(Idea.id).where(Idea.author_id == user.id)))
    if mode == personal_data.PURGE:
        voted = list(session.scalars(select(IdeaVote.idea_id).where(IdeaVote.user_id == user.id)))
        session.execute(delete(IdeaVote).where(IdeaVote.user_id == user.id))
        _refresh_vote_count(session, voted)
    if mode != personal_data.KEEP:
        commented = list(
            session.scalars(select(IdeaComment.idea_id).where(IdeaComment.author_id == user.id))
        )
        session.execute(delete(IdeaComment).where(IdeaComment.author_id == user.id))
        session.execute(delete(Idea).where(Idea.id.in_(idea_ids)))
        refresh_comment_count(session, set(commented) - set(idea_ids))
    for idea_id in idea_ids:
        schedule(session, IDEA_KIND, idea_id)
    session.expire_all()


def register() -> None:
    personal_data.register("roadmap", export, erase)
