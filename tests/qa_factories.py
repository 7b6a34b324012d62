"""Q&A test data, written through the Q&A service so every row is what the app would write."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from portal.core.identity import User
from portal.qa import service
from portal.qa.models import Answer, Question
from tests.factories import UserFactory

_titles = itertools.count(1)


def member(trust_level: int = 3, **kwargs: Any) -> User:
    """A customer member trusted enough to publish at once (trust 3: no hold, 10 posts/min)."""
    return UserFactory(trust_level=trust_level, **kwargs)


class QA:
    """Calls services in an app context that is popped again before the next request (a
    pushed context would share ``g``, and flask-login's cached user, with the test client)."""

    def __init__(self, app: Flask, session: Session, *, commit: bool = False) -> None:
        """``commit``: end each call as a request does, so what runs after a commit (telling
        followers, sending mail) has run; otherwise the changes are only flushed."""
        self.app, self.session, self.commit = app, session, commit

    def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            result = function(self.session, *args, **kwargs)
            if self.commit:
                self.session.commit()
            else:
                self.session.flush()
            return result

    def question(self, author: User | None = None, **kwargs: Any) -> Question:
        number = next(_titles)
        values = {
            "title": f"How do I share dashboard number {number}?",
            "body": f"We need to share dashboard {number} with the finance team.",
            "tags": ["dashboards"],
            **kwargs,
        }
        return self(service.ask, author or member(), **values)

    def answer(self, question: Question, author: User | None = None, body: str = "") -> Answer:
        return self(
            service.answer,
            author or member(),
            question.id,
            body or f"Open the share menu of question {question.id} and pick a group.",
        )
