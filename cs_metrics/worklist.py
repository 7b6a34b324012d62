"""The CSM's worklist: close-the-loop and referral-ask tasks from NPS answers, referrals, and
cross-department improvement items.

Tasks come from NPS responses, in-app or imported alike: :func:`open_loop_tasks` looks at the
responses since a moment and opens one task per detractor (call back within N business days)
and per promoter (ask for a referral). It is safe to run as often as one likes: a response that
already has a task, open or finished, gets none, and the partial unique index on
``(source_type, source_id)`` of open tasks settles two runs racing each other.

What a CSM should know before calling a customer back comes from the activity log only (the
contract between the portal and CS): the questions that organization asked that are still
open (``signals.settled_questions``), and the ideas its people voted for.

Every change needs ``MANAGE_CS`` on the account (``access.require_account``, so own-book
scoping answers "not found" outside the book); reading needs ``VIEW_CS``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from cs_metrics import kpis, nps, signals
from cs_metrics.access import book_filter, require_account, require_cs
from cs_metrics.models import (
    AccountProfile,
    CsTask,
    Department,
    ImprovementItem,
    ImprovementStatus,
    NpsResponse,
    Referral,
    ReferralStatus,
    TaskKind,
    TaskStatus,
)
from cs_metrics.settings import get_setting
from portal.core.activity import Activity
from portal.core.bulk import bulk_insert
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, NotFound
from portal.core.i18n import in_zone
from portal.core.identity import Organization, OrgKind, Role, User, UserRole
from portal.core.notifications import notify
from portal.core.permissions import Action
from portal.core.text import clean_text
from portal.core.urls import external_url

SOURCE_NPS = "nps_response"
# How far back the nightly run and the after-import run look: an older answer needs no call-back.
LOOKBACK = timedelta(days=14)
MAX_OUTCOME = 2000
MAX_TEXT = 5000
MAX_TITLE = 300
MAX_NAME = 200
CONTEXT_LIMIT = 20
EXPORT_LIMIT = 50_000

TASK_STATES = ("open", "overdue", "done", "all")
TASK_SCOPES = ("mine", "book")
FINISHED = (TaskStatus.DONE, TaskStatus.CANCELLED)
REFERRAL_MOVES: dict[str, frozenset[str]] = {
    ReferralStatus.ASKED: frozenset(
        {ReferralStatus.RECEIVED, ReferralStatus.CONVERTED, ReferralStatus.DECLINED}
    ),
    ReferralStatus.RECEIVED: frozenset({ReferralStatus.CONVERTED, ReferralStatus.DECLINED}),
    ReferralStatus.CONVERTED: frozenset(),
    ReferralStatus.DECLINED: frozenset(),
}
COUNTED_REFERRALS = (ReferralStatus.RECEIVED, ReferralStatus.CONVERTED)


# --------------------------------------------------------------------------------------------
# Close the loop: tasks from NPS responses
# --------------------------------------------------------------------------------------------


def _business_days(session: Session) -> int:
    value = get_setting(session, "close_the_loop_business_days")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 2
    return value


def open_loop_tasks(session: Session, since: datetime, *, only: Sequence[int] | None = None) -> int:
    """Open a task for every NPS response since ``since`` that has none yet; returns how many.

    Detractors (0-6) get a close-the-loop task due ``close_the_loop_business_days`` business
    days after the response (in the CSM's time zone); promoters (9-10) a referral-ask task
    without a due date. The assignee is the account's CSM (none: the task waits unassigned in
    every book that holds the account). ``only`` limits the run to those response ids.
    """
    business_days = _business_days(session)
    has_task = exists().where(CsTask.source_type == SOURCE_NPS, CsTask.source_id == NpsResponse.id)
    statement = (
        select(
            NpsResponse.id,
            NpsResponse.organization_id,
            NpsResponse.score,
            NpsResponse.responded_at,
            AccountProfile.csm_id,
            User.timezone,
            User.active,
        )
        .join(Organization, Organization.id == NpsResponse.organization_id)
        .outerjoin(AccountProfile, AccountProfile.organization_id == NpsResponse.organization_id)
        .outerjoin(User, User.id == AccountProfile.csm_id)
        .where(
            Organization.kind == OrgKind.CUSTOMER,
            NpsResponse.responded_at >= since,
            or_(NpsResponse.score <= 6, NpsResponse.score >= 9),
            ~has_task,
        )
        .order_by(NpsResponse.responded_at, NpsResponse.id)
    )
    if only is not None:
        statement = statement.where(NpsResponse.id.in_(list(only)))
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for response_id, org_id, score, responded_at, csm_id, timezone, active in session.execute(
        statement
    ):
        category = nps.classify(score)
        assignee = csm_id if active else None
        detractor = category == nps.Category.DETRACTOR
        due = (
            nps.close_the_loop_due(
                in_zone(responded_at, timezone).date(), business_days=business_days
            )
            if detractor
            else None
        )
        rows.append(
            {
                "organization_id": org_id,
                "assignee_id": assignee,
                "kind": TaskKind.CLOSE_THE_LOOP if detractor else TaskKind.REFERRAL_ASK,
                "title": (
                    f"Close the loop: NPS {score}"
                    if detractor
                    else f"Ask for a referral: NPS {score}"
                ),
                "details": {"score": score, "category": str(category)},
                "due_on": due,
                "status": TaskStatus.OPEN,
                "source_type": SOURCE_NPS,
                "source_id": response_id,
                "created_at": now,
            }
        )
    ids = bulk_insert(session, CsTask.__table__, rows, skip_conflicting=True)
    inserted: Sequence[Any] = [(row["assignee_id"], row["kind"]) for row in rows]
    if len(ids) < len(rows):  # another run opened some of these tasks meanwhile
        inserted = session.execute(
            select(CsTask.assignee_id, CsTask.kind).where(CsTask.id.in_(ids))
        ).all()
    detractors: Counter[int] = Counter(  # new close-the-loop tasks per CSM, to tell them
        assignee
        for assignee, kind in inserted
        if assignee is not None and kind == TaskKind.CLOSE_THE_LOOP
    )
    if detractors:
        _tell_assignees(session, detractors)
    return len(ids)


def _tell_assignees(session: Session, counts: Counter[int]) -> None:
    link = external_url("cs.tasks", scope="mine", state="open")
    for person in session.scalars(select(User).where(User.id.in_(list(counts)))):
        n = counts[person.id]
        notify(
            session,
            person,
            "cs_close_the_loop",
            lazy_ngettext("%(num)d detractor to call back", "%(num)d detractors to call back", n),
            link,
        )


# --------------------------------------------------------------------------------------------
# Tasks: lists, detail, finishing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    """A task with the names a list shows (loaded in one query per page)."""

    task: CsTask
    organization: str
    assignee: str | None

    @property
    def overdue(self) -> bool:
        return (
            self.task.status == TaskStatus.OPEN
            and self.task.due_on is not None
            and self.task.due_on < utcnow().date()
        )


def tasks_query(
    session: Session,
    user: User | None,
    *,
    scope: str = "mine",
    state: str = "open",
    today: date | None = None,
) -> Select[Any]:
    """Tasks the user may see, overdue first, then by due date (undated last), newest last.

    ``scope`` "mine" is the tasks assigned to the user; "book" every task on an account in the
    user's book. ``state`` is open, overdue, done (done or cancelled) or all."""
    staff = require_cs(user)
    today = today or utcnow().date()
    if scope not in TASK_SCOPES:
        raise DomainError(str(_l("Unknown list.")), field="scope")
    if state not in TASK_STATES:
        raise DomainError(str(_l("Unknown filter.")), field="state")
    is_overdue = and_(
        CsTask.status == TaskStatus.OPEN, CsTask.due_on.is_not(None), CsTask.due_on < today
    )
    statement = (
        select(CsTask)
        .join(Organization, Organization.id == CsTask.organization_id)
        .where(book_filter(session, staff))
    )
    if scope == "mine":
        statement = statement.where(CsTask.assignee_id == staff.id)
    if state == "open":
        statement = statement.where(CsTask.status == TaskStatus.OPEN)
    elif state == "overdue":
        statement = statement.where(is_overdue)
    elif state == "done":
        statement = statement.where(CsTask.status.in_(FINISHED))
    return statement.order_by(
        case((is_overdue, 0), else_=1),
        CsTask.due_on.is_(None),
        CsTask.due_on,
        CsTask.id,
    )


