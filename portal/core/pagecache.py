"""Short-lived, per-process caches of rendered list bodies (the question list, the roadmap board)
and of other values read on every request (the signed-in user).

A busy list page is the same for everyone with the same visibility scope, language, filters and
page. A feature makes one :class:`RenderedCache` naming the models whose changes make its bodies
stale; a body is kept for the feature's configured seconds (default 5; 0 turns it off, as in the
tests). Any commit in this process that added, changed or deleted one of those models -- as ORM
objects, or by a bulk INSERT (an upsert), UPDATE (an atomic counter) or DELETE -- clears the
cache at once, so
people see their own changes; other worker processes see them within the TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from itertools import chain, count
from typing import Any, Generic, TypeVar

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

MAX_ENTRIES = 512

V = TypeVar("V")


def cache_seconds(config_key: str, default: float = 5.0) -> float:
    """A cache's lifetime: its setting, else ``default`` (0, which is off, under TESTING)."""
    configured = current_app.config.get(config_key)
    if configured is None:
        return 0.0 if current_app.testing else default
    return float(configured)


_apps = count()


def _app_number() -> int:
    """Entries are per app as well: a process may run several apps on different databases
    (the tests do, one after another, reusing ids)."""
    extensions = current_app.extensions
    number = extensions.get("cocreate_cache_app")
    if number is None:
        number = extensions["cocreate_cache_app"] = next(_apps)
    return number


class ChangeClearedCache(Generic[V]):
    """Values kept for a configured number of seconds, all forgotten when a commit in this
    process changed one of the ``watched`` models, or when a transaction that changed one
    rolled back (a value read inside it may show what was undone)."""

    def __init__(
        self,
        name: str,
        watched: Iterable[type[Any]],
        config_key: str,
        default_seconds: float = 5.0,
    ) -> None:
        self.config_key = config_key
        self._default_seconds = default_seconds
        self._flag = f"cocreate_{name}_changed"
        self._watched = tuple(watched)
        self._tables = frozenset(model.__tablename__ for model in self._watched)
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, int, V]] = {}
        self._generation = 0
        event.listen(Session, "after_flush", self._note_changes)
        event.listen(Session, "do_orm_execute", self._note_bulk_changes)
        event.listen(Session, "after_commit", self._clear_after_commit)
        event.listen(Session, "after_soft_rollback", self._forget)

    def ttl(self) -> float:
        return cache_seconds(self.config_key, self._default_seconds)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get((_app_number(), key))
        if entry is None:
            return None
        expires, generation, value = entry
        if generation != self._generation or expires < time.monotonic():
            return None
        return value

    def put(self, key: Hashable, value: V, seconds: float, generation: int | None = None) -> None:
        """Keep ``value``; with ``generation`` (read before the value was), only if nothing
        was cleared in between, so a value read just before a commit is not kept after it."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[(_app_number(), key)] = (
                time.monotonic() + seconds,
                self._generation,
                value,
            )

    @property
    def generation(self) -> int:
        return self._generation

    def kept(self, key: Hashable, render: Callable[[], V]) -> V:
        """The value kept under ``key``, else ``render()``'s, kept for the configured seconds."""
        seconds = self.ttl()
        value = self.get(key) if seconds > 0 else None
        if value is None:
            generation = self._generation
            value = render()
            if seconds > 0:
                self.put(key, value, seconds, generation)
        return value

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def note_change(self, session: Session) -> None:
        """A write the listeners cannot see: a statement sent on the session's connection, or
        one whose outer INSERT is another table's (a data-modifying CTE)."""
        session.info[self._flag] = True

    def _note_changes(self, session: Session, _context: object) -> None:
        changed = chain(session.new, session.dirty, session.deleted)
        if any(isinstance(obj, self._watched) for obj in changed):
            session.info[self._flag] = True

    def _note_bulk_changes(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if getattr(table, "name", None) in self._tables:
                state.session.info[self._flag] = True

    def _clear_after_commit(self, session: Session) -> None:
        if session.info.pop(self._flag, False):
            self.clear()

    def _forget(self, session: Session, previous_transaction: object) -> None:
        outermost = getattr(previous_transaction, "parent", None) is None
        if outermost and session.info.pop(self._flag, False):
            self.clear()


class RenderedCache(ChangeClearedCache[str]):
    """Rendered page bodies."""
