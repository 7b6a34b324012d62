"""The search log and its insights: what people looked for, what they clicked, what helped.

Services take the session and the acting user and never commit; views commit once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Engine, Insert, and_, bindparam, case, func, insert, select
from sqlalchemy.orm import Session, scoped_session

from portal.core.activity import Activity, activity_columns, record_activity, register_verbs
from portal.core.db import utcnow
from portal.core.errors import DomainError, NotFound
from portal.core.identity import User
from portal.search.models import SearchLogEntry
from portal.search.query import clean
from portal.search.registry import sources

register_verbs("search.performed", "search.clicked")

SOURCES = ("page", "suggest", "api", "ask")
# A typing burst: suggest calls from one visit less than this apart whose text extends (or
# trims) the previous one are one search; the log keeps its final text.
BURST_SECONDS = 10
VISIT_IDLE = timedelta(minutes=30)  # a new search session after this long without a search
HELPFUL_VERBS = ("answer.helpful", "article.helpful")
ASKED_VERB = "question.asked"
ASK_WINDOW = timedelta(minutes=30)


def visit_key(secret: str, user_id: int, signed_in_at: float | None, after: float) -> str:
    """The key of a search session (a visit), derived rather than random: requests in flight
    together (a suggestion typed and the form sent at once) carry the same session cookie, so
    each derives the same key from the sign-in and the end of the previous visit (``after``),
    and whichever response's cookie the browser keeps, a click still matches its search."""
    message = f"{user_id}:{signed_in_at!r}:{after!r}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def normalize(text: str) -> str:
    return " ".join(text.lower().split())[:200]


def _actor(user: User | None) -> User | None:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def log_search(
    session: Session,
    user: User | None,
    session_key: str,
    source: str,
    text: str,
    result_count: int,
) -> int | None:
    """Record one search (and a ``search.performed`` activity); returns the log entry's id.
    An as-you-type call that continues the visit's previous one updates that entry instead,
    so a typing burst counts once, with its final text. The caller commits; on PostgreSQL,
    when ``session`` has no transaction yet, the rows are committed at once by themselves."""
    text = clean(text)[0][:200]  # no NUL or control characters (PostgreSQL refuses NUL)
    if not text:
        return None
    if source not in SOURCES:
        source = "suggest"
    actor = _actor(user)
    now = utcnow()
    if source in ("suggest", "ask") and session_key:
        previous = session.scalars(
            select(SearchLogEntry)
            .where(
                SearchLogEntry.session_key == session_key,
                SearchLogEntry.source == source,
                SearchLogEntry.searched_at >= now - timedelta(seconds=BURST_SECONDS),
                SearchLogEntry.clicked_at.is_(None),
            )
            .order_by(SearchLogEntry.id.desc())
            .limit(1)
        ).first()
        if previous is not None and _same_burst(previous.normalized, normalize(text)):
            previous.query, previous.normalized = text, normalize(text)
            previous.result_count, previous.searched_at = result_count, now
            session.flush()
            return previous.id
    entry = {
        "searched_at": now,
        "user_id": actor.id if actor else None,
        "organization_id": actor.organization_id if actor else None,
        "session_key": session_key,
        "source": source,
        "query": text,
        "normalized": normalize(text),
        "result_count": result_count,
    }
    activity = activity_columns(
        actor,
        actor.organization if actor else None,
        "search.performed",
        SearchLogEntry.__tablename__,
        None,
        {"results": result_count, "session": session_key, "source": source},
    )
    return _insert_entry(session, entry, activity)


def _insert_entry(session: Session, entry: dict[str, Any], activity: dict[str, Any]) -> int:
    """Both rows in one statement on PostgreSQL: every search page writes them, and there two
    ORM inserts cost more than the page's search (a round trip each, plus the unit of work).
    SQLite cannot insert from a CTE, and has no round trips to save."""
    plain = session() if isinstance(session, scoped_session) else session
    bind = plain.get_bind()  # the engine, or a test's connection
    if bind.dialect.name != "postgresql":
        logged = SearchLogEntry(**entry)
        plain.add(logged)
        plain.flush()
        plain.add(Activity(**{**activity, "subject_id": logged.id}))
        return logged.id
    params = {**entry, **{f"activity_{name}": value for name, value in activity.items()}}
    statement = _entry_with_activity(tuple(entry), tuple(activity))
    if plain.in_transaction() or not isinstance(bind, Engine):
        return int(plain.connection().execute(statement, params).scalar_one())
    # Nothing of the caller's is in a transaction (an anonymous search page): the statement
    # commits itself, without the BEGIN and COMMIT round trips.
    with bind.connect() as connection:
        own = connection.execution_options(isolation_level="AUTOCOMMIT")
        return int(own.execute(statement, params).scalar_one())


@functools.cache
def _entry_with_activity(entry: tuple[str, ...], activity: tuple[str, ...]) -> Insert:
    """``INSERT INTO activities ... SELECT ... FROM (INSERT INTO search_log ... RETURNING id)``
    for these columns, built once: constructing it per search costs as much as running it."""
    log_columns = SearchLogEntry.__table__.c
    new_entry = (
        insert(SearchLogEntry)
        .values({name: bindparam(name, type_=log_columns[name].type) for name in entry})
        .returning(SearchLogEntry.id)
        .cte("new_entry")
    )
    columns = Activity.__table__.c
    names = [name for name in activity if name != "subject_id"]
    values = [bindparam(f"activity_{name}", type_=columns[name].type) for name in names]
    return (
        insert(Activity)
        .from_select([*names, "subject_id"], select(*values, new_entry.c.id))
        .returning(Activity.subject_id)
    )


