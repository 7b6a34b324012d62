"""What Q&A keeps about a person, for export and erasure (``portal.core.personal_data``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal.core import personal_data
from portal.core.identity import User
from portal.qa.models import (
    Answer,
    Comment,
    Follow,
    HelpfulMark,
    Question,
    Reputation,
    TagFollow,
    Vote,
)
from portal.qa.service import ANSWER_KIND, QUESTION_KIND, followed_tags, refresh_answer_count
from portal.search.index import schedule


def export(session: Session, user: User) -> dict[str, Any]:
    def mine(model: Any, column: Any) -> list[Any]:
        return list(session.scalars(select(model).where(column == user.id).order_by(model.id)))

    points = session.get(Reputation, user.id)
    return {
        "questions": personal_data.rows(
            mine(Question, Question.author_id),
            "id", "title", "body_source", "is_private", "published", "status", "created_at",
        ),
        "answers": personal_data.rows(
            mine(Answer, Answer.author_id),
            "id", "question_id", "body_source", "published", "created_at",
        ),
        "comments": personal_data.rows(
            mine(Comment, Comment.author_id),
            "id", "question_id", "answer_id", "body_source", "published", "created_at",
        ),
        "votes": personal_data.rows(
            mine(Vote, Vote.user_id), "question_id", "answer_id", "value", "created_at"
        ),
        "helpful_marks": personal_data.rows(
            mine(HelpfulMark, HelpfulMark.user_id), "answer_id", "created_at"
        ),
        "follows": personal_data.rows(
            session.scalars(select(Follow).where(Follow.user_id == user.id)),
            "question_id", "created_at",
        ),
        "followed_tags": followed_tags(session, user),
        "reputation": points.points if points is not None else 0,
    }  # fmt: skip


def erase(session: Session, user: User, mode: str) -> None:
    """Follows and reputation are personal; votes and helpful marks stay (counts stay exact)
    unless the whole organization goes (``purge``), when scores give back the votes."""
    session.execute(delete(Follow).where(Follow.user_id == user.id))
    session.execute(delete(TagFollow).where(TagFollow.user_id == user.id))
    session.execute(delete(Reputation).where(Reputation.user_id == user.id))
    question_ids = list(session.scalars(select(Question.id).where(Question.author_id == user.id)))
    answers = session.execute(
        select(Answer.id, Answer.question_id).where(Answer.author_id == user.id)
    ).all()
    if mode == personal_data.PURGE:
        for vote in session.scalars(select(Vote).where(Vote.user_id == user.id)):
            model, target = (
                (Question, vote.question_id) if vote.question_id else (Answer, vote.answer_id)
            )
            session.execute(
                update(model).where(model.id == target).values(score=model.score - vote.value)
            )
        for answer_id in session.scalars(
            select(HelpfulMark.answer_id).where(HelpfulMark.user_id == user.id)
        ):
            session.execute(
                update(Answer)
                .where(Answer.id == answer_id)
                .values(helpful_count=Answer.helpful_count - 1)
            )
    if mode == personal_data.KEEP:
        for question_id in question_ids:
            schedule(session, QUESTION_KIND, question_id)
        for answer_id, _question_id in answers:
            schedule(session, ANSWER_KIND, answer_id)
        return
    thread_answers = list(
        session.scalars(select(Answer.id).where(Answer.question_id.in_(question_ids)))
    )
    session.execute(delete(Comment).where(Comment.author_id == user.id))
    session.execute(delete(Answer).where(Answer.author_id == user.id))
    session.execute(delete(Question).where(Question.author_id == user.id))
    for answer_id, question_id in answers:
        schedule(session, ANSWER_KIND, answer_id)
        if question_id not in question_ids:
            refresh_answer_count(session, question_id, touch=False)
            schedule(session, QUESTION_KIND, question_id)  # it may have carried the answer
    for question_id in question_ids:
        schedule(session, QUESTION_KIND, question_id)
    for answer_id in thread_answers:
        schedule(session, ANSWER_KIND, answer_id)
    session.expire_all()


def register() -> None:
    personal_data.register("qa", export, erase)
