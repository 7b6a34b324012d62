"""Roadmap test data, written through the roadmap service so every row is what the app writes."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from portal.core.identity import Role, User
from portal.roadmap import service
from portal.roadmap.models import Idea
from tests.factories import UserFactory, staff

_titles = itertools.count(1)


def member(trust_level: int = 3, **kwargs: Any) -> User:
    """A customer member trusted enough to publish at once."""
    return UserFactory(trust_level=trust_level, **kwargs)


def product_manager(**kwargs: Any) -> User:
    return staff(Role.PRODUCT_MANAGER, **kwargs)


class Roadmap:
    """Calls services in an app context popped again before the next request."""

    def __init__(self, app: Flask, session: Session) -> None:
        self.app, self.session = app, session

    def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            result = function(self.session, *args, **kwargs)
            self.session.flush()
            return result

    def idea(self, author: User | None = None, **kwargs: Any) -> Idea:
        number = next(_titles)
        values = {
            "title": f"Schedule dashboard exports number {number}",
            "description": f"We export dashboard {number} by hand every Monday.",
            "product_area": "dashboards",
            "tags": ["exports"],
            **kwargs,
        }
        return self(service.submit_idea, author or member(), **values)

    def vote(self, user: User, idea: Idea, importance: int = 2, **kwargs: Any) -> Any:
        return self(service.vote, user, idea.id, importance, **kwargs)