def my_task_counts(
    session: Session, user: User | None, today: date | None = None
) -> tuple[int, int]:
    """The user's open tasks, and how many of them are overdue (their home page's card)."""
    today = today or utcnow().date()
    tasks = tasks_query(session, user, scope="mine", today=today).order_by(None).subquery()
    late = and_(tasks.c.due_on.is_not(None), tasks.c.due_on < today)
    total, overdue = session.execute(
        select(func.count(), func.count().filter(late)).select_from(tasks)
    ).one()
    return total, overdue


def names(
    session: Session, org_ids: set[int], user_ids: set[int]
) -> tuple[dict[int, str], dict[int, str]]:
    """Account and people names by id, for lists (two queries at most)."""
    orgs = (
        dict(
            session.execute(
                select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))
            ).all()
        )
        if org_ids
        else {}
    )
    users = (
        dict(session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).all())
        if user_ids
        else {}
    )
    return orgs, users


def task_rows(session: Session, tasks: Sequence[CsTask]) -> list[TaskRow]:
    """The tasks with their account and assignee names (two queries, whatever the count)."""
    orgs, users = names(
        session,
        {t.organization_id for t in tasks},
        {t.assignee_id for t in tasks if t.assignee_id is not None},
    )
    return [
        TaskRow(t, orgs.get(t.organization_id, ""), users.get(t.assignee_id or 0)) for t in tasks
    ]