def _same_burst(before: str, after: str) -> bool:
    return after.startswith(before) or before.startswith(after)


def record_click(
    session: Session,
    user: User | None,
    session_keys: Collection[str],
    log_id: int,
    kind: str,
    object_id: int,
) -> SearchLogEntry:
    """Remember which result a search led to (the first click of an entry counts). Only a
    search of the clicker's own visit counts: one logged under one of ``session_keys``."""
    if kind not in sources():
        raise DomainError(_("Unknown kind."), field="kind")
    entry = session.get(SearchLogEntry, log_id)
    if entry is None or not entry.session_key or entry.session_key not in session_keys:
        raise NotFound(_("No such search."))
    session_key = entry.session_key
    actor = _actor(user)
    if entry.clicked_at is None:
        entry.clicked_kind, entry.clicked_id, entry.clicked_at = kind, object_id, utcnow()
    record_activity(
        session,
        actor,
        actor.organization if actor else None,
        "search.clicked",
        entry,
        {"kind": kind, "id": object_id, "session": session_key},
    )
    session.flush()
    return entry


# --- insights ----------------------------------------------------------------------------


@dataclass
class QueryCount:
    query: str
    searches: int
    clicks: int = 0
    results: int = 0


@dataclass
class Insights:
    since: datetime
    until: datetime
    searches: int = 0
    clicked: int = 0
    top: list[QueryCount] = field(default_factory=list)
    zero: list[QueryCount] = field(default_factory=list)
    sessions: int = 0
    self_served: int = 0

    @property
    def click_through(self) -> float:
        return self.clicked / self.searches if self.searches else 0.0

    @property
    def self_service_rate(self) -> float:
        return self.self_served / self.sessions if self.sessions else 0.0


def insights(
    session: Session, since: datetime, until: datetime | None = None, limit: int = 20
) -> Insights:
    """Top queries, zero-result queries (content gaps), click-through and self-service rate."""
    until = until or utcnow()
    period = and_(SearchLogEntry.searched_at >= since, SearchLogEntry.searched_at < until)
    out = Insights(since=since, until=until)
    clicked = func.sum(case((SearchLogEntry.clicked_at.is_not(None), 1), else_=0))
    out.searches, out.clicked = session.execute(
        select(func.count(), func.coalesce(clicked, 0)).where(period)
    ).one()
    top = session.execute(
        select(
            SearchLogEntry.normalized, func.count(), clicked, func.max(SearchLogEntry.result_count)
        )
        .where(period)
        .group_by(SearchLogEntry.normalized)
        .order_by(func.count().desc(), SearchLogEntry.normalized)
        .limit(limit)
    ).all()
    out.top = [QueryCount(q, n, int(c or 0), r) for q, n, c, r in top]
    zero = session.execute(
        select(SearchLogEntry.normalized, func.count())
        .where(period, SearchLogEntry.result_count == 0)
        .group_by(SearchLogEntry.normalized)
        .order_by(func.count().desc(), SearchLogEntry.normalized)
        .limit(limit)
    ).all()
    out.zero = [QueryCount(q, n) for q, n in zero]
    out.sessions, out.self_served = self_service(session, since, until)
    return out


def self_service(session: Session, since: datetime, until: datetime) -> tuple[int, int]:
    """(search sessions, sessions that ended in self-service) over the period.

    A search session (one visit's searches, by a signed-in user) served itself when, after a
    click on a result in that session, the same user marked an answer or article helpful,
    and did not ask a question within 30 minutes of the session's first search.
    """
    rows = session.execute(
        select(
            SearchLogEntry.session_key,
            func.min(SearchLogEntry.user_id),
            func.min(SearchLogEntry.searched_at),
            func.max(SearchLogEntry.searched_at),
            func.min(SearchLogEntry.clicked_at),
        )
        .where(
            SearchLogEntry.searched_at >= since,
            SearchLogEntry.searched_at < until,
            SearchLogEntry.session_key != "",
            SearchLogEntry.user_id.is_not(None),
        )
        .group_by(SearchLogEntry.session_key)
    ).all()
    if not rows:
        return 0, 0
    user_ids = {row[1] for row in rows}
    horizon = until + VISIT_IDLE + ASK_WINDOW
    events: dict[int, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    for actor_id, verb, moment in session.execute(
        select(Activity.actor_id, Activity.verb, Activity.occurred_at).where(
            Activity.verb.in_((*HELPFUL_VERBS, ASKED_VERB)),
            Activity.actor_id.in_(user_ids),
            Activity.occurred_at >= since,
            Activity.occurred_at < horizon,
        )
    ):
        events[actor_id]["asked" if verb == ASKED_VERB else "helpful"].append(moment)
    served = 0
    for _key, user_id, first, last, first_click in rows:
        if first_click is None:
            continue
        mine = events.get(user_id, {})
        ends = last + VISIT_IDLE  # the visit lasts until 30 minutes after its last search
        helped = any(first_click <= t <= ends for t in mine.get("helpful", ()))
        asked = any(first <= t <= first + ASK_WINDOW for t in mine.get("asked", ()))
        if helped and not asked:
            served += 1
    return len(rows), served
