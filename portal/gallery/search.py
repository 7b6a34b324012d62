"""Templates as a search source: listed templates only, carrying their visibility (a template
shared with its own organization is found only by that organization and vendor staff)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal.core.html import html_to_plain_text
from portal.gallery.models import Template, Visibility
from portal.gallery.service import CATEGORIES, INDUSTRIES, TEMPLATE_KIND
from portal.search.registry import SearchDocument, SearchSource, register_source


def template_url(template_id: int) -> str:
    return f"/gallery/templates/{template_id}"


def load(session: Session, ids: Sequence[int]) -> list[SearchDocument]:
    """Documents for the listed templates among ``ids``; the others leave the index."""
    if not ids:
        return []
    templates = session.scalars(
        select(Template)
        .where(Template.id.in_(list(ids)), Template.listed.is_(True))
        .options(selectinload(Template.tag_rows))
        .order_by(Template.id)
    )
    documents = []
    for template in templates:
        words = [
            str(CATEGORIES.get(template.category, template.category)),
            str(INDUSTRIES.get(template.industry or "", template.industry or "")),
            template.industry or "",
            template.category,
        ]
        documents.append(
            SearchDocument(
                kind=TEMPLATE_KIND,
                object_id=template.id,
                title=template.title,
                body=html_to_plain_text(template.description_html),
                keywords=tuple(word for word in words if word),
                url=template_url(template.id),
                updated_at=template.updated_at,
                private_to_org_id=(
                    template.organization_id
                    if template.visibility == Visibility.ORGANIZATION
                    else None
                ),
                owner_org_id=template.organization_id,
                tags=tuple(template.tags),
                extra={
                    "category": template.category,
                    "industry": template.industry,
                    "version": template.latest_version,
                },
            )
        )
    return documents


def catalog(session: Session) -> Iterable[tuple[int, datetime]]:
    rows = session.execute(
        select(Template.id, Template.updated_at).where(Template.listed.is_(True))
    )
    yield from ((template_id, updated) for template_id, updated in rows)


def register() -> None:
    register_source(
        SearchSource(kind=TEMPLATE_KIND, label=_l("Templates"), load=load, catalog=catalog)
    )