@dataclass(frozen=True)
class QuestionRef:
    id: int
    title: str | None
    asked_at: datetime
    awaiting_review: bool = False


@dataclass(frozen=True)
class IdeaRef:
    id: int
    title: str | None
    voted_at: datetime
    voters: int


@dataclass(frozen=True)
class CustomerContext:
    """What the customer is waiting for and cares about, from the activity log."""

    open_questions: list[QuestionRef] = field(default_factory=list)
    ideas_voted: list[IdeaRef] = field(default_factory=list)


def _title(data: Any) -> str | None:
    value = data.get("title") if isinstance(data, dict) else None
    return str(value)[:300] if value else None


def _awaiting_review(session: Session, org_id: int, question_ids: Sequence[int]) -> set[int]:
    """The questions moderation holds and has never shown: submitted, not yet published."""
    object_id = Activity.data["object_id"].as_integer()
    events = (
        select(object_id)
        .where(
            Activity.organization_id == org_id,
            Activity.data["kind"].as_string() == signals.QUESTION_KIND,
            object_id.in_(question_ids),
        )
        .group_by(object_id)
    )
    shown = func.count().filter(Activity.verb.in_(signals.CONTENT_SHOWN))
    held = func.count().filter(Activity.verb == signals.CONTENT_SUBMITTED)
    return set(session.scalars(events.having(held > 0, shown == 0)))


