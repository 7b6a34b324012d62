"""The raw health inputs of every customer account for one day, in SQL.

One grouped query per signal over all accounts (never a query per account), returning
``{organization_id: value}``; an account with no data for a signal is absent, so its
component is missing and the health model renormalizes the others. What each signal means:

``usage_trend``          percent change of the summed usage values, last 30 days (``day``
                         included) vs the 30 before; absent with no usage in the earlier window.
``active_seats``         distinct members of the organization with any activity in the last 30
                         days / active users of the organization (staff acting on an account,
                         say a CSM's override, are not its members and do not count).
``severe_tickets``       open tickets of severity 1 or 2 opened by the end of ``day``; absent
                         when the account has no ticket at all (no support data imported).
``csat``                 satisfied ratings (4 or 5 of 5) / rated tickets opened in 90 days, in
                         percent (the usual CSAT definition, see ``health.CSAT``).
``nps``                  NPS of the account's responses in the last 180 days.
``community_engagement`` weighted community actions in 30 days per active member
                         (``health.engagement_per_active_user``); verbs that no installed
                         feature records simply count zero.
``self_service_rate``    see ``self_service_rates``.
``payment_days_overdue`` days since the oldest unpaid invoice fell due (0: nothing overdue);
                         absent without invoices.
``purchase_frequency``   invoices (orders) dated in the last 365 days; absent without invoices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import CompoundSelect, and_, case, distinct, exists, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from cs_metrics import health, kpis
from cs_metrics.models import Invoice, NpsResponse, Ticket, UsageEvent
from cs_metrics.nps import nps_points
from portal.core.activity import Activity
from portal.core.identity import User

WINDOW_DAYS = 30
CSAT_DAYS = 90
NPS_DAYS = 180
PURCHASE_DAYS = 365
ORDER_DAYS = 90  # the largest order looked at by the alert rules
SESSION_GAP = timedelta(minutes=30)

ENGAGEMENT_VERBS: Mapping[str, str] = {
    "question.asked": "questions",
    "answer.accepted": "accepted_answers",
    "answer.helpful": "helpful_marks",
    "article.helpful": "helpful_marks",
    "idea.voted": "ideas_voted",
    "template.downloaded": "templates_downloaded",
}
SEARCH_VERBS = ("search.performed", "search.clicked")
HELPFUL_VERBS = ("answer.helpful", "article.helpful")
ASKED_VERB = "question.asked"

Values = dict[int, float]

# A question's life in the activity log: what settles it, what undoes that, and what
# moderation did to it (``content.*`` events name the question by ``object_id``).
QUESTION_KIND = "question"
ANSWER_ACCEPTED = "answer.accepted"
QUESTION_CLOSED = ("question.closed", "question.duplicate")
QUESTION_REOPENED = "question.reopened"
CONTENT_SUBMITTED = "content.submitted"
CONTENT_SHOWN = ("content.published", "content.restored")
CONTENT_GONE = ("content.rejected", "content.hidden", "content.removed", "content.withdrawn")


def settled_questions(
    end: datetime | None = None, among: Collection[int] | None = None
) -> CompoundSelect:
    """Ids of the questions that no longer wait for an answer (at ``end``, default now): one
    with an accepted answer, one closed (or closed as a duplicate) and not reopened since, and
    one moderation rejected, hid or removed and did not restore since. ``among`` limits it to
    those ids. The alert metric ``open_questions`` and a CSM task's list of open questions both
    use it, so an alert never counts questions the task does not show."""
    later = aliased(Activity)

    def before_end(table: Any) -> Any:
        return table.occurred_at < end if end is not None else true()

    def after(event: Any) -> Any:
        return or_(
            later.occurred_at > event.occurred_at,
            and_(later.occurred_at == event.occurred_at, later.id > event.id),
        )

    question_id = Activity.data["question_id"].as_integer()
    object_id = Activity.data["object_id"].as_integer()
    accepted = select(question_id.label("id")).where(
        Activity.verb == ANSWER_ACCEPTED, before_end(Activity), question_id.is_not(None)
    )
    # No NULL ids in any branch: one would make every ``NOT IN`` over this union unknown.
    closed = select(Activity.subject_id.label("id")).where(
        Activity.verb.in_(QUESTION_CLOSED),
        Activity.subject_type == "questions",
        Activity.subject_id.is_not(None),
        before_end(Activity),
        ~exists().where(
            later.verb == QUESTION_REOPENED,
            later.subject_type == "questions",
            later.subject_id == Activity.subject_id,
            before_end(later),
            after(Activity),
        ),
    )
    gone = select(object_id.label("id")).where(
        Activity.verb.in_(CONTENT_GONE),
        Activity.data["kind"].as_string() == QUESTION_KIND,
        object_id.is_not(None),  # logged before content.* events named their object
        before_end(Activity),
        ~exists().where(  # moderation logs an item under its organization: that index range
            later.organization_id == Activity.organization_id,
            later.verb.in_(CONTENT_SHOWN),
            later.data["kind"].as_string() == QUESTION_KIND,
            later.data["object_id"].as_integer() == object_id,
            before_end(later),
            after(Activity),
        ),
    )
    if among is not None:
        ids = list(among)
        accepted = accepted.where(question_id.in_(ids))
        closed = closed.where(Activity.subject_id.in_(ids))
        gone = gone.where(object_id.in_(ids))
    return accepted.union(closed, gone)


def day_end(day: date) -> datetime:
    """The first instant after ``day`` (UTC): windows are ``[day_end - n days, day_end)``."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Signals:
    """Every signal for every account that has it: ``values[component][org_id]``."""

    values: dict[str, Values]
    usage_months: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    mean_ratings: Values = field(default_factory=dict)  # see ticket_facts
    invoices: dict[int, InvoiceFacts] = field(default_factory=dict)

    def for_account(self, org_id: int) -> dict[str, float | None]:
        return {name: per_org.get(org_id) for name, per_org in self.values.items()}


