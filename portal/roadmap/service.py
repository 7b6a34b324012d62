"""Roadmap rules: ideas, votes, statuses, merges, comments, subscriptions, the board, impact.

Every function takes the session and the acting user, checks permission and invariants,
flushes and records activity; the caller commits once. Vote counts move by one atomic SQL
expression (``vote_count = vote_count + 1``) only when a vote row was really inserted or
deleted, so concurrent votes and unvotes leave the count equal to the rows; one vote per user
per idea is the database's unique constraint.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Float, Select, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from cs_metrics.lookup import AccountFacts, account_facts
from moderation import service as moderation
from portal.core.activity import record_activity, register_verbs
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, Invalid, NotFound, PermissionDenied
from portal.core.html import html_to_plain_text, render_markdown
from portal.core.identity import AuthorRef, Organization, Role, User
from portal.core.mail import Mail, queue_mails
from portal.core.notifications import Notification, notify
from portal.core.pagination import Page
from portal.core.text import (
    PRODUCT_AREAS,
    checked_text,
    title_text,
)
from portal.core.text import parse_tags as core_parse_tags
from portal.core.text import product_area as check_product_area
from portal.core.urls import external_url
from portal.roadmap.models import (
    Idea,
    IdeaComment,
    IdeaMerge,
    IdeaStatus,
    IdeaSubscription,
    IdeaTag,
    IdeaVote,
    Importance,
    RoadmapSetting,
    StatusChange,
    StatusLabel,
)
from portal.search.index import schedule

IDEA_KIND = "idea"
COMMENT_KIND = "idea_comment"
NOTIFICATION_KIND = "roadmap_status"

register_verbs(
    "idea.created",
    "idea.voted",
    "idea.unvoted",
    "idea.status_changed",
    "idea.shipped",
    "idea.commented",
    "idea.merged",
    "idea.unmerged",
)

TITLE_MIN, TITLE_MAX = 5, 200  # five: a Chinese idea says much in few characters
MAX_BODY = 20_000
MAX_COMMENT = 2_000
MAX_RESPONSE = 5_000
MAX_TAGS = 5
DIGEST_MAIL = "roadmap_digest"  # the mail topic of the digest of followed ideas' changes


def render_description(body: str) -> str:
    """An idea's description may show images from the portal's uploads (a mock-up or a
    screenshot of the problem); comments are text."""
    return render_markdown(body, allow_images=True)


COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")
RISK_RENEWAL_DAYS = 90
TRENDING_WINDOW_DAYS = 30

STATUSES = tuple(IdeaStatus)
DEFAULT_LABELS: dict[str, tuple[Any, str]] = {
    IdeaStatus.OPEN: (_l("Open"), "#6c757d"),
    IdeaStatus.UNDER_REVIEW: (_l("Under review"), "#0dcaf0"),
    IdeaStatus.PLANNED: (_l("Planned"), "#0d6efd"),
    IdeaStatus.IN_PROGRESS: (_l("In progress"), "#fd7e14"),
    IdeaStatus.SHIPPED: (_l("Shipped"), "#198754"),
    IdeaStatus.DECLINED: (_l("Declined"), "#dc3545"),
    IdeaStatus.DUPLICATE: (_l("Duplicate"), "#adb5bd"),
}
IMPORTANCE_LABELS: dict[int, Any] = {
    Importance.NICE_TO_HAVE: _l("Nice to have"),
    Importance.IMPORTANT: _l("Important"),
    Importance.CRITICAL: _l("Critical"),
}
# Votes on ideas in these statuses no longer use the voter's budget.
CLOSED_STATUSES = (IdeaStatus.SHIPPED, IdeaStatus.DECLINED, IdeaStatus.DUPLICATE)
SORTS = ("top", "trending", "new", "mine")
BUDGET_KEY = "vote_budget"
DIGEST_KEY = "digest_last_run"


# --- who may do what ------------------------------------------------------------------------


def _signed_in(user: User | None) -> bool:
    return user is not None and bool(getattr(user, "is_authenticated", False))


def is_moderator(user: User | None) -> bool:
    return _signed_in(user) and moderation.is_moderator(user)


def is_product_staff(user: User | None) -> bool:
    """Product managers and vendor admins answer ideas: statuses, merges."""
    return (
        _signed_in(user)
        and user.is_staff  # type: ignore[union-attr]
        and user.has_role(Role.PRODUCT_MANAGER, Role.VENDOR_ADMIN)  # type: ignore[union-attr]
    )


def sees_impact(user: User | None) -> bool:
    """Revenue and health behind votes: CSMs, product managers and vendor admins only."""
    return (
        _signed_in(user)
        and user.is_staff  # type: ignore[union-attr]
        and user.has_role(Role.CSM, Role.PRODUCT_MANAGER, Role.VENDOR_ADMIN)  # type: ignore[union-attr]
    )


def is_vendor_admin(user: User | None) -> bool:
    return _signed_in(user) and user.is_staff and user.has_role(Role.VENDOR_ADMIN)  # type: ignore[union-attr]


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied(str(_l("You do not have permission to do this.")))


def get_idea(
    session: Session, viewer: User | None, idea_id: int, *, published: bool = False
) -> Idea:
    """The idea if ``viewer`` may see it (published, or their own / a moderator's pending one)."""
    idea = session.get(Idea, idea_id)
    if idea is None:
        raise NotFound(str(_l("Not found.")))
    if not idea.published:
        own = _signed_in(viewer) and viewer.id == idea.author_id  # type: ignore[union-attr]
        if published or not (own or is_moderator(viewer) or is_product_staff(viewer)):
            raise NotFound(str(_l("Not found.")))
    return idea


def resolve_merged(session: Session, idea: Idea) -> Idea:
    """Follow merges to the idea that now carries the votes (merges never form a cycle)."""
    seen = {idea.id}
    while idea.merged_into_id is not None:
        target = session.get(Idea, idea.merged_into_id)
        if target is None or target.id in seen:
            break
        seen.add(target.id)
        idea = target
    return idea


# --- validation -----------------------------------------------------------------------------


def _title(value: str) -> str:
    return title_text(value, TITLE_MIN, TITLE_MAX)


def _text(value: str | None, limit: int, field_name: str, required: bool = True) -> str:
    return checked_text(value, limit, field_name, required)


def checked_idea(title: str, description: str) -> tuple[str, str]:
    """An idea's title and description as stored, or Invalid naming the field: the author's
    rules, applied to a moderator's edit too."""
    return _title(title), _text(description, MAX_BODY, "description")


def checked_comment(body: str) -> str:
    return _text(body, MAX_COMMENT, "body")


def parse_tags(value: str | Iterable[str] | None) -> list[str]:
    """Tags as typed: at most five on an idea."""
    return core_parse_tags(value, MAX_TAGS)


def _status(value: Any) -> IdeaStatus:
    try:
        return IdeaStatus(value)
    except ValueError:
        raise Invalid(str(_l("Unknown status.")), field="status") from None


def _importance(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number not in IMPORTANCE_LABELS:
        raise Invalid(str(_l("Choose nice to have, important or critical.")), field="importance")
    return number


# --- settings and labels --------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    status: str
    label: str
    color: str


def status_labels(session: Session) -> dict[str, Label]:
    """Each status's label and color: a vendor admin's choice, else the translated default."""
    stored = {row.status: row for row in session.scalars(select(StatusLabel))}
    labels = {}
    for status, (default, color) in DEFAULT_LABELS.items():
        row = stored.get(status)
        labels[str(status)] = Label(
            str(status), row.label if row else str(default), row.color if row else color
        )
    return labels


def set_status_label(session: Session, actor: User, status: str, label: str, color: str) -> None:
    _require(is_vendor_admin(actor))
    key = _status(status)
    text = _text(label, 60, "label")
    if not COLOR_PATTERN.match(color or ""):
        raise Invalid(str(_l("Use a color like #1a2b3c.")), field="color")
    row = session.get(StatusLabel, str(key))
    if row is None:
        session.add(StatusLabel(status=str(key), label=text, color=color.lower()))
    else:
        row.label, row.color = text, color.lower()
    session.flush()


def _setting(session: Session, key: str) -> str | None:
    return session.scalar(select(RoadmapSetting.value).where(RoadmapSetting.key == key))


def _put_setting(session: Session, key: str, value: str) -> None:
    row = session.get(RoadmapSetting, key)
    if row is None:
        session.add(RoadmapSetting(key=key, value=value))
    else:
        row.value = value
    session.flush()


def vote_budget(session: Session) -> int:
    """Active votes a user may hold at once; 0 means no limit."""
    try:
        return max(0, int(_setting(session, BUDGET_KEY) or 0))
    except ValueError:
        return 0


def set_vote_budget(session: Session, actor: User, value: Any) -> int:
    _require(is_vendor_admin(actor))
    try:
        budget = int(value)
    except (TypeError, ValueError):
        budget = -1
    if not 0 <= budget <= 1000:
        raise Invalid(str(_l("Use a number from 0 (no limit) to 1000.")), field="budget")
    _put_setting(session, BUDGET_KEY, str(budget))
    return budget


def active_votes(session: Session, user_id: int) -> int:
    """Votes on ideas still open to decision: shipped and declined ideas give votes back."""
    return (
        session.scalar(
            select(func.count())
            .select_from(IdeaVote)
            .join(Idea, Idea.id == IdeaVote.idea_id)
            .where(IdeaVote.user_id == user_id, Idea.status.not_in(CLOSED_STATUSES))
        )
        or 0
    )


# --- submitting -----------------------------------------------------------------------------


def _subscribe(session: Session, user_id: int, idea_id: int) -> bool:
    if session.get(IdeaSubscription, (user_id, idea_id)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(IdeaSubscription(user_id=user_id, idea_id=idea_id))
    except IntegrityError:
        return False
    return True


def submit_idea(
    session: Session,
    author: User,
    title: str,
    description: str,
    product_area: str | None = None,
    tags: str | Iterable[str] | None = None,
) -> Idea:
    """A new idea, submitted to moderation; its author is subscribed."""
    _require(_signed_in(author))
    title, body = checked_idea(title, description)
    names = parse_tags(tags)
    idea = Idea(
        organization_id=author.organization_id,
        author_id=author.id,
        title=title,
        description_source=body,
        description_html=render_description(body),
        product_area=check_product_area(product_area),
        status=IdeaStatus.OPEN,
        published=False,
    )
    idea.tags = [IdeaTag(name=name) for name in names]
    session.add(idea)
    session.flush()
    session.add(
        StatusChange(
            idea_id=idea.id, from_status=None, to_status=IdeaStatus.OPEN, actor_id=author.id
        )
    )
    _subscribe(session, author.id, idea.id)
    record_activity(session, author, author.organization, "idea.created", idea)
    moderation.submit(
        session, IDEA_KIND, idea, author, f"{title}\n\n{body}", org=author.organization
    )
    return idea


def comment(session: Session, author: User, idea_id: int, body: str) -> IdeaComment:
    """A comment, moderated; the commenter is not subscribed (voters and authors are)."""
    _require(_signed_in(author))
    idea = resolve_merged(session, get_idea(session, author, idea_id, published=True))
    text = checked_comment(body)
    note = IdeaComment(
        idea_id=idea.id,
        organization_id=author.organization_id,
        author_id=author.id,
        body_source=text,
        body_html=render_markdown(text),
        published=False,
    )
    session.add(note)
    session.flush()
    record_activity(session, author, author.organization, "idea.commented", idea)
    moderation.submit(session, COMMENT_KIND, note, author, text, org=author.organization)
    return note


def refresh_comment_count(session: Session, idea_ids: Iterable[int]) -> None:
    ids = list(set(idea_ids))
    if not ids:
        return
    counted = (
        select(func.count())
        .where(IdeaComment.idea_id == Idea.id, IdeaComment.published.is_(True))
        .scalar_subquery()
    )
    session.execute(
        update(Idea)
        .where(Idea.id.in_(ids))
        .values(comment_count=counted)
        .execution_options(synchronize_session=False)
    )
    for idea_id in ids:
        idea = session.get(Idea, idea_id)
        if idea is not None:
            session.expire(idea, ["comment_count"])


def _refresh_vote_count(session: Session, idea_ids: Iterable[int]) -> None:
    """Recount from the rows (used by merges, which move many votes at once)."""
    ids = list(set(idea_ids))
    counted = select(func.count()).where(IdeaVote.idea_id == Idea.id).scalar_subquery()
    session.execute(
        update(Idea)
        .where(Idea.id.in_(ids))
        .values(vote_count=counted)
        .execution_options(synchronize_session=False)
    )
    for idea_id in ids:
        idea = session.get(Idea, idea_id)
        if idea is not None:
            session.expire(idea, ["vote_count"])


# --- voting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteResult:
    idea_id: int
    voted: bool
    changed: bool
    vote_count: int
    message: str


def vote(
    session: Session,
    user: User,
    idea_id: int,
    importance: Any = Importance.IMPORTANT,
    on_behalf_of: int | None = None,
) -> VoteResult:
    """Vote (or change the importance of one's vote). A vote on a merged idea lands on the
    idea it was merged into. Staff may record a vote for a customer contact (``on_behalf_of``:
    the contact's user id), marked as such. Voting twice is harmless and says so."""
    _require(_signed_in(user))
    level = _importance(importance)
    idea = resolve_merged(session, get_idea(session, user, idea_id, published=True))
    voter, recorder = user, None
    if on_behalf_of is not None:
        _require(sees_impact(user))
        contact = session.get(User, on_behalf_of)
        if contact is None or contact.is_staff or not contact.active:
            raise Invalid(str(_l("Choose a customer contact.")), field="on_behalf_of")
        voter, recorder = contact, user
    if idea.status in CLOSED_STATUSES:
        raise DomainError(str(_l("This idea is closed to votes.")), field="importance")
    existing = session.scalars(
        select(IdeaVote).where(IdeaVote.idea_id == idea.id, IdeaVote.user_id == voter.id)
    ).first()
    if existing is not None:
        if existing.importance == level:
            return VoteResult(
                idea.id, True, False, idea.vote_count, str(_l("Your vote was already counted."))
            )
        existing.importance = level
        session.flush()
        return VoteResult(idea.id, True, True, idea.vote_count, str(_l("Importance updated.")))
    budget = vote_budget(session)
    if budget:
        # Two votes by one person at the same instant must not both pass the count: lock the
        # voter's row (PostgreSQL) so the second one counts after the first has voted.
        session.execute(select(User.id).where(User.id == voter.id).with_for_update())
    if budget and active_votes(session, voter.id) >= budget:
        raise Conflict(
            str(
                _l(
                    "You have used all %(n)d of your votes: remove one, or wait for an idea "
                    "you voted for to ship.",
                    n=budget,
                )
            ),
            field="importance",
        )
    try:
        with session.begin_nested():
            session.add(
                IdeaVote(
                    idea_id=idea.id,
                    user_id=voter.id,
                    organization_id=voter.organization_id,
                    importance=level,
                    on_behalf_by_id=recorder.id if recorder else None,
                )
            )
    except IntegrityError:  # the same person voting at the same moment in another request
        return VoteResult(
            idea.id, True, False, idea.vote_count, str(_l("Your vote was already counted."))
        )
    count = _bump(session, idea, 1)
    _subscribe(session, voter.id, idea.id)
    record_activity(
        session,
        voter,
        voter.organization,
        "idea.voted",
        idea,
        {
            "importance": level,
            "on_behalf_by": recorder.id if recorder else None,
            "title": idea.title,  # CS lists it by name
        },
    )
    refresh_trending(session, [idea.id])
    return VoteResult(idea.id, True, True, count, str(_l("Thank you for your vote.")))


def unvote(session: Session, user: User, idea_id: int) -> VoteResult:
    """Remove one's vote (idempotent). The count moves only if a row was really deleted."""
    _require(_signed_in(user))
    idea = resolve_merged(session, get_idea(session, user, idea_id, published=True))
    deleted = session.execute(
        delete(IdeaVote)
        .where(IdeaVote.idea_id == idea.id, IdeaVote.user_id == user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not deleted:
        return VoteResult(idea.id, False, False, idea.vote_count, str(_l("You had not voted.")))
    count = _bump(session, idea, -1)
    record_activity(session, user, user.organization, "idea.unvoted", idea)
    refresh_trending(session, [idea.id])
    return VoteResult(idea.id, False, True, count, str(_l("Your vote was removed.")))


def _bump(session: Session, idea: Idea, delta: int) -> int:
    count = session.execute(
        update(Idea)
        .where(Idea.id == idea.id)
        .values(vote_count=Idea.vote_count + delta)
        .returning(Idea.vote_count)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    session.expire(idea, ["vote_count"])
    return count


def my_vote(session: Session, user: User | None, idea_id: int) -> IdeaVote | None:
    if not _signed_in(user):
        return None
    return session.scalars(
        select(IdeaVote).where(IdeaVote.idea_id == idea_id, IdeaVote.user_id == user.id)  # type: ignore[union-attr]
    ).first()


# --- statuses -------------------------------------------------------------------------------


def change_status(
    session: Session,
    actor: User,
    idea_id: int,
    status: Any,
    response: str = "",
    release_notes: str | None = None,
) -> Idea:
    """Move an idea to a status with a public response; subscribers are notified in-app at
    once and by the daily digest mail. Shipping records the voting organizations."""
    _require(is_product_staff(actor))
    idea = get_idea(session, actor, idea_id, published=True)
    new = _status(status)
    if new == IdeaStatus.DUPLICATE:
        raise Invalid(str(_l("Merge the idea to mark it a duplicate.")), field="status")
    if idea.merged_into_id is not None:
        raise Conflict(str(_l("This idea was merged: undo the merge first.")), field="status")
    text = _text(response, MAX_RESPONSE, "response", required=False)
    if new == idea.status and not text:
        raise Invalid(str(_l("The idea already has this status.")), field="status")
    old = idea.status
    session.add(
        StatusChange(
            idea_id=idea.id,
            from_status=old,
            to_status=new,
            response_source=text,
            response_html=render_markdown(text) if text else "",
            actor_id=actor.id,
        )
    )
    idea.status = new
    idea.updated_at = utcnow()
    if new == IdeaStatus.SHIPPED:
        notes = _text(release_notes, MAX_BODY, "release_notes", required=False) or text
        idea.release_notes_source = notes
        idea.release_notes_html = render_markdown(notes) if notes else ""
        if old != IdeaStatus.SHIPPED:
            idea.shipped_at = utcnow()
    elif old == IdeaStatus.SHIPPED:
        idea.shipped_at = None
    session.flush()
    record_activity(
        session, actor, actor.organization, "idea.status_changed", idea, {"from": old, "to": new}
    )
    if new == IdeaStatus.SHIPPED and old != IdeaStatus.SHIPPED:
        org_ids = sorted(
            set(
                session.scalars(select(IdeaVote.organization_id).where(IdeaVote.idea_id == idea.id))
            )
        )
        record_activity(
            session, actor, actor.organization, "idea.shipped", idea, {"organization_ids": org_ids}
        )
    notify_subscribers(session, idea, actor, new)
    schedule(session, IDEA_KIND, idea.id)
    return idea


def notify_subscribers(session: Session, idea: Idea, actor: User, status: str) -> int:
    people = session.scalars(
        select(User)
        .join(IdeaSubscription, IdeaSubscription.user_id == User.id)
        .where(IdeaSubscription.idea_id == idea.id, User.active.is_(True), User.id != actor.id)
    ).all()
    # A vendor admin's own label as they wrote it; else the default in each person's language
    # (``notify`` renders the message in the recipient's locale).
    renamed = session.get(StatusLabel, str(status))
    label = renamed.label if renamed is not None else DEFAULT_LABELS[_status(status)][0]
    link = external_url("roadmap.idea", idea_id=idea.id)
    for person in people:
        notify(
            session,
            person,
            NOTIFICATION_KIND,
            _l("“%(title)s” is now %(status)s", title=idea.title, status=label),
            link,
        )
    return len(people)


def notify_commented(session: Session, note: IdeaComment) -> int:
    """A newly published comment: the idea's author hears of every one, its other
    subscribers (voters, followers) of the vendor's own, which answer them; the commenter of
    none. Notified like status changes, so the daily digest mails them too."""
    idea = session.get(Idea, note.idea_id)
    commenter = session.get(User, note.author_id) if note.author_id is not None else None
    if idea is None:
        return 0
    from_vendor = commenter is not None and commenter.is_staff
    audience = select(User).where(User.active.is_(True), User.id != note.author_id)
    if from_vendor:
        audience = audience.join(IdeaSubscription, IdeaSubscription.user_id == User.id).where(
            IdeaSubscription.idea_id == idea.id
        )
    else:
        audience = audience.where(User.id == idea.author_id)
    people = session.scalars(audience).all()
    link = external_url("roadmap.idea", idea_id=idea.id, _anchor=f"comment-{note.id}")
    for person in people:
        message = (
            _l("The product team commented on “%(title)s”", title=idea.title)
            if from_vendor
            else _l("New comment on your idea “%(title)s”", title=idea.title)
        )
        notify(session, person, NOTIFICATION_KIND, message, link)
    return len(people)


def subscribe(session: Session, user: User, idea_id: int) -> bool:
    _require(_signed_in(user))
    idea = get_idea(session, user, idea_id, published=True)
    return _subscribe(session, user.id, resolve_merged(session, idea).id)


def unsubscribe(session: Session, user: User, idea_id: int) -> None:
    _require(_signed_in(user))
    idea = get_idea(session, user, idea_id)
    session.execute(
        delete(IdeaSubscription).where(
            IdeaSubscription.user_id == user.id, IdeaSubscription.idea_id == idea.id
        )
    )


# --- merging --------------------------------------------------------------------------------


def merge(session: Session, actor: User, source_id: int, target_id: int) -> IdeaMerge:
    """Merge a duplicate into ``target``: its votes move (a user who voted on both keeps one
    vote, the target's), its comments follow, its subscribers are subscribed to the target,
    and it redirects there. Everything changed is recorded so :func:`unmerge` restores it."""
    _require(is_product_staff(actor) or is_moderator(actor))
    source = get_idea(session, actor, source_id, published=True)
    try:
        target = get_idea(session, actor, target_id, published=True)
    except NotFound as error:  # a number typed into the form: its error, not a 404 page
        raise Invalid(
            str(_l("Enter the number of a published idea you can see.")), field="target_id"
        ) from error
    if source.id == target.id:
        raise Invalid(str(_l("An idea cannot be merged into itself.")), field="target_id")
    if source.merged_into_id is not None:
        raise Conflict(str(_l("This idea is already merged.")), field="target_id")
    if target.merged_into_id is not None:
        raise Invalid(
            str(_l("The target was itself merged: merge into the idea it points to.")),
            field="target_id",
        )
    target_voters = set(
        session.scalars(select(IdeaVote.user_id).where(IdeaVote.idea_id == target.id))
    )
    moved, dropped = [], []
    for row in session.scalars(select(IdeaVote).where(IdeaVote.idea_id == source.id)).all():
        if row.user_id in target_voters:
            dropped.append(
                {
                    "user_id": row.user_id,
                    "organization_id": row.organization_id,
                    "importance": row.importance,
                    "on_behalf_by_id": row.on_behalf_by_id,
                    "merged_from_id": row.merged_from_id,
                    "created_at": row.created_at.isoformat(),
                }
            )
            session.delete(row)
        else:
            moved.append({"id": row.id, "merged_from_id": row.merged_from_id})
            row.idea_id, row.merged_from_id = target.id, source.id
    comments = list(session.scalars(select(IdeaComment.id).where(IdeaComment.idea_id == source.id)))
    if comments:
        session.execute(
            update(IdeaComment)
            .where(IdeaComment.id.in_(comments))
            .values(idea_id=target.id, merged_from_id=source.id)
            .execution_options(synchronize_session=False)
        )
    subscribed = []
    for user_id in session.scalars(
        select(IdeaSubscription.user_id).where(IdeaSubscription.idea_id == source.id)
    ).all():
        if _subscribe(session, user_id, target.id):
            subscribed.append(user_id)
    record = IdeaMerge(
        source_id=source.id,
        target_id=target.id,
        actor_id=actor.id,
        previous_status=source.status,
        data={"moved": moved, "dropped": dropped, "comments": comments, "subscribed": subscribed},
    )
    session.add(record)
    source.merged_into_id = target.id
    source.status = IdeaStatus.DUPLICATE
    session.add(
        StatusChange(
            idea_id=source.id,
            from_status=record.previous_status,
            to_status=IdeaStatus.DUPLICATE,
            actor_id=actor.id,
        )
    )
    session.flush()
    _refresh_vote_count(session, [source.id, target.id])
    refresh_comment_count(session, [source.id, target.id])
    refresh_trending(session, [source.id, target.id])
    record_activity(
        session, actor, actor.organization, "idea.merged", source, {"target_id": target.id}
    )
    schedule(session, IDEA_KIND, source.id)
    schedule(session, IDEA_KIND, target.id)
    return record


def unmerge(session: Session, actor: User, source_id: int) -> Idea:
    """Undo the last merge of ``source``: the moved votes and comments go back, dropped
    duplicate votes are restored on the source, added subscriptions removed, status restored."""
    _require(is_product_staff(actor) or is_moderator(actor))
    source = get_idea(session, actor, source_id, published=True)
    record = session.scalars(
        select(IdeaMerge)
        .where(IdeaMerge.source_id == source.id, IdeaMerge.undone_at.is_(None))
        .order_by(IdeaMerge.id.desc())
    ).first()
    if record is None or source.merged_into_id != record.target_id:
        raise Conflict(str(_l("This idea is not merged.")), field="source_id")
    target = session.get(Idea, record.target_id)
    if target is not None and target.merged_into_id is not None:
        raise Conflict(
            str(_l("The target was merged since: undo that merge first.")), field="source_id"
        )
    data = record.data or {}
    for entry in data.get("moved", []):
        row = session.get(IdeaVote, entry["id"])
        if row is not None and row.idea_id == record.target_id:
            row.idea_id, row.merged_from_id = source.id, entry.get("merged_from_id")
    session.flush()
    for entry in data.get("dropped", []):
        session.add(
            IdeaVote(
                idea_id=source.id,
                user_id=entry["user_id"],
                organization_id=entry["organization_id"],
                importance=entry["importance"],
                on_behalf_by_id=entry.get("on_behalf_by_id"),
                merged_from_id=entry.get("merged_from_id"),
                created_at=datetime.fromisoformat(entry["created_at"]),
            )
        )
    if data.get("comments"):
        session.execute(
            update(IdeaComment)
            .where(IdeaComment.id.in_(data["comments"]), IdeaComment.idea_id == record.target_id)
            .values(idea_id=source.id, merged_from_id=None)
            .execution_options(synchronize_session=False)
        )
    if data.get("subscribed"):
        session.execute(
            delete(IdeaSubscription).where(
                IdeaSubscription.idea_id == record.target_id,
                IdeaSubscription.user_id.in_(data["subscribed"]),
            )
        )
    record.undone_at = utcnow()
    source.merged_into_id = None
    source.status = record.previous_status
    session.add(
        StatusChange(
            idea_id=source.id,
            from_status=IdeaStatus.DUPLICATE,
            to_status=record.previous_status,
            actor_id=actor.id,
        )
    )
    session.flush()
    _refresh_vote_count(session, [source.id, record.target_id])
    refresh_comment_count(session, [source.id, record.target_id])
    refresh_trending(session, [source.id, record.target_id])
    record_activity(
        session, actor, actor.organization, "idea.unmerged", source, {"target_id": record.target_id}
    )
    schedule(session, IDEA_KIND, source.id)
    schedule(session, IDEA_KIND, record.target_id)
    return source


# --- trending -------------------------------------------------------------------------------


def _age_hours(session: Session, now: datetime) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", literal(now) - Idea.created_at) / 3600.0
    return (
        func.julianday(literal(now.replace(tzinfo=None))) - func.julianday(Idea.created_at)
    ) * 24.0


def trending_expression(session: Session, now: datetime | None = None) -> Any:
    """((votes in 30 days × 5 + comments in 30 days × 3) − 1) / (age in hours + 2)^1.4, in SQL."""
    now = now or utcnow()
    since = now - timedelta(days=TRENDING_WINDOW_DAYS)
    votes = (
        select(func.count())
        .where(IdeaVote.idea_id == Idea.id, IdeaVote.created_at >= since)
        .scalar_subquery()
    )
    comments = (
        select(func.count())
        .where(
            IdeaComment.idea_id == Idea.id,
            IdeaComment.published.is_(True),
            IdeaComment.created_at >= since,
        )
        .scalar_subquery()
    )
    # abs(): an idea created in this very second may read a hair in the future.
    age = func.abs(_age_hours(session, now))
    return cast(votes * 5 + comments * 3 - 1, Float) / func.power(age + 2.0, 1.4)


def refresh_trending(session: Session, idea_ids: Sequence[int] | None = None) -> int:
    """Recompute the trending score in one UPDATE: for some ideas (after a vote or a comment)
    or all published ones (periodically, as time decays every score)."""
    statement = update(Idea).values(trending=trending_expression(session))
    if idea_ids is not None:
        if not idea_ids:
            return 0
        statement = statement.where(Idea.id.in_(list(idea_ids)))
    else:
        statement = statement.where(Idea.published.is_(True))
    result = session.execute(statement.execution_options(synchronize_session=False))
    for idea_id in idea_ids or ():
        idea = session.get(Idea, idea_id)
        if idea is not None:
            session.expire(idea, ["trending"])
    return result.rowcount or 0


# --- the board ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardFilters:
    sort: str = "top"
    status: str | None = None
    product_area: str | None = None
    tag: str | None = None
    open_only: bool = False  # leave out shipped, declined and duplicate ideas


@dataclass(frozen=True)
class BoardRow:
    id: int
    title: str
    status: str
    product_area: str | None
    vote_count: int
    comment_count: int
    created_at: datetime
    author: AuthorRef | None
    tags: list[str] = field(default_factory=list)
    my_importance: int | None = None


def board_statement(viewer: User | None, filters: BoardFilters) -> Select[Any]:
    statement = (
        select(
            Idea.id,
            Idea.title,
            Idea.status,
            Idea.product_area,
            Idea.vote_count,
            Idea.comment_count,
            Idea.created_at,
            User.id.label("author_id"),
            User.display_name.label("author_name"),
            User.active.label("author_active"),
            Organization.name.label("organization_name"),
        )
        .select_from(Idea)
        .outerjoin(User, User.id == Idea.author_id)
        .outerjoin(Organization, Organization.id == Idea.organization_id)
        .where(Idea.published.is_(True), Idea.merged_into_id.is_(None))
    )
    if filters.status:
        statement = statement.where(Idea.status == filters.status)
    if filters.open_only:
        statement = statement.where(Idea.status.not_in(CLOSED_STATUSES))
    if filters.product_area:
        statement = statement.where(Idea.product_area == filters.product_area)
    if filters.tag:
        statement = statement.where(
            exists().where(IdeaTag.idea_id == Idea.id, IdeaTag.name == filters.tag)
        )
    if filters.sort == "mine":
        me = viewer.id if _signed_in(viewer) else 0  # type: ignore[union-attr]
        statement = statement.where(
            exists().where(IdeaVote.idea_id == Idea.id, IdeaVote.user_id == me)
        )
    order = {
        "top": [Idea.vote_count.desc(), Idea.id.desc()],
        "trending": [Idea.trending.desc(), Idea.id.desc()],
        "new": [Idea.created_at.desc(), Idea.id.desc()],
        "mine": [Idea.created_at.desc(), Idea.id.desc()],
    }[filters.sort]
    return statement.order_by(*order)


def check_filters(filters: BoardFilters) -> None:
    if filters.sort not in SORTS:
        raise Invalid(str(_l("Unknown sort order.")), field="sort")
    if filters.status and filters.status not in STATUSES:
        raise Invalid(str(_l("Unknown status.")), field="status")
    if filters.product_area and filters.product_area not in PRODUCT_AREAS:
        raise Invalid(str(_l("Choose a product area from the list.")), field="product_area")


def board(
    session: Session, viewer: User | None, filters: BoardFilters, page: int, per_page: int
) -> Page[BoardRow]:
    """One page in at most three queries whatever its size: rows (with the total riding along),
    their tags, and the viewer's votes among them."""
    check_filters(filters)
    statement = board_statement(viewer, filters)
    counted = select(func.count()).select_from(
        statement.with_only_columns(Idea.id).order_by(None).subquery()
    )
    rows = session.execute(
        statement.add_columns(counted.scalar_subquery().label("total_rows"))
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = rows[0].total_rows if rows else (session.scalar(counted) or 0)
    ids = [row.id for row in rows]
    tags: dict[int, list[str]] = defaultdict(list)
    mine: dict[int, int] = {}
    if ids:
        for idea_id, name in session.execute(
            select(IdeaTag.idea_id, IdeaTag.name)
            .where(IdeaTag.idea_id.in_(ids))
            .order_by(IdeaTag.name)
        ):
            tags[idea_id].append(name)
        if _signed_in(viewer):
            mine = dict(
                session.execute(
                    select(IdeaVote.idea_id, IdeaVote.importance).where(
                        IdeaVote.user_id == viewer.id,  # type: ignore[union-attr]
                        IdeaVote.idea_id.in_(ids),
                    )
                ).all()
            )
    items = [
        BoardRow(
            id=row.id,
            title=row.title,
            status=row.status,
            product_area=row.product_area,
            vote_count=row.vote_count,
            comment_count=row.comment_count,
            created_at=row.created_at,
            author=AuthorRef.of(row),
            tags=tags.get(row.id, []),
            my_importance=mine.get(row.id),
        )
        for row in rows
    ]
    return Page(items=items, page=page, per_page=per_page, total=total)


# --- the idea page --------------------------------------------------------------------------


@dataclass
class IdeaView:
    idea: Idea
    history: list[StatusChange]
    comments: list[IdeaComment]
    my_vote: IdeaVote | None = None
    subscribed: bool = False
    impact: IdeaImpact | None = None
    merged_into: Idea | None = None
    merged_here: list[Idea] = field(default_factory=list)
    on_behalf_votes: int = 0
    # The viewer's "Flag" control per (kind, id): open, or already flagged (see moderation).
    flags: dict[tuple[str, int], str] = field(default_factory=dict)


def idea_view(session: Session, viewer: User | None, idea_id: int) -> IdeaView:
    idea = get_idea(session, viewer, idea_id)
    session.execute(
        select(Idea)
        .where(Idea.id == idea.id)
        .options(joinedload(Idea.author), joinedload(Idea.organization), selectinload(Idea.tags))
    ).unique().all()
    history = list(
        session.scalars(
            select(StatusChange)
            .where(StatusChange.idea_id == idea.id)
            .options(joinedload(StatusChange.actor))
            .order_by(StatusChange.id)
        )
    )
    me = viewer.id if _signed_in(viewer) else None  # type: ignore[union-attr]
    seen = or_(IdeaComment.published.is_(True), IdeaComment.author_id == me)
    if is_moderator(viewer):
        seen = literal(True)
    comments = list(
        session.scalars(
            select(IdeaComment)
            .where(IdeaComment.idea_id == idea.id, seen)
            .options(joinedload(IdeaComment.author))
            .order_by(IdeaComment.id)
        )
    )
    view = IdeaView(idea=idea, history=history, comments=comments)
    if me is not None:
        view.my_vote = my_vote(session, viewer, idea.id)
        view.subscribed = session.get(IdeaSubscription, (me, idea.id)) is not None
        view.flags = moderation.flag_states(
            session,
            viewer,
            [
                (IDEA_KIND, idea.id),
                *((COMMENT_KIND, note.id) for note in comments if note.published),
            ],
        )
    if idea.merged_into_id:
        view.merged_into = session.get(Idea, idea.merged_into_id)
    view.merged_here = list(
        session.scalars(select(Idea).where(Idea.merged_into_id == idea.id).order_by(Idea.id))
    )
    if sees_impact(viewer):
        view.impact = impact_for(session, viewer, [idea.id]).get(idea.id) or IdeaImpact(idea.id)
    return view


def changelog(session: Session, limit: int = 50) -> list[Idea]:
    """Shipped ideas, newest first, with their release notes: the public changelog."""
    return list(
        session.scalars(
            select(Idea)
            .where(
                Idea.published.is_(True),
                Idea.status == IdeaStatus.SHIPPED,
                Idea.merged_into_id.is_(None),
            )
            .order_by(Idea.shipped_at.desc(), Idea.id.desc())
            .limit(limit)
        )
    )


# --- impact (staff) -------------------------------------------------------------------------


@dataclass
class VotingOrg:
    organization_id: int
    name: str
    votes: int
    facts: AccountFacts

    @property
    def at_risk(self) -> bool:
        return is_at_risk(self.facts)


@dataclass
class IdeaImpact:
    idea_id: int
    title: str = ""
    status: str = ""
    vote_count: int = 0
    organizations: list[VotingOrg] = field(default_factory=list)

    @property
    def revenue_score(self) -> Decimal:
        return sum((o.facts.arr or Decimal(0) for o in self.organizations), Decimal(0))

    @property
    def arr_at_risk(self) -> Decimal:
        return sum((o.facts.arr or Decimal(0) for o in self.organizations if o.at_risk), Decimal(0))


def is_at_risk(facts: AccountFacts, today: date | None = None) -> bool:
    """Red health, or a renewal within 90 days."""
    today = today or utcnow().date()
    if facts.health_band == "red":
        return True
    return facts.renewal_date is not None and (
        today <= facts.renewal_date <= today + timedelta(days=RISK_RENEWAL_DAYS)
    )


def impact_for(
    session: Session, viewer: User, idea_ids: Sequence[int] | None = None
) -> dict[int, IdeaImpact]:
    """Voting organizations per idea with their account facts (those the viewer may see: a
    CSM limited to their own book sees no revenue or health of other accounts): three
    queries in all."""
    statement = (
        select(
            Idea.id,
            Idea.title,
            Idea.status,
            Idea.vote_count,
            IdeaVote.organization_id,
            Organization.name,
            func.count(IdeaVote.id),
        )
        .select_from(Idea)
        .outerjoin(IdeaVote, IdeaVote.idea_id == Idea.id)
        .outerjoin(Organization, Organization.id == IdeaVote.organization_id)
        .where(Idea.published.is_(True), Idea.merged_into_id.is_(None))
        .group_by(
            Idea.id,
            Idea.title,
            Idea.status,
            Idea.vote_count,
            IdeaVote.organization_id,
            Organization.name,
        )
    )
    if idea_ids is not None:
        statement = statement.where(Idea.id.in_(list(idea_ids)))
    rows = session.execute(statement).all()
    facts = account_facts(session, {row[4] for row in rows if row[4] is not None}, viewer)
    out: dict[int, IdeaImpact] = {}
    for idea_id, title, status, count, org_id, name, votes in rows:
        impact = out.setdefault(idea_id, IdeaImpact(idea_id, title, status, count))
        if org_id is not None:
            impact.organizations.append(
                VotingOrg(org_id, name or "", votes, facts.get(org_id, AccountFacts()))
            )
    for impact in out.values():
        impact.organizations.sort(key=lambda o: (-(o.facts.arr or 0), o.name))
    return out


IMPACT_SORTS = ("arr_at_risk", "revenue", "votes", "organizations")


def impact_rows(session: Session, viewer: User, sort: str = "arr_at_risk") -> list[IdeaImpact]:
    _require(sees_impact(viewer))
    if sort not in IMPACT_SORTS:
        raise Invalid(str(_l("Unknown sort order.")), field="sort")
    keys = {
        "arr_at_risk": lambda i: (i.arr_at_risk, i.revenue_score, i.vote_count),
        "revenue": lambda i: (i.revenue_score, i.arr_at_risk, i.vote_count),
        "votes": lambda i: (i.vote_count, i.revenue_score, 0),
        "organizations": lambda i: (len(i.organizations), i.revenue_score, i.vote_count),
    }
    rows = list(impact_for(session, viewer).values())
    rows.sort(key=lambda i: (*keys[sort](i), -i.idea_id), reverse=True)
    return rows


# --- contacts (staff votes on behalf) -------------------------------------------------------


def contacts(session: Session, viewer: User, limit: int = 500) -> list[User]:
    """Customer users a staff member may record a vote for."""
    _require(sees_impact(viewer))
    return list(
        session.scalars(
            select(User)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.active.is_(True), Organization.kind != "vendor")
            .options(joinedload(User.organization))
            .order_by(Organization.name, User.display_name)
            .limit(limit)
        )
    )


# --- digest ---------------------------------------------------------------------------------


def send_digests(session: Session, now: datetime | None = None) -> int:
    """One mail per user listing the roadmap status changes since the last digest (never one
    mail per event). Idempotent per run window: the window start is stored."""
    now = now or utcnow()
    stored = _setting(session, DIGEST_KEY)
    since = datetime.fromisoformat(stored) if stored else now - timedelta(days=1)
    rows = session.execute(
        select(Notification, User)
        .join(User, User.id == Notification.user_id)
        .where(
            Notification.kind == NOTIFICATION_KIND,
            Notification.created_at > since,
            Notification.created_at <= now,
            User.active.is_(True),
        )
        .order_by(Notification.user_id, Notification.id)
    ).all()
    per_user: dict[int, tuple[User, list[Notification]]] = {}
    for note, person in rows:
        per_user.setdefault(person.id, (person, []))[1].append(note)
    board = external_url("roadmap.board")
    queue_mails(
        session,
        [
            Mail(
                person.email,
                _l("Roadmap updates"),
                "roadmap_digest",
                person.locale,
                DIGEST_MAIL,
                {"user": person, "items": [(n.message, n.link) for n in notes], "link": board},
            )
            for person, notes in per_user.values()
        ],
    )
    _put_setting(session, DIGEST_KEY, now.isoformat())
    return len(per_user)


def plain_description(idea: Idea) -> str:
    return html_to_plain_text(idea.description_html)