def customer_context(
    session: Session, org_id: int, *, limit: int = CONTEXT_LIMIT
) -> CustomerContext:
    """The organization's open questions and the ideas its people voted for, newest first.

    A question is open unless ``signals.settled_questions`` says otherwise (answered, closed,
    or refused by moderation); one moderation still holds is marked ``awaiting_review``."""
    asked = session.execute(
        select(Activity.subject_id, Activity.occurred_at, Activity.data)
        .where(
            Activity.organization_id == org_id,
            Activity.verb == "question.asked",
            Activity.subject_id.is_not(None),
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit * 5)
    ).all()
    ids = [row.subject_id for row in asked]
    settled = set(session.scalars(signals.settled_questions(among=ids))) if ids else set()
    held = _awaiting_review(session, org_id, ids) if ids else set()
    questions: list[QuestionRef] = []
    seen: set[int] = set()
    for subject_id, occurred_at, data in asked:
        if subject_id in settled or subject_id in seen:
            continue
        seen.add(subject_id)
        questions.append(
            QuestionRef(subject_id, _title(data), occurred_at, awaiting_review=subject_id in held)
        )
    # The newest event of each (idea, person) says whether that vote still stands.
    latest_vote: dict[tuple[int, int], tuple[str, datetime, Any]] = {}
    for subject_id, verb, occurred_at, data, actor_id in session.execute(
        select(
            Activity.subject_id,
            Activity.verb,
            Activity.occurred_at,
            Activity.data,
            Activity.actor_id,
        )
        .where(
            Activity.organization_id == org_id,
            Activity.verb.in_(("idea.voted", "idea.unvoted")),
            Activity.subject_id.is_not(None),
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit * 25)
    ):
        latest_vote.setdefault((subject_id, actor_id or 0), (verb, occurred_at, data))
    ideas: dict[int, IdeaRef] = {}
    for (subject_id, _actor), (verb, occurred_at, data) in latest_vote.items():
        if verb != "idea.voted":
            continue
        known = ideas.get(subject_id)
        ideas[subject_id] = IdeaRef(
            subject_id,
            (known.title if known else None) or _title(data),
            max(occurred_at, known.voted_at) if known else occurred_at,
            (known.voters if known else 0) + 1,
        )
    return CustomerContext(
        open_questions=questions[:limit],
        ideas_voted=sorted(ideas.values(), key=lambda i: i.voted_at, reverse=True)[:limit],
    )


@dataclass(frozen=True)
class TaskDetail:
    task: CsTask
    organization: Organization
    assignee: User | None
    response: NpsResponse | None
    referral: Referral | None
    context: CustomerContext
    completed_by: User | None = None


def get_task(
    session: Session, user: User | None, task_id: int, action: Action = Action.VIEW_CS
) -> CsTask:
    """The task, if the user may ``action`` its account (else NotFound / PermissionDenied)."""
    require_cs(user, action)
    task = session.get(CsTask, task_id)
    if task is None:
        raise NotFound(str(_l("No such task.")))
    require_account(session, user, task.organization_id, action)
    return task


def task_detail(session: Session, user: User | None, task_id: int) -> TaskDetail:
    """The task with its NPS response, any referral asked from it and the customer's context."""
    task = get_task(session, user, task_id)
    organization = session.get(Organization, task.organization_id)
    assert organization is not None
    response = (
        session.get(NpsResponse, task.source_id)
        if task.source_type == SOURCE_NPS and task.source_id is not None
        else None
    )
    referral = (
        session.scalar(
            select(Referral).where(Referral.nps_response_id == response.id).order_by(Referral.id)
        )
        if response is not None
        else None
    )
    return TaskDetail(
        task=task,
        organization=organization,
        assignee=session.get(User, task.assignee_id) if task.assignee_id else None,
        response=response,
        referral=referral,
        context=customer_context(session, task.organization_id),
        completed_by=session.get(User, task.completed_by_id) if task.completed_by_id else None,
    )


def _clean(value: str | None, limit: int, field_name: str, *, required: bool = False) -> str | None:
    text = clean_text(value or "").strip()
    if required and not text:
        raise DomainError(str(_l("This field is required.")), field=field_name)
    if len(text) > limit:
        raise DomainError(str(_l("Use at most %(max)d characters.", max=limit)), field=field_name)
    return text or None


FORMULA_START = ("=", "+", "-", "@")


def _email(value: str | None, field_name: str) -> str | None:
    """A valid address (syntax, no deliverability lookup), lower-cased; None when blank. One
    a spreadsheet would run as a formula (``=evil@x.y``) is refused too: it ends up in CSVs."""
    text = _clean(value, 254, field_name)
    if text is None:
        return None
    try:
        if text.startswith(FORMULA_START):
            raise EmailNotValidError(text)
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise DomainError(str(_l("Enter a valid email address.")), field=field_name) from None
    return result.normalized.lower()


def finish_task(
    session: Session, actor: User | None, task_id: int, status: str, outcome: str
) -> CsTask:
    """Mark an open task done or cancelled, with what came of it (required)."""
    if status not in FINISHED:
        raise DomainError(str(_l("Unknown status.")), field="status")
    task = get_task(session, actor, task_id, Action.MANAGE_CS)
    assert actor is not None
    text = _clean(outcome, MAX_OUTCOME, "outcome", required=True)
    if task.status != TaskStatus.OPEN:
        raise Conflict(str(_l("This task is already finished.")))
    task.status = status
    task.outcome = text
    task.completed_at = utcnow()
    task.completed_by_id = actor.id
    session.flush()
    return task


