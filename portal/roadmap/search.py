"""What the roadmap gives the search index: published ideas that were not merged away.

``answered`` on an idea means it shipped: a reader filtering on answered wants delivered ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal.core.html import html_to_plain_text
from portal.roadmap.models import Idea, IdeaStatus
from portal.roadmap.service import IDEA_KIND
from portal.search.registry import SearchDocument, SearchSource, register_source


def _indexable():  # noqa: ANN202
    return (Idea.published.is_(True), Idea.merged_into_id.is_(None))


def load_ideas(session: Session, ids: Sequence[int]) -> list[SearchDocument]:
    if not ids:
        return []
    ideas = session.scalars(
        select(Idea).where(Idea.id.in_(list(ids)), *_indexable()).options(selectinload(Idea.tags))
    ).all()
    return [
        SearchDocument(
            kind=IDEA_KIND,
            object_id=idea.id,
            title=idea.title,
            body=html_to_plain_text(idea.description_html),
            url=f"/roadmap/ideas/{idea.id}",
            updated_at=idea.updated_at,
            owner_org_id=idea.organization_id,
            tags=tuple(idea.tag_names),
            answered=idea.status == IdeaStatus.SHIPPED,
            extra={
                "score": idea.vote_count,
                "status": idea.status,
                "product_area": idea.product_area,
            },
        )
        for idea in ideas
    ]


def catalog_ideas(session: Session) -> Iterable[tuple[int, datetime]]:
    statement = select(Idea.id, Idea.updated_at).where(*_indexable())
    yield from ((idea_id, updated) for idea_id, updated in session.execute(statement))


def register() -> None:
    register_source(
        SearchSource(kind=IDEA_KIND, label=_l("Ideas"), load=load_ideas, catalog=catalog_ideas)
    )