def usage_months(
    session: Session, day: date, org_ids: Collection[int] | None = None
) -> dict[int, tuple[float, float, float]]:
    """Usage totals of the three 30-day windows ending on ``day`` (m0 newest), per account.

    One pass over the events serves both the health trend (m0 against m1) and the alert
    rules' month metrics, so the nightly run reads the biggest table once."""
    bounds = [
        (
            day - timedelta(days=k * WINDOW_DAYS + WINDOW_DAYS - 1),
            day - timedelta(days=k * WINDOW_DAYS),
        )
        for k in range(3)
    ]
    sums = [
        func.sum(
            case(((UsageEvent.day >= lower) & (UsageEvent.day <= upper), UsageEvent.value), else_=0)
        )
        for lower, upper in bounds
    ]
    stmt = (
        select(UsageEvent.organization_id, *sums)
        .where(UsageEvent.day >= bounds[-1][0], UsageEvent.day <= day)
        .group_by(UsageEvent.organization_id)
    )
    if org_ids is not None:
        stmt = stmt.where(UsageEvent.organization_id.in_(org_ids))
    return {
        org_id: (float(m0 or 0), float(m1 or 0), float(m2 or 0))
        for org_id, m0, m1, m2 in session.execute(stmt)
    }


def usage_trend(
    session: Session, day: date, months: Mapping[int, tuple[float, float, float]] | None = None
) -> Values:
    """Percent change of the last 30 days' usage against the 30 before (``usage_months``),
    rounded to 1e-9 points: PostgreSQL's parallel ``sum`` adds the float values in no fixed
    order, so two runs over the same events differed in the last bits, and a rerun rewrote
    about 1% of the day's snapshots (and their ``computed_at``) with nothing changed."""
    if months is None:
        months = usage_months(session, day)
    result: Values = {}
    for org_id, (current, previous, _) in months.items():
        change = health.percent_change(current, previous)
        if change is not None:
            result[org_id] = round(change, 9)
    return result


def active_members(session: Session, day: date) -> dict[int, int]:
    """Distinct members of each organization active in the 30 days up to ``day``."""
    end = day_end(day)
    rows = session.execute(
        select(Activity.organization_id, func.count(distinct(Activity.actor_id)))
        .join(User, User.id == Activity.actor_id)
        .where(
            User.organization_id == Activity.organization_id,
            Activity.occurred_at >= end - timedelta(days=WINDOW_DAYS),
            Activity.occurred_at < end,
        )
        .group_by(Activity.organization_id)
    )
    return {org_id: n for org_id, n in rows}


def seats(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(User.organization_id, func.count(User.id))
        .where(User.active.is_(True))
        .group_by(User.organization_id)
    )
    return {org_id: n for org_id, n in rows}


def active_seats(active: Mapping[int, int], seat_counts: Mapping[int, int]) -> Values:
    result: Values = {}
    for org_id, n in seat_counts.items():
        value = health.ratio(active.get(org_id, 0), n)
        if value is not None:
            result[org_id] = min(1.0, value)
    return result


