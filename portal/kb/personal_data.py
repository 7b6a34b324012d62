"""What the knowledge base keeps about a person: "was this helpful?" answers (articles are
staff-written and stay with the vendor)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.core import personal_data
from portal.core.identity import User
from portal.kb.models import Article, ArticleFeedback


def export(session: Session, user: User) -> dict[str, Any]:
    feedback = session.scalars(
        select(ArticleFeedback)
        .where(ArticleFeedback.user_id == user.id)
        .order_by(ArticleFeedback.id)
    )
    return {
        "article_feedback": personal_data.rows(
            feedback, "article_id", "helpful", "comment", "created_at"
        )
    }


def erase(session: Session, user: User, mode: str) -> None:
    """The answers stay counted (helpful yes/no totals); the free-text comment is personal.
    When the organization goes (``purge``) the totals give the answers back."""
    if mode == personal_data.PURGE:
        for row in session.scalars(
            select(ArticleFeedback).where(ArticleFeedback.user_id == user.id)
        ):
            column = Article.helpful_yes if row.helpful else Article.helpful_no
            session.execute(
                update(Article).where(Article.id == row.article_id).values({column: column - 1})
            )
    session.execute(
        update(ArticleFeedback)
        .where(ArticleFeedback.user_id == user.id)
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )


def register() -> None:
    personal_data.register("kb", export, erase)
