"""The registry of personal data: each feature says how to export and erase what it keeps
about a person, so data governance (``portal.privacy``) never imports a feature.

``export(session, user)`` returns JSON-ready data (lists of dicts, ISO times);
``erase(session, user, mode)`` removes personal data and, with ``mode`` ``"remove"``, the
content the person wrote (``"keep"`` leaves it under the anonymous name). Votes, ratings and
other counted rows stay attributed to the erased user row, so aggregates stay exact.
``mode`` ``"purge"`` is used when the person's organization is deleted: the user row goes
too, so a feature gives back what others' counts owe to the person's votes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from portal.core.identity import User

KEEP = "keep"
REMOVE = "remove"
PURGE = "purge"
MODES = (KEEP, REMOVE, PURGE)

Exporter = Callable[[Session, User], Any]
Eraser = Callable[[Session, User, str], None]


@dataclass(frozen=True)
class PersonalDataSource:
    name: str
    export: Exporter
    erase: Eraser


_SOURCES: dict[str, PersonalDataSource] = {}


def register(name: str, export: Exporter, erase: Eraser) -> None:
    """Declare a feature's personal data (idempotent: app factories run once per test app)."""
    _SOURCES[name] = PersonalDataSource(name, export, erase)


def sources() -> list[PersonalDataSource]:
    return [_SOURCES[name] for name in sorted(_SOURCES)]


def export_all(session: Session, user: User) -> dict[str, Any]:
    return {source.name: source.export(session, user) for source in sources()}


def erase_all(session: Session, user: User, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown erase mode {mode!r}")
    for source in sources():
        source.erase(session, user, mode)
        session.flush()


def plain(value: Any) -> Any:
    """A column value as JSON: times in ISO 8601, decimals as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def rows(objects: Any, *fields: str) -> list[dict[str, Any]]:
    """``fields`` of each ORM object, JSON-ready (one helper for every feature's export)."""
    return [{name: plain(getattr(obj, name)) for name in fields} for obj in objects]
