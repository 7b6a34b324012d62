"""The one write path to the search index (stub: the search engine fills this in).

Features call :func:`schedule` whenever something that may be indexed changed (published,
edited, hidden, rejected, removed, made private); the index follows the database after commit.
"""

from __future__ import annotations

from sqlalchemy.orm import Session


def schedule(session: Session, kind: str, object_id: int) -> None:
    """Re-read ``kind``/``object_id`` from its search source once ``session`` commits, and
    add, update or delete its document accordingly."""
