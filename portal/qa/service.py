"""Q&A rules: asking, answering, commenting, voting, accepting, closing, following, reputation.

Every function takes the session and the acting user, checks permission and invariants, flushes
and records activity; the caller (view, API, task, CLI) commits once. Counters that several
people change at the same moment (scores, helpful counts, reputation) are updated with one
atomic SQL expression (``score = score + delta``), never read-modify-written in Python, and
the one-vote-per-user rule is the database's unique constraint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, delete, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from moderation import service as moderation
from portal.core.activity import Activity, record_activity, register_verbs
from portal.core.bulk import dialect_insert
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, Invalid, NotFound, PermissionDenied
from portal.core.html import html_to_plain_text, render_markdown
from portal.core.identity import AuthorRef, Organization, User
from portal.core.mail import Mail, queue_mails
from portal.core.notifications import notify
from portal.core.pagination import Page
from portal.core.permissions import Action, authorize, can
from portal.core.text import (
    PRODUCT_AREAS,
    checked_text,
    clean_text,
    title_text,
)
from portal.core.text import parse_tags as core_parse_tags
from portal.core.text import product_area as check_product_area
from portal.core.urls import external_url
from portal.qa import signals
from portal.qa.models import (
    Answer,
    Comment,
    Follow,
    HelpfulMark,
    Question,
    QuestionStatus,
    Reputation,
    Revision,
    Tag,
    TagFollow,
    Vote,
    question_tags,
)
from portal.search.index import schedule

QUESTION_KIND = "question"
ANSWER_KIND = "answer"
COMMENT_KIND = "qa_comment"

register_verbs(
    "question.asked",
    "answer.posted",
    "comment.posted",
    "question.upvoted",
    "answer.upvoted",
    "question.downvoted",
    "answer.downvoted",
    "answer.accepted",
    "answer.helpful",
    "question.closed",
    "question.reopened",
    "question.duplicate",
    "question.followed",
)
# Trust levels count these as likes given (actor) and received (data["author_id"]).
moderation.LIKE_VERBS.update(
    {"question.upvoted", "answer.upvoted", "answer.helpful", "answer.accepted"}
)

TITLE_MIN, TITLE_MAX = 10, 200
MAX_BODY = 30_000
MAX_COMMENT = 600
MAX_REASON = 500
MAX_TAGS = 5
# Mail topics, each also the name of its mail's template (templates/mail/<topic>.txt): a new
# answer to a followed question, a comment on one's post, a new question with a followed tag.
NEW_ANSWER_MAIL = "qa_new_answer"
COMMENT_MAIL = "qa_new_comment"
TAG_MAIL = "qa_tagged_question"


def render_post(body: str) -> str:
    """Questions and answers may show images from the portal's uploads (a screenshot says
    more than a paragraph); comments are a line or two of text."""
    return render_markdown(body, allow_images=True)


# Reputation, as on Stack Overflow: what a vote of each value is worth to the post's author.
UPVOTE_POINTS = {QUESTION_KIND: 2, ANSWER_KIND: 10}
DOWNVOTE_POINTS = -2
ACCEPT_POINTS = 15

SORTS = ("newest", "active", "votes", "unanswered")
STATUSES = ("open", "closed", "duplicate", "accepted")


# --- who sees what -------------------------------------------------------------------------


def _signed_in(user: User | None) -> bool:
    return user is not None and bool(getattr(user, "is_authenticated", False))


def is_moderator(user: User | None) -> bool:
    return _signed_in(user) and moderation.is_moderator(user)


def visibility_clause(viewer: User | None) -> Any:
    """Which questions a viewer may know exist: public ones, their org's private ones, all
    for vendor staff."""
    if not _signed_in(viewer):
        return Question.is_private.is_(False)
    if viewer.is_staff:  # type: ignore[union-attr]
        return true()
    return or_(Question.is_private.is_(False), Question.organization_id == viewer.organization_id)  # type: ignore[union-attr]


def _may_see_unpublished(viewer: User | None, author_id: int | None) -> bool:
    return _signed_in(viewer) and (viewer.id == author_id or is_moderator(viewer))  # type: ignore[union-attr]


def get_question(
    session: Session, viewer: User | None, question_id: int, *, published: bool = False
) -> Question:
    """The question if ``viewer`` may see it, else NotFound (never "forbidden": other
    organizations' private ids reveal nothing). ``published``: also refuse unpublished ones,
    for actions that only make sense on visible content (answer, vote, follow)."""
    return _visible(viewer, session.get(Question, question_id), published)


def _visible(viewer: User | None, question: Question | None, published: bool = False) -> Question:
    if question is None or not can(viewer, Action.VIEW_CONTENT, question):
        raise NotFound(str(_l("Not found.")))
    if not question.published and (
        published or not _may_see_unpublished(viewer, question.author_id)
    ):
        raise NotFound(str(_l("Not found.")))
    return question


def get_answer(
    session: Session, viewer: User | None, answer_id: int, *, published: bool = False
) -> Answer:
    answer = session.get(Answer, answer_id)
    if answer is None:
        raise NotFound(str(_l("Not found.")))
    get_question(session, viewer, answer.question_id, published=published)
    if not answer.published and (published or not _may_see_unpublished(viewer, answer.author_id)):
        raise NotFound(str(_l("Not found.")))
    return answer


# --- validation ----------------------------------------------------------------------------


def _title(value: str) -> str:
    return title_text(value, TITLE_MIN, TITLE_MAX)


def _body(value: str, limit: int = MAX_BODY, field_name: str = "body") -> str:
    return checked_text(value, limit, field_name)


def checked_question(title: str, body: str) -> tuple[str, str]:
    """A question's title and body as stored, or Invalid naming the field: the asker's rules,
    applied to a moderator's edit too."""
    return _title(title), _body(body)


def checked_answer(body: str) -> str:
    return _body(body)


def checked_comment(body: str) -> str:
    return _body(body, MAX_COMMENT)


def parse_tags(value: str | Iterable[str] | None) -> list[str]:
    """Tags as typed: at most five on a question."""
    return core_parse_tags(value, MAX_TAGS)


def _tags(session: Session, names: Sequence[str]) -> list[Tag]:
    """Existing tags, and new ones created on first use (a concurrent creator wins politely)."""
    if not names:
        return []
    found = {t.name: t for t in session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        if name in found:
            continue
        try:
            with session.begin_nested():
                tag = Tag(name=name)
                session.add(tag)
            found[name] = tag
        except IntegrityError:
            found[name] = session.scalars(select(Tag).where(Tag.name == name)).one()
    return [found[name] for name in sorted(names)]


def _next_revision(
    session: Session, *, question_id: int | None = None, answer_id: int | None = None
) -> int:
    target = Revision.question_id == question_id if question_id else Revision.answer_id == answer_id
    return (session.scalar(select(func.max(Revision.number)).where(target)) or 0) + 1


# --- search index and counters -------------------------------------------------------------


def reindex_question(session: Session, question: Question, with_answers: bool = False) -> None:
    """The question's document (it carries its accepted answer), and its answers' documents
    when the question's own visibility changed."""
    schedule(session, QUESTION_KIND, question.id)
    if with_answers:
        for answer_id in session.scalars(
            select(Answer.id).where(Answer.question_id == question.id)
        ):
            schedule(session, ANSWER_KIND, answer_id)


def refresh_answer_count(session: Session, question_id: int, touch: bool = True) -> None:
    """Recount published answers in SQL, in the caller's transaction."""
    count = (
        select(func.count())
        .where(Answer.question_id == question_id, Answer.published.is_(True))
        .scalar_subquery()
    )
    values: dict[str, Any] = {"answer_count": count}
    if touch:
        values["last_activity_at"] = utcnow()
    session.execute(
        update(Question)
        .where(Question.id == question_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    question = session.get(Question, question_id)
    if question is not None:
        session.expire(question, ["answer_count", "last_activity_at"])


def _add_reputation(session: Session, user_id: int | None, points: int) -> None:
    """Atomic upsert: ``points = points + n``; two votes at once both count."""
    if not user_id or not points:
        return
    statement = dialect_insert(session, Reputation).values(user_id=user_id, points=points)
    statement = statement.on_conflict_do_update(
        index_elements=[Reputation.user_id], set_={"points": Reputation.points + points}
    )
    session.execute(statement)


def reputation_of(session: Session, user_id: int) -> int:
    """Points shown on profiles (``templates/qa/_reputation.html``)."""
    return session.scalar(select(Reputation.points).where(Reputation.user_id == user_id)) or 0


# --- asking, answering, commenting ----------------------------------------------------------


def ask(
    session: Session,
    author: User,
    title: str,
    body: str,
    tags: str | Iterable[str] | None = None,
    product_area: str | None = None,
    private: bool = False,
) -> Question:
    """A new question, submitted to moderation; the asker follows it."""
    title, body = checked_question(title, body)
    names = parse_tags(tags)
    area = check_product_area(product_area)
    question = Question(
        organization_id=author.organization_id,
        author_id=author.id,
        title=title,
        body_source=body,
        body_html=render_post(body),
        product_area=area,
        is_private=bool(private),
        published=False,
    )
    question.tags = _tags(session, names)
    session.add(question)
    session.flush()
    session.add(
        Revision(
            question_id=question.id,
            number=1,
            editor_id=author.id,
            title=title,
            body_source=body,
            tags=" ".join(names),
        )
    )
    session.add(Follow(user_id=author.id, question_id=question.id))
    record_activity(
        session,
        author,
        author.organization,
        "question.asked",
        question,
        {"private": bool(private), "title": question.title},  # CS lists it by name
    )
    moderation.submit(
        session, QUESTION_KIND, question, author, f"{title}\n\n{body}", org=author.organization
    )
    return question


def editable(
    session: Session, editor: User, question_id: int | None = None, answer_id: int | None = None
) -> Any:
    """The question or answer if ``editor`` may edit it (author or moderator)."""
    post = (
        get_answer(session, editor, answer_id)
        if answer_id is not None
        else get_question(session, editor, question_id)  # type: ignore[arg-type]
    )
    authorize(editor, Action.EDIT_CONTENT, post)
    return post


def edit_question(
    session: Session,
    editor: User,
    question_id: int,
    title: str,
    body: str,
    tags: str | Iterable[str] | None = None,
    product_area: str | None = None,
    comment: str = "",
) -> Question:
    """Save a new revision; the text goes through moderation again (held edits are hidden
    until approved, as the rules decide for a new post)."""
    question = get_question(session, editor, question_id)
    authorize(editor, Action.EDIT_CONTENT, question)
    title, body = checked_question(title, body)
    names = parse_tags(tags)
    area = check_product_area(product_area)
    question.title = title
    question.body_source = body
    question.body_html = render_post(body)
    question.tags = _tags(session, names)
    question.product_area = area
    question.updated_at = question.last_activity_at = utcnow()
    was_published = question.published
    question.published = False
    session.add(
        Revision(
            question_id=question.id,
            number=_next_revision(session, question_id=question.id),
            editor_id=editor.id,
            title=title,
            body_source=body,
            tags=" ".join(names),
            comment=clean_text(comment or "").strip()[:300] or None,
        )
    )
    published = _resubmit_edit(session, QUESTION_KIND, question, editor, f"{title}\n\n{body}")
    if not published and was_published:
        reindex_question(session, question, with_answers=True)
    return question


def _resubmit_edit(
    session: Session, kind: str, post: Question | Answer, editor: User, text: str
) -> bool:
    """Send an edited post through moderation again, judged as its author's post (a
    moderator's own edit as the moderator's); whether it is published now."""
    session.flush()
    author = session.get(User, post.author_id) if post.author_id else None
    submitter = editor if is_moderator(editor) or author is None else author
    return moderation.submit(session, kind, post, submitter, text, org=post.organization).published


def answer(session: Session, author: User, question_id: int, body: str) -> Answer:
    """A new answer; refused on closed and duplicate questions."""
    question = get_question(session, author, question_id, published=True)
    if question.status != QuestionStatus.OPEN:
        raise Conflict(str(_l("This question is closed to new answers.")), field="body")
    body = checked_answer(body)
    reply = Answer(
        question_id=question.id,
        organization_id=author.organization_id,
        author_id=author.id,
        body_source=body,
        body_html=render_post(body),
        published=False,
    )
    session.add(reply)
    session.flush()
    session.add(Revision(answer_id=reply.id, number=1, editor_id=author.id, body_source=body))
    record_activity(
        session,
        author,
        author.organization,
        "answer.posted",
        reply,
        {"question_id": question.id},
    )
    moderation.submit(session, ANSWER_KIND, reply, author, body, org=author.organization)
    return reply


def edit_answer(
    session: Session, editor: User, answer_id: int, body: str, comment: str = ""
) -> Answer:
    reply = get_answer(session, editor, answer_id)
    authorize(editor, Action.EDIT_CONTENT, reply)
    body = checked_answer(body)
    reply.body_source = body
    reply.body_html = render_post(body)
    reply.updated_at = utcnow()
    was_published = reply.published
    reply.published = False
    session.add(
        Revision(
            answer_id=reply.id,
            number=_next_revision(session, answer_id=reply.id),
            editor_id=editor.id,
            body_source=body,
            comment=clean_text(comment or "").strip()[:300] or None,
        )
    )
    published = _resubmit_edit(session, ANSWER_KIND, reply, editor, body)
    if not published and was_published:
        refresh_answer_count(session, reply.question_id, touch=False)
        schedule(session, ANSWER_KIND, reply.id)
        schedule(session, QUESTION_KIND, reply.question_id)
    return reply


def comment(
    session: Session,
    author: User,
    body: str,
    question_id: int | None = None,
    answer_id: int | None = None,
) -> Comment:
    """A short comment on a published question or answer."""
    if (question_id is None) == (answer_id is None):
        raise DomainError(str(_l("Comment on a question or on an answer.")), field="body")
    if answer_id is not None:
        parent_answer = get_answer(session, author, answer_id, published=True)
        question_id_of = parent_answer.question_id
    else:
        question_id_of = get_question(session, author, question_id, published=True).id  # type: ignore[arg-type]
    body = checked_comment(body)
    note = Comment(
        question_id=question_id if answer_id is None else None,
        answer_id=answer_id,
        organization_id=author.organization_id,
        author_id=author.id,
        body_source=body,
        body_html=render_markdown(body),
        published=False,
    )
    session.add(note)
    session.flush()
    record_activity(
        session,
        author,
        author.organization,
        "comment.posted",
        note,
        {"question_id": question_id_of, "answer_id": answer_id},
    )
    moderation.submit(session, COMMENT_KIND, note, author, body, org=author.organization)
    return note


# --- votes, acceptance, helpful marks -------------------------------------------------------


@dataclass(frozen=True)
class VoteResult:
    value: int  # the user's vote now: -1, 0 (none) or 1
    score: int


def _vote_points(kind: str, value: int) -> int:
    if value > 0:
        return UPVOTE_POINTS[kind]
    if value < 0:
        return DOWNVOTE_POINTS
    return 0


def vote(
    session: Session,
    user: User,
    value: int,
    question_id: int | None = None,
    answer_id: int | None = None,
) -> VoteResult:
    """Up (1), down (-1) or retract (0). Voting the same way again retracts; the other way
    flips. The score moves by an atomic ``score + delta``."""
    if isinstance(value, bool) or value not in (-1, 0, 1):
        raise Invalid(str(_l("A vote is 1, -1 or 0.")), field="value")
    if answer_id is not None:
        kind, model, target_id = ANSWER_KIND, Answer, answer_id
        post: Question | Answer = get_answer(session, user, answer_id, published=True)
        where = Vote.answer_id == answer_id
    else:
        kind, model, target_id = QUESTION_KIND, Question, question_id
        post = get_question(session, user, question_id, published=True)  # type: ignore[arg-type]
        where = Vote.question_id == question_id
    if post.author_id == user.id:
        raise DomainError(str(_l("You cannot vote on your own post.")), field="value")
    existing = session.scalars(
        select(Vote).where(where, Vote.user_id == user.id).with_for_update()
    ).first()
    old = existing.value if existing else 0
    new = 0 if value == 0 or value == old else value
    if new == old:
        return VoteResult(old, post.score)
    if existing is None:
        try:
            with session.begin_nested():
                session.add(
                    Vote(
                        user_id=user.id,
                        question_id=question_id if kind == QUESTION_KIND else None,
                        answer_id=answer_id,
                        value=new,
                    )
                )
        except IntegrityError as error:  # the same person voting twice at the same moment
            raise Conflict(str(_l("Your vote was already counted.")), field="value") from error
    elif new == 0:
        session.delete(existing)
    else:
        existing.value = new
    session.flush()
    score = session.execute(
        update(model)
        .where(model.id == target_id)
        .values(score=model.score + (new - old))
        .returning(model.score)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    session.expire(post, ["score"])
    _add_reputation(session, post.author_id, _vote_points(kind, new) - _vote_points(kind, old))
    if new != 0:
        verb = f"{kind}.{'upvoted' if new > 0 else 'downvoted'}"
        record_activity(session, user, user.organization, verb, post, {"author_id": post.author_id})
    if kind == QUESTION_KIND:
        schedule(session, QUESTION_KIND, post.id)
    return VoteResult(new, score)


def accept(session: Session, actor: User, question_id: int, answer_id: int | None) -> Question:
    """Accept one published answer (replacing any other), or un-accept with None."""
    question = get_question(session, actor, question_id, published=True)
    authorize(actor, Action.ACCEPT_ANSWER, question)
    chosen: Answer | None = None
    if answer_id is not None:
        chosen = session.get(Answer, answer_id)
        if chosen is None or chosen.question_id != question.id or not chosen.published:
            raise Invalid(str(_l("Choose a published answer to this question.")), field="answer_id")
    previous = (
        session.get(Answer, question.accepted_answer_id) if question.accepted_answer_id else None
    )
    if (previous.id if previous else None) == answer_id:
        return question
    if previous is not None and previous.author_id != question.author_id:
        _add_reputation(session, previous.author_id, -ACCEPT_POINTS)
    question.accepted_answer_id = chosen.id if chosen else None
    question.last_activity_at = utcnow()
    session.flush()
    if chosen is not None:
        if chosen.author_id != question.author_id:
            _add_reputation(session, chosen.author_id, ACCEPT_POINTS)
        record_activity(
            session,
            actor,
            actor.organization,
            "answer.accepted",
            chosen,
            {"author_id": chosen.author_id, "question_id": question.id},
        )
        signals.answer_accepted.send(chosen, session=session, actor=actor)
        answerer = session.get(User, chosen.author_id) if chosen.author_id else None
        if answerer is not None and answerer.id != actor.id and answerer.active:
            notify(
                session,
                answerer,
                "qa_accepted",
                _l("Your answer to “%(title)s” was accepted.", title=question.title),
                external_url("qa.question", question_id=question.id, _anchor=f"answer-{chosen.id}"),
            )
    reindex_question(session, question)
    return question


def mark_helpful(session: Session, user: User, answer_id: int) -> Answer:
    """ "This helped me": once per person, counted per organization."""
    reply = get_answer(session, user, answer_id, published=True)
    if reply.author_id == user.id:
        raise DomainError(str(_l("You cannot mark your own answer as helpful.")))
    try:
        with session.begin_nested():
            session.add(
                HelpfulMark(
                    answer_id=reply.id, user_id=user.id, organization_id=user.organization_id
                )
            )
    except IntegrityError as error:
        raise Conflict(str(_l("You already said this helped you."))) from error
    session.execute(
        update(Answer)
        .where(Answer.id == reply.id)
        .values(helpful_count=Answer.helpful_count + 1)
        .execution_options(synchronize_session=False)
    )
    session.expire(reply, ["helpful_count"])
    record_activity(
        session,
        user,
        user.organization,
        "answer.helpful",
        reply,
        {"author_id": reply.author_id, "question_id": reply.question_id, "answer_id": reply.id},
    )
    signals.answer_marked_helpful.send(reply, session=session, actor=user)
    return reply


@dataclass(frozen=True)
class Helped:
    people: int
    organizations: int


def helped_counts(session: Session, answer_ids: Sequence[int]) -> dict[int, Helped]:
    """People and organizations helped, per answer, in one grouped query."""
    if not answer_ids:
        return {}
    rows = session.execute(
        select(
            HelpfulMark.answer_id,
            func.count(),
            func.count(func.distinct(HelpfulMark.organization_id)),
        )
        .where(HelpfulMark.answer_id.in_(answer_ids))
        .group_by(HelpfulMark.answer_id)
    ).all()
    return {answer_id: Helped(people, orgs) for answer_id, people, orgs in rows}


# --- closing, duplicates, following ---------------------------------------------------------


def close(session: Session, actor: User, question_id: int, reason: str) -> Question:
    question = get_question(session, actor, question_id, published=True)
    authorize(actor, Action.CLOSE_QUESTION, question)
    reason = clean_text(reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise Invalid(
            str(_l("Give a reason of at most %(n)d characters.", n=MAX_REASON)), field="reason"
        )
    if question.status != QuestionStatus.OPEN:
        raise Conflict(str(_l("This question is already closed.")))
    question.status = QuestionStatus.CLOSED
    question.close_reason = reason
    question.closed_at = utcnow()
    question.closed_by_id = actor.id
    record_activity(
        session, actor, actor.organization, "question.closed", question, {"reason": reason}
    )
    reindex_question(session, question)
    return question


def reopen(session: Session, actor: User, question_id: int) -> Question:
    question = get_question(session, actor, question_id, published=True)
    authorize(actor, Action.CLOSE_QUESTION, question)
    if question.status == QuestionStatus.OPEN:
        raise Conflict(str(_l("This question is already open.")))
    question.status = QuestionStatus.OPEN
    question.close_reason = None
    question.closed_at = None
    question.closed_by_id = None
    question.duplicate_of_id = None
    record_activity(session, actor, actor.organization, "question.reopened", question)
    reindex_question(session, question)
    return question


def mark_duplicate(session: Session, actor: User, question_id: int, target_id: int) -> Question:
    """Close as a duplicate of another visible question; its page then leads to the target.
    Votes stay on the duplicate and keep counting."""
    question = get_question(session, actor, question_id, published=True)
    authorize(actor, Action.CLOSE_QUESTION, question)
    try:
        target = get_question(session, actor, target_id, published=True)
    except NotFound as error:
        raise Invalid(
            str(_l("Enter the number of a published question you can see.")), field="target"
        ) from error
    while target.status == QuestionStatus.DUPLICATE and target.duplicate_of_id:
        target = get_question(session, actor, target.duplicate_of_id, published=True)
    if target.id == question.id:
        raise Invalid(str(_l("A question cannot duplicate itself.")), field="target")
    if target.is_private and not question.is_private:
        raise Invalid(str(_l("A public question cannot point to a private one.")), field="target")
    question.status = QuestionStatus.DUPLICATE
    question.duplicate_of_id = target.id
    question.closed_at = utcnow()
    question.closed_by_id = actor.id
    question.close_reason = None
    record_activity(
        session,
        actor,
        actor.organization,
        "question.duplicate",
        question,
        {"duplicate_of": target.id},
    )
    reindex_question(session, question)
    return question


def follow(session: Session, user: User, question_id: int) -> bool:
    """Follow (idempotent); returns whether a new follow was made."""
    question = get_question(session, user, question_id, published=True)
    try:
        with session.begin_nested():
            session.add(Follow(user_id=user.id, question_id=question.id))
    except IntegrityError:
        return False
    record_activity(session, user, user.organization, "question.followed", question)
    return True


def unfollow(session: Session, user: User, question_id: int) -> None:
    question = get_question(session, user, question_id)
    row = session.get(Follow, (user.id, question.id))
    if row is not None:
        session.delete(row)


def _tag(session: Session, user: User | None, name: str) -> Tag:
    if not _signed_in(user):
        raise PermissionDenied(str(_l("Sign in to follow a tag.")))
    tag = session.scalar(select(Tag).where(Tag.name == (name or "").strip().lower()))
    if tag is None:
        raise NotFound(str(_l("No question has this tag yet.")))
    return tag


def follow_tag(session: Session, user: User, name: str) -> bool:
    """Follow a tag (idempotent); returns whether a new follow was made."""
    tag = _tag(session, user, name)
    if session.get(TagFollow, (user.id, tag.id)) is not None:
        return False
    session.add(TagFollow(user_id=user.id, tag_id=tag.id))
    session.flush()
    return True


def unfollow_tag(session: Session, user: User, name: str) -> None:
    tag = _tag(session, user, name)
    session.execute(
        delete(TagFollow).where(TagFollow.user_id == user.id, TagFollow.tag_id == tag.id)
    )


def follows_tag(session: Session, user: User | None, name: str) -> bool:
    if not _signed_in(user):
        return False
    return bool(
        session.scalar(
            select(func.count())
            .select_from(TagFollow)
            .join(Tag, Tag.id == TagFollow.tag_id)
            .where(TagFollow.user_id == user.id, Tag.name == name)  # type: ignore[union-attr]
        )
    )


def _tell(
    session: Session,
    people: Iterable[User],
    kind: str,
    message: Any,
    subject: Any,
    topic: str,
    question: Question,
    post_html: str,
    link: str,
    **context: Any,
) -> int:
    """Every Q&A notice: to each person the notification, and the mail of its topic (the topic
    names the mail's template) with the post's first 500 characters, in their language; all
    mails queued at once (a tag's followers can be thousands). The number of people told."""
    excerpt = html_to_plain_text(post_html, 500)
    mails = []
    for person in people:
        notify(session, person, kind, message, link)
        mails.append(
            Mail(
                person.email,
                subject,
                topic,
                person.locale,
                topic,
                dict(user=person, question=question, excerpt=excerpt, link=link, **context),
            )
        )
    queue_mails(session, mails)
    return len(mails)


def followed_tags(session: Session, user: User) -> list[str]:
    return list(
        session.scalars(
            select(Tag.name)
            .join(TagFollow, TagFollow.tag_id == Tag.id)
            .where(TagFollow.user_id == user.id)
            .order_by(Tag.name)
        )
    )


def tell_followers(session: Session, kind: str, object_id: int) -> int:
    """Tell the followers of a newly published question (its tags') or answer (its
    question's), run after the publication committed; nothing if it is gone or hidden since,
    or if they were told already. The post is marked told in the same transaction, under its
    row lock: a second run, sent again by the task outbox or racing the first on another
    worker, finds the mark and tells nobody twice."""
    model: type[Question] | type[Answer] = Question if kind == QUESTION_KIND else Answer
    claimed = session.execute(
        update(model)
        .where(
            model.id == object_id,
            model.published.is_(True),
            model.followers_told_at.is_(None),
        )
        .values(followers_told_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return 0
    if kind == QUESTION_KIND:
        question = session.get(Question, object_id)
        return notify_tag_followers(session, question) if question is not None else 0
    reply = session.get(Answer, object_id)
    return notify_followers(session, reply) if reply is not None else 0


def notify_tag_followers(session: Session, question: Question) -> int:
    """Tell the people who follow any of a newly published question's tags (once each, and
    only those who may see it; not its author): a notification and a mail."""
    tag_ids = [tag.id for tag in question.tags]
    if not tag_ids:
        return 0
    people = session.scalars(
        select(User)
        .where(
            User.id.in_(select(TagFollow.user_id).where(TagFollow.tag_id.in_(tag_ids))),
            User.active.is_(True),
            User.id != question.author_id,
        )
        .options(selectinload(User.role_grants))
    ).all()
    link = external_url("qa.question", question_id=question.id)
    tags = " ".join(tag.name for tag in question.tags)
    return _tell(
        session,
        [person for person in people if can(person, Action.VIEW_CONTENT, question)],
        "qa_tagged",
        _l("New question tagged %(tags)s: “%(title)s”", tags=tags, title=question.title),
        _l("New question: %(title)s", title=question.title),
        TAG_MAIL,
        question,
        question.body_html,
        link,
        tags=tags,
    )


def notify_followers(session: Session, reply: Answer) -> int:
    """Tell every follower who may see the question (except the answer's author) about a newly
    published answer: a notification and a mail in their language."""
    question = session.get(Question, reply.question_id)
    if question is None:
        return 0
    followers = session.scalars(
        select(User)
        .join(Follow, Follow.user_id == User.id)
        .where(Follow.question_id == question.id, User.active.is_(True))
        .options(selectinload(User.role_grants))
    ).all()
    link = external_url("qa.question", question_id=question.id, _anchor=f"answer-{reply.id}")
    return _tell(
        session,
        [
            person
            for person in followers
            if person.id != reply.author_id and can(person, Action.VIEW_CONTENT, question)
        ],
        "qa_answer",
        _l("New answer to “%(title)s”", title=question.title),
        _l("New answer: %(title)s", title=question.title),
        NEW_ANSWER_MAIL,
        question,
        reply.body_html,
        link,
    )


def notify_commented(session: Session, note: Comment) -> bool:
    """Tell the author of the question or answer a newly published comment is on (unless they
    wrote it, or can no longer see the question): a notification and a mail."""
    reply = session.get(Answer, note.answer_id) if note.answer_id is not None else None
    question = session.get(Question, reply.question_id if reply else note.question_id)
    post_author_id = reply.author_id if reply is not None else getattr(question, "author_id", None)
    person = session.get(User, post_author_id) if post_author_id is not None else None
    if (
        question is None
        or person is None
        or person.id == note.author_id
        or not person.active
        or not can(person, Action.VIEW_CONTENT, question)
    ):
        return False
    anchor = f"answer-{reply.id}" if reply is not None else None
    link = external_url("qa.question", question_id=question.id, _anchor=anchor)
    message = (
        _l("New comment on your answer to “%(title)s”", title=question.title)
        if reply is not None
        else _l("New comment on your question “%(title)s”", title=question.title)
    )
    subject = _l("New comment: %(title)s", title=question.title)
    _tell(
        session,
        [person],
        "qa_comment",
        message,
        subject,
        COMMENT_MAIL,
        question,
        note.body_html,
        link,
    )
    return True


def is_following(session: Session, user: User | None, question_id: int) -> bool:
    if not _signed_in(user):
        return False
    return session.get(Follow, (user.id, question_id)) is not None  # type: ignore[union-attr]


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    sort: str = "newest"
    tag: str | None = None
    product_area: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class ListRow:
    """What one row of a question list shows: plain values, read as plain columns (building
    ORM objects was most of the cost of the page)."""

    id: int
    title: str
    product_area: str | None
    is_private: bool
    status: str
    score: int
    answer_count: int
    view_count: int
    accepted_answer_id: int | None
    duplicate_of_id: int | None
    created_at: Any
    last_activity_at: Any
    author: AuthorRef | None
    tags: list[str]
    published: bool = True


_LIST_COLUMNS = (
    Question.id,
    Question.title,
    Question.product_area,
    Question.is_private,
    Question.status,
    Question.score,
    Question.answer_count,
    Question.view_count,
    Question.accepted_answer_id,
    Question.duplicate_of_id,
    Question.created_at,
    Question.last_activity_at,
    User.id.label("author_id"),
    User.display_name.label("author_name"),
    User.active.label("author_active"),
    Organization.name.label("organization_name"),
)


def list_statement(viewer: User | None, filters: ListFilters) -> Select[Any]:
    """Published questions the viewer may see, sorted and filtered, as plain columns with the
    author's name and organization joined in."""
    statement = (
        select(*_LIST_COLUMNS)
        .select_from(Question)
        .outerjoin(User, User.id == Question.author_id)
        .outerjoin(Organization, Organization.id == User.organization_id)
        .where(Question.published.is_(True), visibility_clause(viewer))
    )
    if filters.tag:
        statement = statement.where(Question.tags.any(Tag.name == filters.tag))
    if filters.product_area:
        statement = statement.where(Question.product_area == filters.product_area)
    if filters.status in ("open", "closed", "duplicate"):
        statement = statement.where(Question.status == filters.status)
    elif filters.status == "accepted":
        statement = statement.where(Question.accepted_answer_id.is_not(None))
    if filters.sort == "active":
        order = [Question.last_activity_at.desc(), Question.id.desc()]
    elif filters.sort == "votes":
        order = [Question.score.desc(), Question.id.desc()]
    else:
        order = [Question.created_at.desc(), Question.id.desc()]
    if filters.sort == "unanswered":
        statement = statement.where(
            Question.answer_count == 0, Question.status == QuestionStatus.OPEN
        )
    return statement.order_by(*order)


def list_questions(
    session: Session, viewer: User | None, filters: ListFilters, page: int, per_page: int
) -> Page[ListRow]:
    """One page in two queries whatever its size: the rows with the total riding along as an
    uncorrelated subquery (as ``paginate`` does), then the tags of those rows."""
    if filters.sort not in SORTS:
        raise Invalid(str(_l("Unknown sort order.")), field="sort")
    if filters.status and filters.status not in STATUSES:
        raise Invalid(str(_l("Unknown status.")), field="status")
    if filters.product_area and filters.product_area not in PRODUCT_AREAS:
        raise Invalid(str(_l("Choose a product area from the list.")), field="product_area")
    statement = list_statement(viewer, filters)
    counted = select(func.count()).select_from(
        statement.with_only_columns(Question.id).order_by(None).subquery()
    )
    rows = session.execute(
        statement.add_columns(counted.scalar_subquery().label("total_rows"))
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = rows[0].total_rows if rows else (session.scalar(counted) or 0)
    tags: dict[int, list[str]] = defaultdict(list)
    if rows:
        for question_id, name in session.execute(
            select(question_tags.c.question_id, Tag.name)
            .join(Tag, Tag.id == question_tags.c.tag_id)
            .where(question_tags.c.question_id.in_([row.id for row in rows]))
            .order_by(Tag.name)
        ):
            tags[question_id].append(name)
    items = [
        ListRow(
            id=row.id,
            title=row.title,
            product_area=row.product_area,
            is_private=row.is_private,
            status=row.status,
            score=row.score,
            answer_count=row.answer_count,
            view_count=row.view_count,
            accepted_answer_id=row.accepted_answer_id,
            duplicate_of_id=row.duplicate_of_id,
            created_at=row.created_at,
            last_activity_at=row.last_activity_at,
            author=AuthorRef.of(row),
            tags=tags.get(row.id, []),
        )
        for row in rows
    ]
    return Page(items=items, page=page, per_page=per_page, total=total)


@dataclass
class QuestionView:
    """Everything the question page shows, loaded in a fixed number of queries."""

    question: Question
    answers: list[Answer]
    comments: dict[tuple[str, int], list[Comment]] = field(default_factory=dict)
    my_votes: dict[tuple[str, int], int] = field(default_factory=dict)
    my_helpful: set[int] = field(default_factory=set)
    helped: dict[int, Helped] = field(default_factory=dict)
    states: dict[tuple[str, int], str | None] = field(default_factory=dict)
    # The viewer's "Flag" control per (kind, id): open, or already flagged (see moderation).
    flags: dict[tuple[str, int], str] = field(default_factory=dict)
    following: bool = False
    duplicate_of: Question | None = None


def question_view(session: Session, viewer: User | None, question_id: int) -> QuestionView:
    # The question with what the page shows of it (author, organization, tags) at once.
    question = _visible(
        viewer,
        session.execute(
            select(Question)
            .where(Question.id == question_id)
            .options(
                joinedload(Question.author).lazyload(User.role_grants),
                joinedload(Question.organization),
                selectinload(Question.tags),
            )
        )
        .unique()
        .scalar_one_or_none(),
    )
    me = viewer.id if _signed_in(viewer) else None  # type: ignore[union-attr]
    seen_unpublished = or_(Answer.published.is_(True), Answer.author_id == me)
    if is_moderator(viewer):
        seen_unpublished = true()
    answers = list(
        session.scalars(
            select(Answer)
            .where(Answer.question_id == question.id, seen_unpublished)
            .options(joinedload(Answer.author).lazyload(User.role_grants))
        )
    )
    answers.sort(key=lambda a: (a.id != question.accepted_answer_id, -a.score, a.id))
    answer_ids = [a.id for a in answers]
    comment_filter = or_(Comment.published.is_(True), Comment.author_id == me)
    comments: dict[tuple[str, int], list[Comment]] = defaultdict(list)
    for note in session.scalars(
        select(Comment)
        .where(
            or_(Comment.question_id == question.id, Comment.answer_id.in_(answer_ids or [0])),
            comment_filter,
        )
        .options(joinedload(Comment.author).lazyload(User.role_grants))
        .order_by(Comment.id)
    ):
        key = (
            (QUESTION_KIND, note.question_id) if note.question_id else (ANSWER_KIND, note.answer_id)
        )
        comments[key].append(note)  # type: ignore[arg-type]
    view = QuestionView(question=question, answers=answers, comments=dict(comments))
    view.helped = helped_counts(session, answer_ids)
    if me is not None:
        for vote_row in session.scalars(
            select(Vote).where(
                Vote.user_id == me,
                or_(Vote.question_id == question.id, Vote.answer_id.in_(answer_ids or [0])),
            )
        ):
            key = (
                (QUESTION_KIND, vote_row.question_id)
                if vote_row.question_id
                else (ANSWER_KIND, vote_row.answer_id)
            )
            view.my_votes[key] = vote_row.value  # type: ignore[index]
        view.my_helpful = set(
            session.scalars(
                select(HelpfulMark.answer_id).where(
                    HelpfulMark.user_id == me, HelpfulMark.answer_id.in_(answer_ids or [0])
                )
            )
        )
        view.following = is_following(session, viewer, question.id)
        if not question.published:
            view.states[(QUESTION_KIND, question.id)] = moderation.item_state(
                session, QUESTION_KIND, question.id
            )
        for reply in answers:
            if not reply.published:
                view.states[(ANSWER_KIND, reply.id)] = moderation.item_state(
                    session, ANSWER_KIND, reply.id
                )
        for notes in view.comments.values():
            for note in notes:
                if not note.published:
                    view.states[(COMMENT_KIND, note.id)] = moderation.item_state(
                        session, COMMENT_KIND, note.id
                    )
        view.flags = moderation.flag_states(
            session,
            viewer,
            [
                (QUESTION_KIND, question.id),
                *((ANSWER_KIND, reply.id) for reply in answers if reply.published),
                *(
                    (COMMENT_KIND, note.id)
                    for notes in view.comments.values()
                    for note in notes
                    if note.published
                ),
            ],
        )
    view.duplicate_of = duplicate_target(session, viewer, question)
    return view


def duplicate_target(session: Session, viewer: User | None, question: Question) -> Question | None:
    """The original a duplicate points to, if the viewer may see it (else no redirect)."""
    if not question.duplicate_of_id:
        return None
    target = session.get(Question, question.duplicate_of_id)
    if target is not None and target.published and can(viewer, Action.VIEW_CONTENT, target):
        return target
    return None


def record_view(session: Session, viewer: User | None, question: Question) -> bool:
    """Count a signed-in member's read (``content.viewed``, for trust levels), at most once
    per person, question and day."""
    if not _signed_in(viewer):
        return False
    since = utcnow() - timedelta(days=1)
    seen = session.scalar(
        select(Activity.id)
        .where(
            Activity.actor_id == viewer.id,  # type: ignore[union-attr]
            Activity.verb == "content.viewed",
            Activity.subject_type == Question.__tablename__,
            Activity.subject_id == question.id,
            Activity.occurred_at > since,
        )
        .limit(1)
    )
    if seen:
        return False
    record_activity(
        session,
        viewer,
        viewer.organization,
        "content.viewed",
        question,
        {"kind": QUESTION_KIND},  # type: ignore[union-attr]
    )
    session.execute(
        update(Question)
        .where(Question.id == question.id)
        .values(view_count=Question.view_count + 1)
        .execution_options(synchronize_session=False)
    )
    return True


def revisions(
    session: Session,
    viewer: User | None,
    question_id: int | None = None,
    answer_id: int | None = None,
) -> tuple[Question, Answer | None, list[Revision]]:
    if answer_id is not None:
        reply: Answer | None = get_answer(session, viewer, answer_id)
        question = session.get(Question, reply.question_id)  # type: ignore[union-attr]
        where = Revision.answer_id == answer_id
    else:
        reply = None
        question = get_question(session, viewer, question_id)  # type: ignore[arg-type]
        where = Revision.question_id == question_id
    rows = list(
        session.scalars(
            select(Revision)
            .where(where)
            .options(joinedload(Revision.editor))
            .order_by(Revision.number)
        )
    )
    return question, reply, rows  # type: ignore[return-value]


def tag_counts(session: Session, viewer: User | None, limit: int = 30) -> list[tuple[str, int]]:
    """The most used tags among questions the viewer can see."""
    rows = session.execute(
        select(Tag.name, func.count())
        .join(question_tags, question_tags.c.tag_id == Tag.id)
        .join(Question, Question.id == question_tags.c.question_id)
        .where(Question.published.is_(True), visibility_clause(viewer))
        .group_by(Tag.name)
        .order_by(func.count().desc(), Tag.name)
        .limit(limit)
    ).all()
    return [(name, count) for name, count in rows]


def ensure_can_moderate(user: User) -> None:
    if not is_moderator(user):
        raise PermissionDenied(str(_l("Only moderators can do this.")))
