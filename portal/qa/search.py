"""What Q&A gives the search index: questions (with their accepted answer) and answers.

``answered`` on a question document means *it has an accepted answer, or at least one
published answer* (``answer_count > 0``): a reader filtering on "answered" wants threads where
someone replied, and acceptance is often never clicked in B2B communities.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from moderation.models import ModerationItem, State
from portal.core.html import html_to_plain_text
from portal.qa.models import Answer, Question
from portal.qa.service import ANSWER_KIND, QUESTION_KIND
from portal.search.registry import SearchDocument, SearchSource, register_source


def _not_removed(kind: str, id_column):  # noqa: ANN001, ANN202
    """No moderation item in the removed state (published rows are never removed, but an old
    row may be left published by a failed hook: the item is the second witness)."""
    return (
        ~select(ModerationItem.id)
        .where(
            ModerationItem.kind == kind,
            ModerationItem.object_id == id_column,
            ModerationItem.state == State.REMOVED,
        )
        .exists()
    )


def _private_to(question: Question) -> int | None:
    return question.organization_id if question.is_private else None


def load_questions(session: Session, ids: Sequence[int]) -> list[SearchDocument]:
    """Indexable questions among ``ids`` with their accepted answer: two queries."""
    if not ids:
        return []
    accepted = aliased(Answer)
    rows = session.execute(
        select(Question, accepted)
        .outerjoin(
            accepted,
            (accepted.id == Question.accepted_answer_id) & accepted.published.is_(True),
        )
        .where(
            Question.id.in_(ids),
            Question.published.is_(True),
            _not_removed(QUESTION_KIND, Question.id),
        )
        .options(selectinload(Question.tags))
    ).all()
    documents = []
    for question, reply in rows:
        body = html_to_plain_text(question.body_html)
        if reply is not None:
            body = f"{body}\n{html_to_plain_text(reply.body_html)}"
        documents.append(
            SearchDocument(
                kind=QUESTION_KIND,
                object_id=question.id,
                title=question.title,
                body=body,
                url=f"/questions/{question.id}",
                updated_at=max(question.updated_at, question.last_activity_at),
                private_to_org_id=_private_to(question),
                owner_org_id=question.organization_id,
                tags=tuple(tag.name for tag in question.tags),
                answered=question.accepted_answer_id is not None or question.answer_count > 0,
                extra={
                    "score": question.score,
                    "status": question.status,
                    "product_area": question.product_area,
                    "accepted": question.accepted_answer_id is not None,
                },
            )
        )
    return documents


def load_answers(session: Session, ids: Sequence[int]) -> list[SearchDocument]:
    """Published answers to published questions, with their question's visibility: one query."""
    if not ids:
        return []
    rows = session.execute(
        select(Answer, Question)
        .join(Question, Question.id == Answer.question_id)
        .where(
            Answer.id.in_(ids),
            Answer.published.is_(True),
            Question.published.is_(True),
            _not_removed(ANSWER_KIND, Answer.id),
        )
    ).all()
    return [
        SearchDocument(
            kind=ANSWER_KIND,
            object_id=reply.id,
            title=question.title,
            body=html_to_plain_text(reply.body_html),
            url=f"/questions/{question.id}#answer-{reply.id}",
            updated_at=reply.updated_at,
            private_to_org_id=_private_to(question),
            owner_org_id=reply.organization_id,
            answered=question.accepted_answer_id == reply.id,
            extra={"question_id": question.id, "score": reply.score},
        )
        for reply, question in rows
    ]


def catalog_questions(session: Session) -> Iterable[tuple[int, datetime]]:
    rows = session.execute(
        select(Question.id, Question.updated_at, Question.last_activity_at).where(
            Question.published.is_(True), _not_removed(QUESTION_KIND, Question.id)
        )
    )
    for question_id, updated, active in rows:
        yield question_id, max(updated, active)


def catalog_answers(session: Session) -> Iterable[tuple[int, datetime]]:
    rows = session.execute(
        select(Answer.id, Answer.updated_at)
        .join(Question, Question.id == Answer.question_id)
        .where(
            Answer.published.is_(True),
            Question.published.is_(True),
            _not_removed(ANSWER_KIND, Answer.id),
        )
    )
    yield from ((answer_id, updated) for answer_id, updated in rows)


def register() -> None:
    register_source(
        SearchSource(
            kind=QUESTION_KIND,
            label=_l("Questions"),
            load=load_questions,
            catalog=catalog_questions,
        )
    )
    register_source(
        SearchSource(
            kind=ANSWER_KIND, label=_l("Answers"), load=load_answers, catalog=catalog_answers
        )
    )
