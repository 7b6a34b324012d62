"""Page-based pagination shared by HTML lists and the JSON API."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Far past any real list, and small enough that its OFFSET fits every database's integer.
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def clamp_page_args(page: Any, per_page: Any = DEFAULT_PER_PAGE) -> tuple[int, int]:
    """Turn untrusted page arguments into sane numbers instead of an error."""
    try:
        page_number = min(MAX_PAGE, max(1, int(page)))
    except (TypeError, ValueError):
        page_number = 1
    try:
        size = min(MAX_PER_PAGE, max(1, int(per_page)))
    except (TypeError, ValueError):
        size = DEFAULT_PER_PAGE
    return page_number, size


def paginate(session: Session, statement: Select[Any], page: int, per_page: int) -> Page[Any]:
    """One round trip for the rows and the total: the count rides along as an uncorrelated
    scalar subquery, which the database evaluates once (unlike a window count, it leaves the
    LIMIT free to stop early on an index); a second query only past the last page."""
    count = select(func.count()).select_from(statement.order_by(None).subquery()).scalar_subquery()
    windowed = statement.add_columns(count.label("total_rows"))
    rows = session.execute(windowed.limit(per_page).offset((page - 1) * per_page)).unique().all()
    if rows:
        total = rows[0][-1]
    else:
        total = session.scalar(
            select(func.count()).select_from(statement.order_by(None).subquery())
        )
    return Page(items=[row[0] for row in rows], page=page, per_page=per_page, total=total or 0)