def ticket_facts(session: Session, day: date) -> tuple[Values, Values, Values]:
    """Per account, in one pass over the tickets: open severe tickets, CSAT percent, and the
    mean rating (1-5) of the tickets rated in the CSAT window, which the alert rules read as
    ``avg_rating_90d``."""
    end = day_end(day)
    csat_from = end - timedelta(days=CSAT_DAYS)
    severe_open = func.sum(
        case(
            (
                (Ticket.severity <= 2) & Ticket.closed_at.is_(None) & (Ticket.opened_at < end),
                1,
            ),
            else_=0,
        )
    )
    recent_rated = (Ticket.opened_at >= csat_from) & (Ticket.opened_at < end)
    rated = func.sum(case((recent_rated & Ticket.csat.is_not(None), 1), else_=0))
    satisfied = func.sum(case((recent_rated & (Ticket.csat >= 4), 1), else_=0))
    mean = func.avg(case((recent_rated, Ticket.csat), else_=None))
    rows = session.execute(
        select(Ticket.organization_id, severe_open, rated, satisfied, mean).group_by(
            Ticket.organization_id
        )
    )
    severe: Values = {}
    csat: Values = {}
    ratings: Values = {}
    for org_id, n_severe, n_rated, n_satisfied, mean_rating in rows:
        severe[org_id] = float(n_severe or 0)
        if n_rated:
            csat[org_id] = 100.0 * (n_satisfied or 0) / n_rated
        if mean_rating is not None:
            ratings[org_id] = round(float(mean_rating), 4)
    return severe, csat, ratings


def nps_scores(session: Session, day: date) -> Values:
    end = day_end(day)
    promoters = func.sum(case((NpsResponse.score >= 9, 1), else_=0))
    passives = func.sum(case(((NpsResponse.score >= 7) & (NpsResponse.score <= 8), 1), else_=0))
    detractors = func.sum(case((NpsResponse.score <= 6, 1), else_=0))
    rows = session.execute(
        select(NpsResponse.organization_id, promoters, passives, detractors)
        .where(
            NpsResponse.responded_at >= end - timedelta(days=NPS_DAYS),
            NpsResponse.responded_at < end,
        )
        .group_by(NpsResponse.organization_id)
    )
    result: Values = {}
    for org_id, p, pa, d in rows:
        score = nps_points(int(p or 0), int(pa or 0), int(d or 0))
        if score is not None:
            result[org_id] = score
    return result


def engagement(session: Session, day: date, active: Mapping[int, int]) -> Values:
    end = day_end(day)
    rows = session.execute(
        select(Activity.organization_id, Activity.verb, func.count())
        .join(User, User.id == Activity.actor_id)
        .where(
            User.organization_id == Activity.organization_id,
            Activity.verb.in_(ENGAGEMENT_VERBS),
            Activity.occurred_at >= end - timedelta(days=WINDOW_DAYS),
            Activity.occurred_at < end,
        )
        .group_by(Activity.organization_id, Activity.verb)
    )
    counts: dict[int, dict[str, float]] = defaultdict(dict)
    for org_id, verb, n in rows:
        key = ENGAGEMENT_VERBS[verb]
        counts[org_id][key] = counts[org_id].get(key, 0.0) + n
    result: Values = {}
    for org_id, n_active in active.items():
        value = health.engagement_per_active_user(counts.get(org_id, {}), n_active)
        if value is not None:
            result[org_id] = value
    return result


def self_service_rates(session: Session, day: date) -> Values:
    """Share of search sessions resolved by content, per account (``kpis.self_service_rate``).

    Approximation over one result set (the searchers' search, helpful and ask activities of the
    last 30 days, ordered by person and time), swept in Python: a *session* is a person's run of
    ``search.performed``/``search.clicked`` with gaps under 30 minutes; it is *resolved* when an
    ``answer.helpful``/``article.helpful`` by that person falls between its first search and 30
    minutes after its last, and no ``question.asked`` does. Anonymous searches have no
    organization and are not counted, nor are staff acting on the account. Helpful marks are counted whether the reader answered yes
    or no (the activity log records both as one verb).
    """
    end = day_end(day)
    rows = session.execute(
        select(Activity.organization_id, Activity.actor_id, Activity.verb, Activity.occurred_at)
        .join(User, User.id == Activity.actor_id)
        .where(
            User.organization_id == Activity.organization_id,
            Activity.verb.in_((*SEARCH_VERBS, *HELPFUL_VERBS, ASKED_VERB)),
            Activity.occurred_at >= end - timedelta(days=WINDOW_DAYS),
            Activity.occurred_at < end,
        )
        .order_by(Activity.organization_id, Activity.actor_id, Activity.occurred_at)
    )
    sessions: dict[int, list[kpis.SearchSession]] = defaultdict(list)
    for org_id, events in by_person(rows):
        sessions[org_id].extend(search_sessions(events))
    result: Values = {}
    for org_id, found in sessions.items():
        rate = kpis.self_service_rate(found).value
        if rate is not None:
            result[org_id] = rate
    return result