# --------------------------------------------------------------------------------------------
# Referrals
# --------------------------------------------------------------------------------------------


def _account_csm(session: Session, org_id: int) -> int | None:
    return session.scalar(
        select(AccountProfile.csm_id).where(AccountProfile.organization_id == org_id)
    )


def ask_referral(
    session: Session,
    actor: User | None,
    org_id: int,
    *,
    referrer_email: str | None = None,
    notes: str | None = None,
    task_id: int | None = None,
) -> Referral:
    """Record that a promoter at ``org_id`` was asked for a referral (counted for the
    account's CSM). From a referral-ask task, the task is completed and its NPS response linked.
    """
    require_account(session, actor, org_id, Action.MANAGE_CS)
    assert actor is not None
    email = _email(referrer_email, "referrer_email")
    text = _clean(notes, MAX_TEXT, "notes")
    response_id = None
    task = None
    if task_id is not None:
        task = get_task(session, actor, task_id, Action.MANAGE_CS)
        if task.organization_id != org_id or task.kind != TaskKind.REFERRAL_ASK:
            raise DomainError(str(_l("This task is not a referral ask.")), field="task_id")
        if task.status != TaskStatus.OPEN:
            raise Conflict(str(_l("This task is already finished.")))
        response_id = task.source_id if task.source_type == SOURCE_NPS else None
        if email is None and response_id is not None:
            response = session.get(NpsResponse, response_id)
            email = response.contact_email if response is not None else None
    referral = Referral(
        organization_id=org_id,
        nps_response_id=response_id,
        csm_id=_account_csm(session, org_id) or (actor.id if actor.has_role(Role.CSM) else None),
        referrer_email=email,
        status=ReferralStatus.ASKED,
        asked_at=utcnow(),
        notes=text,
    )
    session.add(referral)
    if task is not None:
        task.status = TaskStatus.DONE
        task.outcome = text or "Asked for a referral."
        task.completed_at = utcnow()
        task.completed_by_id = actor.id
    session.flush()
    return referral


def get_referral(
    session: Session, user: User | None, referral_id: int, action: Action = Action.VIEW_CS
) -> Referral:
    require_cs(user, action)
    referral = session.get(Referral, referral_id)
    if referral is None:
        raise NotFound(str(_l("No such referral.")))
    require_account(session, user, referral.organization_id, action)
    return referral


def update_referral(
    session: Session,
    actor: User | None,
    referral_id: int,
    status: str,
    *,
    referred_company: str | None = None,
    referred_contact: str | None = None,
    notes: str | None = None,
) -> Referral:
    """Move a referral on: asked -> received / converted / declined, received -> converted /
    declined. A received or converted referral names the referred company."""
    referral = get_referral(session, actor, referral_id, Action.MANAGE_CS)
    if status not in REFERRAL_MOVES:
        raise DomainError(str(_l("Unknown status.")), field="status")
    company = _clean(referred_company, MAX_NAME, "referred_company") or referral.referred_company
    contact = _clean(referred_contact, 254, "referred_contact") or referral.referred_contact
    text = _clean(notes, MAX_TEXT, "notes")
    if status != referral.status and status not in REFERRAL_MOVES[referral.status]:
        raise Conflict(str(_l("A referral cannot go back to an earlier status.")))
    if status in COUNTED_REFERRALS and not company:
        raise DomainError(str(_l("Name the referred company.")), field="referred_company")
    referral.status = status
    referral.referred_company = company
    referral.referred_contact = contact
    if text is not None:
        referral.notes = text
    if status in COUNTED_REFERRALS and referral.received_at is None:
        referral.received_at = utcnow()
    session.flush()
    return referral


