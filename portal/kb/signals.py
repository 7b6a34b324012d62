"""Q&A tells the knowledge base when an answer is accepted or marked helpful; an answer that
qualifies is proposed as a KB candidate (see ``service.maybe_propose``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from portal.core.identity import User
from portal.kb import service
from portal.qa.models import Answer
from portal.qa.signals import answer_accepted, answer_marked_helpful


def on_answer_changed(
    answer: Answer, session: Session, actor: User | None = None, **_: Any
) -> None:
    service.maybe_propose(session, answer, actor)


def connect() -> None:
    """Idempotent: blinker keeps one (weak) connection per receiver."""
    answer_accepted.connect(on_answer_changed)
    answer_marked_helpful.connect(on_answer_changed)
