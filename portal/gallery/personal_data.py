"""What the template gallery keeps about a person, for export and erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from portal.core import personal_data
from portal.core.identity import User
from portal.gallery.models import Download, Rating, Review, Template
from portal.gallery.service import TEMPLATE_KIND, bayes
from portal.search.index import schedule


def export(session: Session, user: User) -> dict[str, Any]:
    def mine(model: Any, column: Any) -> list[Any]:
        return list(session.scalars(select(model).where(column == user.id).order_by(model.id)))

    return {
        "templates": personal_data.rows(
            mine(Template, Template.author_id),
            "id", "title", "description_source", "category", "visibility", "published",
            "latest_version", "created_at",
        ),
        "reviews": personal_data.rows(
            mine(Review, Review.user_id), "id", "template_id", "body_source", "published",
            "created_at",
        ),
        "ratings": personal_data.rows(
            mine(Rating, Rating.user_id), "template_id", "stars", "created_at"
        ),
        "downloads": personal_data.rows(
            mine(Download, Download.user_id), "template_id", "version_id", "created_at"
        ),
    }  # fmt: skip


def _recount_ratings(session: Session, template_ids: set[int]) -> None:
    for template_id in template_ids:
        count, total = session.execute(
            select(func.count(Rating.id), func.coalesce(func.sum(Rating.stars), 0)).where(
                Rating.template_id == template_id
            )
        ).one()
        session.execute(
            update(Template)
            .where(Template.id == template_id)
            .values(rating_count=count, rating_sum=total, bayes_score=bayes(int(total), int(count)))
            .execution_options(synchronize_session=False)
        )


def erase(session: Session, user: User, mode: str) -> None:
    """Ratings and downloads stay (scores and adoption counts stay exact) unless the
    organization goes (``purge``); reviews and templates go with ``remove``."""
    template_ids = list(session.scalars(select(Template.id).where(Template.author_id == user.id)))
    if mode == personal_data.PURGE:
        rated = set(session.scalars(select(Rating.template_id).where(Rating.user_id == user.id)))
        session.execute(delete(Rating).where(Rating.user_id == user.id))
        _recount_ratings(session, rated - set(template_ids))
    if mode != personal_data.KEEP:
        reviewed = set(session.scalars(select(Review.template_id).where(Review.user_id == user.id)))
        session.execute(delete(Review).where(Review.user_id == user.id))
        session.execute(delete(Template).where(Template.id.in_(template_ids)))
        for template_id in reviewed - set(template_ids):
            schedule(session, TEMPLATE_KIND, template_id)
    for template_id in template_ids:
        schedule(session, TEMPLATE_KIND, template_id)
    session.expire_all()


def register() -> None:
    personal_data.register("gallery", export, erase)