def referrals_query(
    session: Session, user: User | None, *, status: str | None = None, org_id: int | None = None
) -> Select[Any]:
    """Referrals on accounts in the user's book, newest first."""
    staff = require_cs(user)
    statement = (
        select(Referral)
        .join(Organization, Organization.id == Referral.organization_id)
        .where(book_filter(session, staff))
    )
    if status:
        if status not in REFERRAL_MOVES:
            raise DomainError(str(_l("Unknown status.")), field="status")
        statement = statement.where(Referral.status == status)
    if org_id is not None:
        statement = statement.where(Referral.organization_id == org_id)
    return statement.order_by(Referral.asked_at.desc(), Referral.id.desc())


def _bounds(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    def moment(value: date | datetime) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.combine(value, time.min, tzinfo=UTC)

    return moment(start), moment(end)


def referral_counts(
    session: Session, start: date | datetime, end: date | datetime
) -> dict[int, int]:
    """Referrals received (or converted) in ``[start, end)`` per CSM -- the referral's, else
    the account's -- for the strategic KPI (``kpis.referral_kpi``); a date means midnight UTC."""
    lo, hi = _bounds(start, end)
    owner = func.coalesce(Referral.csm_id, AccountProfile.csm_id)
    return {
        csm_id: n
        for csm_id, n in session.execute(
            select(owner, func.count(Referral.id))
            .outerjoin(AccountProfile, AccountProfile.organization_id == Referral.organization_id)
            .where(
                owner.is_not(None),
                Referral.status.in_(COUNTED_REFERRALS),
                Referral.received_at >= lo,
                Referral.received_at < hi,
            )
            .group_by(owner)
        )
    }


# --------------------------------------------------------------------------------------------
# Improvement items (the collaboration KPI)
# --------------------------------------------------------------------------------------------


def _department(value: str | None) -> str:
    if value not in {d.value for d in Department}:
        raise DomainError(str(_l("Choose a department.")), field="department")
    return value


def create_improvement(
    session: Session,
    actor: User | None,
    org_id: int,
    *,
    department: str,
    title: str,
    description: str | None = None,
    owner_name: str | None = None,
) -> ImprovementItem:
    """Open an item with another department for an account. It counts for the CSM who opens
    it (a vendor admin opening one credits the account's CSM)."""
    require_account(session, actor, org_id, Action.MANAGE_CS)
    assert actor is not None
    item = ImprovementItem(
        organization_id=org_id,
        department=_department(department),
        title=_clean(title, MAX_TITLE, "title", required=True),
        description=_clean(description, MAX_TEXT, "description"),
        owner_name=_clean(owner_name, MAX_NAME, "owner_name"),
        csm_id=actor.id if actor.has_role(Role.CSM) else _account_csm(session, org_id),
        status=ImprovementStatus.OPEN,
        opened_at=utcnow(),
    )
    session.add(item)
    session.flush()
    return item


def get_improvement(
    session: Session, user: User | None, item_id: int, action: Action = Action.VIEW_CS
) -> ImprovementItem:
    require_cs(user, action)
    item = session.get(ImprovementItem, item_id)
    if item is None:
        raise NotFound(str(_l("No such improvement item.")))
    require_account(session, user, item.organization_id, action)
    return item


def update_improvement(
    session: Session,
    actor: User | None,
    item_id: int,
    *,
    department: str,
    title: str,
    description: str | None = None,
    owner_name: str | None = None,
) -> ImprovementItem:
    item = get_improvement(session, actor, item_id, Action.MANAGE_CS)
    item.department = _department(department)
    item.title = _clean(title, MAX_TITLE, "title", required=True) or item.title
    item.description = _clean(description, MAX_TEXT, "description")
    item.owner_name = _clean(owner_name, MAX_NAME, "owner_name")
    session.flush()
    return item


def set_improvement_status(
    session: Session, actor: User | None, item_id: int, status: str
) -> ImprovementItem:
    """Open -> in progress -> closed (or straight to closed); a closed item may be reopened
    (in progress), which clears its closing time so it is counted when it closes again."""
    item = get_improvement(session, actor, item_id, Action.MANAGE_CS)
    if status not in {s.value for s in ImprovementStatus}:
        raise DomainError(str(_l("Unknown status.")), field="status")
    if status == item.status:
        return item
    if item.status == ImprovementStatus.CLOSED and status == ImprovementStatus.OPEN:
        raise Conflict(str(_l("Reopen a closed item as in progress.")))
    item.status = status
    item.closed_at = utcnow() if status == ImprovementStatus.CLOSED else None
    session.flush()
    return item


def improvements_query(
    session: Session,
    user: User | None,
    *,
    org_id: int | None = None,
    csm_id: int | None = None,
    status: str | None = None,
) -> Select[Any]:
    """Items on accounts in the user's book (of one account or one CSM), open ones first."""
    staff = require_cs(user)
    statement = (
        select(ImprovementItem)
        .join(Organization, Organization.id == ImprovementItem.organization_id)
        .where(book_filter(session, staff))
    )
    if org_id is not None:
        statement = statement.where(ImprovementItem.organization_id == org_id)
    if csm_id is not None:
        statement = statement.where(ImprovementItem.csm_id == csm_id)
    if status:
        if status not in {s.value for s in ImprovementStatus}:
            raise DomainError(str(_l("Unknown status.")), field="status")
        statement = statement.where(ImprovementItem.status == status)
    return statement.order_by(
        case((ImprovementItem.status == ImprovementStatus.CLOSED, 1), else_=0),
        ImprovementItem.opened_at.desc(),
        ImprovementItem.id.desc(),
    )


def improvement_items(
    session: Session,
    start: date | datetime,
    end: date | datetime,
    csm_ids: Sequence[int] | None = None,
) -> dict[int, list[kpis.ImprovementItem]]:
    """Per CSM, their items that overlap ``[start, end)`` (opened before the end, not closed
    before the start) as plain data for ``kpis.collaboration_kpi``: one query for all CSMs."""
    lo, hi = _bounds(start, end)
    stmt = (
        select(ImprovementItem.csm_id, ImprovementItem.opened_at, ImprovementItem.closed_at)
        .where(
            ImprovementItem.csm_id.is_not(None),
            ImprovementItem.opened_at < hi,
            or_(ImprovementItem.closed_at.is_(None), ImprovementItem.closed_at >= lo),
        )
        .order_by(ImprovementItem.opened_at, ImprovementItem.id)
    )
    if csm_ids is not None:
        stmt = stmt.where(ImprovementItem.csm_id.in_(csm_ids))
    items: dict[int, list[kpis.ImprovementItem]] = {}
    for csm_id, opened_at, closed_at in session.execute(stmt):
        items.setdefault(csm_id, []).append(
            kpis.ImprovementItem(
                opened_on=opened_at.date(), closed_on=closed_at.date() if closed_at else None
            )
        )
    return items


def improvement_counts(
    session: Session, start: date | datetime, end: date | datetime
) -> dict[int, tuple[int, int]]:
    """``(opened, closed)`` in ``[start, end)`` per CSM, for lists and reports."""
    lo, hi = _bounds(start, end)
    opened = case(
        (and_(ImprovementItem.opened_at >= lo, ImprovementItem.opened_at < hi), 1), else_=0
    )
    closed = case(
        (and_(ImprovementItem.closed_at >= lo, ImprovementItem.closed_at < hi), 1), else_=0
    )
    return {
        csm_id: (int(o or 0), int(c or 0))
        for csm_id, o, c in session.execute(
            select(ImprovementItem.csm_id, func.sum(opened), func.sum(closed))
            .where(ImprovementItem.csm_id.is_not(None))
            .group_by(ImprovementItem.csm_id)
        )
    }


def book_accounts(session: Session, user: User | None) -> list[tuple[int, str]]:
    """``(id, name)`` of the customer accounts in the user's book, by name (form choices)."""
    staff = require_cs(user)
    return [
        (org_id, name)
        for org_id, name in session.execute(
            select(Organization.id, Organization.name)
            .where(Organization.kind == OrgKind.CUSTOMER, book_filter(session, staff))
            .order_by(Organization.name, Organization.id)
        )
    ]


def cs_staff(session: Session) -> list[tuple[int, str]]:
    """``(id, name)`` of the active CSMs, for the "per CSM" filter."""
    return [
        (user_id, name)
        for user_id, name in session.execute(
            select(User.id, User.display_name)
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == Role.CSM, User.active.is_(True))
            .order_by(User.display_name, User.id)
        )
    ]
