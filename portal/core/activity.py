"""The activity log: the contract between the portal and customer-success metrics.

Every feature records what people do with :func:`record_activity`; ``cs_metrics`` aggregates
these rows by organization, verb and time and never reads feature tables.

Verbs (``<area>.<event>``) and the ``data`` each carries:

=======================  ==============================================================
``account.signed_up``    a user joined; data: ``{"via": "invitation" | "domain"}``
``account.confirmed``    a user confirmed their email address
``account.signed_in``    a successful sign-in
``account.signed_out``   a sign-out
``account.password_reset``  a password was reset with an emailed link
``account.password_changed`` a password was changed on the profile page
``org.invitation_sent``  an org admin invited someone; data: ``{"role": ...}``
``org.member_deactivated`` / ``org.member_reactivated``  an org admin changed a member
``org.role_changed``     an org admin changed a member's role; data: ``{"role": ...}``
``api.token_created``    a personal access token was created; data: ``{"scope": ...}``
``content.submitted``    content entered moderation; data: ``{"kind", "object_id"}`` (the feature's id of
                         the item; every ``content.*`` verb but flagged carries both; registered by
                         moderation)
``content.published``    content became visible; actor is the author; data: kind and object_id and, when a
                         moderator decided, ``"moderator_id"`` and ``"minutes_waited"``
``content.rejected``     a moderator refused it; actor is the author; data as for published
``content.edited``       a moderator edited before approving; actor is the moderator
``content.hidden`` / ``content.restored`` / ``content.removed``  after flags or by a moderator
``content.flagged``      a member flagged content; data: ``{"reason": ...}``
``content.viewed``       a member read an item (counts toward trust levels); data: ``{"kind"}``
``trust.promoted``       the automatic promotion raised a trust level; data: ``{"level": n}``
``question.asked``       a question was asked; subject the question; data: ``{"private": bool}``
``answer.posted``        an answer was posted; data: ``{"question_id"}``
``comment.posted``       a comment on a question or answer; data: ``{"question_id", "answer_id"}``
``question.upvoted`` / ``answer.upvoted``  a vote up; data: ``{"author_id"}`` (counted as likes)
``question.downvoted`` / ``answer.downvoted``  a vote down; data: ``{"author_id"}``
``answer.accepted``      actor accepted an answer; data: ``{"author_id", "question_id"}`` (a like)
``answer.helpful``       "This helped me"; data: ``{"author_id", "question_id", "answer_id"}`` (a like)
``question.closed``      closed by a moderator or trust level 4; data: ``{"reason"}``
``question.reopened``    reopened
``question.duplicate``   closed as a duplicate; data: ``{"duplicate_of": id}``
``question.followed``    a member followed a question
``search.performed``     a search ran (page, as-you-type burst, ask page, API); subject: the search_log
                         row; data: ``{"results": n, "session": key or "", "source": "page" | "suggest"
                         | "ask" | "api"}``
``search.clicked``       a search result was opened; subject: the search_log row;
                         data: ``{"kind", "id", "session"}``
``article.published``    a KB article became visible (written, promoted or approved); data: ``{"article_id"}``
                         (``"version"`` when by an edit)
``article.updated``      staff saved a new version of an article; data: ``{"article_id", "version"}``
``article.helpful``      a reader answered "was this helpful?" or changed the answer;
                         data: ``{"helpful": bool, "article_id"}``
``article.promoted``     staff (or an approved KB candidate) turned an accepted answer into an article;
                         data: ``{"answer_id", "article_id"}``
``cs.alert_raised``      an alert rule opened an alert for an account (no actor); data: ``{"kind":
                         "rule:<id>", "rule_id", "severity", "channel"}``
``account.erased``       an account was erased (actor: the admin, or none when the user did it);
                         data: ``{"by": "self"|"admin", "content": "keep"|"remove", "user_id"}``
``org.deleted``          a vendor admin deleted an organization; data: ``{"organization_id",
                         "members", "rows"}``
``privacy.export_requested`` someone asked for a data export; data: ``{"scope": "user"|"organization"}``
``nps.answered``         a customer user answered the in-app NPS survey; subject: the NPS response;
                         data: ``{"score", "category"}``
``cs.override_set``      a CSM overrode an account's health score; data: ``{"score", "expires_at"}``
``cs.health_model_saved`` a vendor admin saved a new health model version; data: ``{"version"}``
``kb.candidate_proposed`` an accepted, helpful answer was proposed as an article for review;
                         data: ``{"answer_id"}``
=======================  ==============================================================

Later features add their verbs to this table when they record them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base, utcnow
from portal.core.identity import Organization, User

VERBS: set[str] = set(
    {
        "account.signed_up",
        "account.confirmed",
        "account.signed_in",
        "account.signed_out",
        "account.password_reset",
        "account.password_changed",
        "org.invitation_sent",
        "org.member_deactivated",
        "org.member_reactivated",
        "org.role_changed",
        "api.token_created",
    }
)


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_org_verb_time", "organization_id", "verb", "occurred_at"),
        Index("ix_activities_verb_time", "verb", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    verb: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None]
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def record_activity(
    session: Session,
    actor: User | None,
    org: Organization | None,
    verb: str,
    subject: Base | None = None,
    data: dict[str, Any] | None = None,
) -> Activity:
    """Add one activity row in the caller's transaction; the caller commits."""
    activity = Activity(
        **activity_columns(
            actor,
            org,
            verb,
            subject.__tablename__ if subject is not None else None,
            getattr(subject, "id", None) if subject is not None else None,
            data,
        )
    )
    session.add(activity)
    return activity


def activity_columns(
    actor: User | None,
    org: Organization | None,
    verb: str,
    subject_type: str | None = None,
    subject_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One activity row's column values, its verb checked: for a writer that inserts the row
    in its own statement (one round trip) instead of through ``record_activity``."""
    if verb not in VERBS:
        raise ValueError(f"unknown activity verb {verb!r}: add it to portal.core.activity.VERBS")
    return {
        "occurred_at": utcnow(),
        "actor_id": actor.id if actor is not None else None,
        "organization_id": org.id if org is not None else None,
        "verb": verb,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "data": data or {},
    }


def register_verbs(*verbs: str) -> None:
    """Let a feature declare its verbs at import time (kept in one set, checked on record)."""
    VERBS.update(verbs)
