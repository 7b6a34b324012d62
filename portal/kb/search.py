"""Articles as a search source: only published articles are indexable, and all are public."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.html import html_to_plain_text
from portal.kb.models import Article
from portal.kb.service import SEARCH_KIND, tag_list
from portal.search.registry import SearchDocument, SearchSource, register_source


def article_url(article_id: int) -> str:
    return f"/kb/articles/{article_id}"


def load(session: Session, ids: Sequence[int]) -> list[SearchDocument]:
    """Documents for the published articles among ``ids``; the others leave the index."""
    if not ids:
        return []
    articles = session.scalars(
        select(Article).where(Article.id.in_(list(ids)), Article.published).order_by(Article.id)
    )
    return [
        SearchDocument(
            kind=SEARCH_KIND,
            object_id=article.id,
            title=article.title,
            body=html_to_plain_text(article.body_html),
            url=article_url(article.id),
            updated_at=article.updated_at,
            tags=tuple(tag_list(article)),
            extra={"language": article.language, "category_id": article.category_id},
        )
        for article in articles
    ]


def catalog(session: Session) -> Iterable[tuple[int, datetime]]:
    rows = session.execute(
        select(Article.id, Article.updated_at).where(Article.published).order_by(Article.id)
    )
    return [(article_id, updated_at) for article_id, updated_at in rows]


def register() -> None:
    register_source(
        SearchSource(kind=SEARCH_KIND, label=_l("Articles"), load=load, catalog=catalog)
    )
