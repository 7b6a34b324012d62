"""A short-lived, per-process cache of rendered question-list bodies.

The list is the busiest Q&A page and is the same for everyone with the same visibility scope
(anonymous / one organization / vendor staff), language, filters and page. A rendered body is
kept for ``QA_LIST_CACHE_SECONDS`` (default 5; 0 turns it off, as in the tests). Any commit in
this process that added, changed or deleted a question, answer, vote or tag clears it at
once, so people see their own changes; other worker processes see them within the TTL. View
counts may lag by the same few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from itertools import chain

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.qa.models import Answer, HelpfulMark, Question, Tag, Vote

_FLAG = "cocreate_qa_list_changed"
_WATCHED = (Question, Answer, Vote, Tag, HelpfulMark)
MAX_ENTRIES = 512

_lock = threading.Lock()
_entries: dict[Hashable, tuple[float, int, str]] = {}
_generation = 0


def ttl() -> float:
    configured = current_app.config.get("QA_LIST_CACHE_SECONDS")
    if configured is None:
        return 0.0 if current_app.testing else 5.0
    return float(configured)


def get(key: Hashable) -> str | None:
    entry = _entries.get(key)
    if entry is None:
        return None
    expires, generation, html = entry
    if generation != _generation or expires < time.monotonic():
        return None
    return html


def put(key: Hashable, html: str, seconds: float) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (time.monotonic() + seconds, _generation, html)


def clear() -> None:
    global _generation
    with _lock:
        _generation += 1
        _entries.clear()


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: object) -> None:
    if any(isinstance(obj, _WATCHED) for obj in chain(session.new, session.dirty, session.deleted)):
        session.info[_FLAG] = True


@event.listens_for(Session, "after_commit")
def _clear_after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        clear()


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: object) -> None:
    if getattr(previous_transaction, "parent", None) is None:
        session.info.pop(_FLAG, None)
