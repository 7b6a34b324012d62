"""Searchable kinds: features register what they index at app start; search never imports them.

A source answers two questions from the database, which is the truth the index follows:
``load`` gives the documents for some ids *as they should be indexed now* (an id that is
missing from the answer is not indexable any more — unpublished, hidden, deleted — and leaves
the index), and ``catalog`` lists every indexable id with its last change, for a full reindex
and for ``cocreate search check``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class SearchDocument:
    kind: str
    object_id: int
    title: str
    body: str  # plain text (no HTML), any language
    url: str  # path inside the portal, e.g. "/questions/12"
    updated_at: datetime
    # None: everyone may find it; an org id: only that organization and vendor staff.
    private_to_org_id: int | None = None
    owner_org_id: int | None = None  # the organization it came from (staff filter ``org:``)
    tags: tuple[str, ...] = ()
    # words that find the document but are no part of its text (a category's name in both
    # languages, its code): searched, never shown in the result's snippet
    keywords: tuple[str, ...] = ()
    answered: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSource:
    kind: str
    label: Any  # lazy translated name shown in facets, e.g. _l("Questions")
    load: Callable[[Session, Sequence[int]], list[SearchDocument]]
    catalog: Callable[[Session], Iterable[tuple[int, datetime]]]


_SOURCES: dict[str, SearchSource] = {}


def register_source(source: SearchSource) -> None:
    """Register (or re-register, on a new app in the same process) a source by kind."""
    _SOURCES[source.kind] = source


def get_source(kind: str) -> SearchSource:
    try:
        return _SOURCES[kind]
    except KeyError as error:
        raise LookupError(f"no search source {kind!r} is registered") from error


def sources() -> dict[str, SearchSource]:
    return dict(_SOURCES)