def by_person(
    rows: Iterable[tuple[int, int, str, datetime]],
) -> Iterable[tuple[int, list[tuple[str, datetime]]]]:
    """(org, that person's events) for rows ordered by (org, actor, time)."""
    key: tuple[int, int] | None = None
    events: list[tuple[str, datetime]] = []
    for org_id, actor_id, verb, at in rows:
        if (org_id, actor_id) != key:
            if key is not None:
                yield key[0], events
            key, events = (org_id, actor_id), []
        events.append((verb, at))
    if key is not None:
        yield key[0], events


def search_sessions(events: list[tuple[str, datetime]]) -> list[kpis.SearchSession]:
    """Search sessions of one person's time-ordered events (rules in ``self_service_rates``)."""
    spans: list[list[datetime]] = []  # [first search, last search]
    for verb, at in events:
        if verb in SEARCH_VERBS:
            if spans and at - spans[-1][1] < SESSION_GAP:
                spans[-1][1] = at
            else:
                spans.append([at, at])
    found: list[kpis.SearchSession] = []
    for first, last in spans:
        window_end = last + SESSION_GAP
        inside = [verb for verb, at in events if first <= at <= window_end]
        found.append(
            kpis.SearchSession(
                helpful_click=any(v in HELPFUL_VERBS for v in inside),
                asked_question=ASKED_VERB in inside,
            )
        )
    return found


class InvoiceFacts(NamedTuple):
    """An account's orders and payments on a day: the health signals (days overdue,
    purchases in a year) and the alert rules' order metrics, from one pass."""

    days_overdue: float  # of the oldest unpaid invoice past its due date; 0 when none
    purchases: float  # orders in PURCHASE_DAYS
    order_months: tuple[float, float, float]  # orders in the three 30-day windows, m0 newest
    largest_recent: float | None  # the largest order of the last ORDER_DAYS
    last_order: date | None


def as_date(value: Any) -> date | None:
    """A date read from MIN()/MAX() of a date or an expression over one."""
    if isinstance(value, str):  # SQLite returns MIN()/MAX() of an expression as text
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value.date()
    return value


def invoice_facts(
    session: Session, day: date, org_ids: Collection[int] | None = None
) -> dict[int, InvoiceFacts]:
    """``InvoiceFacts`` of every account with an invoice (or of ``org_ids``): one grouped
    query, read once by the nightly run for the health signals and the alert rules."""
    ordered = Invoice.order_date <= day

    def orders_after(after: date, until: date = day) -> Any:
        within = (Invoice.order_date > after) & (Invoice.order_date <= until)
        return func.sum(case((within, 1), else_=0))

    months = [
        orders_after(
            day - timedelta(days=(k + 1) * WINDOW_DAYS), day - timedelta(days=k * WINDOW_DAYS)
        )
        for k in range(3)
    ]
    unpaid_due = Invoice.paid_date.is_(None) & (Invoice.due_date < day)
    recent = ordered & (Invoice.order_date > day - timedelta(days=ORDER_DAYS))
    stmt = select(
        Invoice.organization_id,
        func.min(case((unpaid_due, Invoice.due_date), else_=None)),
        orders_after(day - timedelta(days=PURCHASE_DAYS)),
        *months,
        func.max(case((recent, Invoice.amount), else_=None)),
        func.max(case((ordered, Invoice.order_date), else_=None)),
    ).group_by(Invoice.organization_id)
    if org_ids is not None:
        stmt = stmt.where(Invoice.organization_id.in_(org_ids))
    facts: dict[int, InvoiceFacts] = {}
    for org_id, since, purchases, m0, m1, m2, largest, last in session.execute(stmt):
        since = as_date(since)
        facts[org_id] = InvoiceFacts(
            days_overdue=float((day - since).days) if since is not None else 0.0,
            purchases=float(purchases or 0),
            order_months=(float(m0 or 0), float(m1 or 0), float(m2 or 0)),
            largest_recent=float(largest) if largest is not None else None,
            last_order=as_date(last),
        )
    return facts


def collect(session: Session, day: date) -> Signals:
    """All signals for ``day``: nine grouped queries in all, whatever the number of accounts."""
    active = active_members(session, day)
    severe, csat, ratings = ticket_facts(session, day)
    invoices = invoice_facts(session, day)
    months = usage_months(session, day)
    return Signals(
        {
            health.USAGE_TREND: usage_trend(session, day, months),
            health.ACTIVE_SEATS: active_seats(active, seats(session)),
            health.SEVERE_TICKETS: severe,
            health.CSAT: csat,
            health.NPS: nps_scores(session, day),
            health.COMMUNITY_ENGAGEMENT: engagement(session, day, active),
            health.SELF_SERVICE_RATE: self_service_rates(session, day),
            health.PAYMENT_DAYS_OVERDUE: {o: f.days_overdue for o, f in invoices.items()},
            health.PURCHASE_FREQUENCY: {o: f.purchases for o, f in invoices.items()},
        },
        months,
        ratings,
        invoices,
    )
