"""The moderation lifecycle: every transition is one call here, audited and logged.

pending -> published | rejected | published-with-edits;
published -> hidden (flags or a moderator) -> published (restored) | removed.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Any
from uuid import uuid4

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    event,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session, joinedload

from moderation import rules, trust
from moderation.models import (
    AuditEntry,
    Flag,
    FlagReason,
    ModerationItem,
    ModerationSetting,
    State,
    TrustLock,
    WatchedWordEntry,
)
from moderation.registry import SUMMARY_CHARS, get_kind, kinds
from portal.core.activity import Activity, activity_columns, record_activity, register_verbs
from portal.core.bulk import dialect_insert
from portal.core.db import DirectStatement, utcnow
from portal.core.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    TooManyRequests,
)
from portal.core.i18n import in_zone
from portal.core.identity import Organization, User
from portal.core.mail import queue_mail
from portal.core.notifications import notify
from portal.core.pagecache import ChangeClearedCache
from portal.core.pagination import Page, paginate
from portal.core.permissions import Action, can
from portal.core.text import clean_text
from portal.core.urls import external_url

register_verbs(
    "content.submitted",
    "content.published",
    "content.rejected",
    "content.edited",
    "content.hidden",
    "content.restored",
    "content.removed",
    "content.withdrawn",
    "content.flagged",
)

FLAG_HIDE_THRESHOLD = 3.0
MAX_REASON = 2000
DECISION_MAIL = "moderation_decision"  # the mail topic of decisions on an author's posts


def is_moderator(user: User | None) -> bool:
    return can(user, Action.MODERATE)


def require_moderator(user: User | None) -> None:
    if not is_moderator(user):
        raise PermissionDenied(str(_l("Only moderators can do this.")))


def normalized_digest(text: str) -> str:
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()


# --- settings and watched words ---------------------------------------------------------


def rule_settings(session: Session) -> rules.RuleSettings:
    return _parse_rule_settings(session.scalar(select(_settings_text("rules"))))


def _settings_text(key: str) -> Any:
    """A settings row's JSON as text: the text itself is the cache key of its parsed form, so
    a change saved by any process is used by the next submit in every process."""
    return (
        select(func.cast(ModerationSetting.value, Text()))
        .where(ModerationSetting.key == key)
        .scalar_subquery()
    )


@lru_cache(maxsize=8)
def _parse_rule_settings(stored_text: str | None) -> rules.RuleSettings:
    stored = json.loads(stored_text) if stored_text else {}
    known = {f.name for f in fields(rules.RuleSettings)}
    values: dict[str, Any] = {k: v for k, v in stored.items() if k in known}
    if "rate_limits" in values:
        values["rate_limits"] = {int(k): tuple(v) for k, v in values["rate_limits"].items()}
    return rules.RuleSettings(**values)


def is_vendor_admin(user: User | None) -> bool:
    return can(user, Action.CONFIGURE_MODERATION)


def _save_setting(session: Session, actor: User, key: str, values: dict[str, Any]) -> None:
    if not is_vendor_admin(actor):
        raise PermissionDenied(str(_l("Only vendor admins can change moderation settings.")))
    row = session.get(ModerationSetting, key) or ModerationSetting(key=key, value={})
    row.value = {**row.value, **values}
    session.add(row)


def save_rule_settings(session: Session, actor: User, values: dict[str, Any]) -> None:
    _save_setting(session, actor, "rules", values)


def save_trust_thresholds(
    session: Session, actor: User, values: dict[str, dict[str, float]]
) -> None:
    _save_setting(session, actor, "trust", values)


_compiled_cache: dict[tuple[Any, ...], rules.CompiledWords] = {}


WORDS_VERSION = "watched_words_version"


def _stamp_words_version(session: Session, _context: Any, _instances: Any) -> None:
    """Any flush that adds, edits or deletes a watched word writes a new random token under
    ``WORDS_VERSION``: ``submit`` reads it in its one statement (a primary-key lookup) and
    recompiles the matcher when it differs, in every process, without scanning the list.
    A bulk INSERT or DELETE of words bypasses the ORM and must call ``words_changed``."""
    if any(
        isinstance(obj, WatchedWordEntry)
        for obj in chain(session.new, session.dirty, session.deleted)
    ):
        words_changed(session)


def words_changed(session: Session) -> None:
    """One upsert: two moderators changing the list at once must not both try to insert the
    first token."""
    token = {"token": uuid4().hex}
    session.connection().execute(
        dialect_insert(session, ModerationSetting)
        .values(key=WORDS_VERSION, value=token)
        .on_conflict_do_update(index_elements=[ModerationSetting.key], set_={"value": token})
    )


event.listen(Session, "before_flush", _stamp_words_version)


def compiled_words(session: Session, key: tuple[Any, ...] | None = None) -> rules.CompiledWords:
    """The compiled matcher, rebuilt only when the list changes (see ``_stamp_words_version``);
    ``submit`` passes the key it read along with its other facts."""
    if key is None:
        key = (session.scalar(select(_settings_text(WORDS_VERSION))),)
    compiled = _compiled_cache.get(key)
    if compiled is None:
        rows = session.scalars(select(WatchedWordEntry)).all()
        compiled = rules.compile_words(
            rules.WatchedWord(
                pattern=row.pattern,
                action=rules.WordAction(row.action),
                replacement=row.replacement,
                is_regex=row.is_regex,
            )
            for row in rows
        )
        _compiled_cache.clear()
        _compiled_cache[key] = compiled
    return compiled


def add_watched_word(
    session: Session,
    actor: User,
    pattern: str,
    action: str,
    replacement: str = "",
    is_regex: bool = False,
) -> WatchedWordEntry:
    if not is_moderator(actor):
        raise PermissionDenied(str(_l("Only staff can change watched words.")))
    pattern = clean_text(pattern).strip()
    if not pattern or len(pattern) > 200:
        raise DomainError(
            str(_l("Enter a word or pattern of at most 200 characters.")), field="pattern"
        )
    if action not in {a.value for a in rules.WordAction}:
        raise DomainError(str(_l("Choose an action.")), field="action")
    if is_regex:
        if not is_vendor_admin(actor):
            raise PermissionDenied(str(_l("Only vendor admins can add regular expressions.")))
        problem = rules.regex_problem(pattern)
        if problem:
            raise DomainError(problem, field="pattern")
    if session.scalar(select(WatchedWordEntry).where(WatchedWordEntry.pattern == pattern)):
        raise Conflict(str(_l("This word is already on the list.")), field="pattern")
    entry = WatchedWordEntry(
        pattern=pattern,
        action=action,
        replacement=clean_text(replacement).strip()[:200],
        is_regex=is_regex,
    )
    session.add(entry)
    session.flush()
    return entry


def remove_watched_word(session: Session, actor: User, entry_id: int) -> None:
    if not is_moderator(actor):
        raise PermissionDenied(str(_l("Only staff can change watched words.")))
    entry = session.get(WatchedWordEntry, entry_id)
    if entry is None:
        raise NotFound(str(_l("Not found.")))
    session.delete(entry)


# --- submit -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _submit_facts_statement() -> DirectStatement:
    """Everything ``submit`` reads before it decides, as one statement built once: the item's
    id, state and source (when this is an edit), the rule settings, the watched words' version
    and the author's facts. Each part reads an index range: the author's posts of the last
    day the (author, submitted_at) index, once for both posting limits; published posts the
    partial index of published items by author (counted only up to ``published_cap``), an
    identical post its digest. The settings are primary-key lookups."""
    author = ModerationItem.author_id == bindparam("author_id")
    same_item = and_(
        ModerationItem.kind == bindparam("kind"), ModerationItem.object_id == bindparam("object_id")
    )
    statement = select(
        select(ModerationItem.id).where(same_item).scalar_subquery(),
        select(ModerationItem.state).where(same_item).scalar_subquery(),
        select(ModerationItem.source).where(same_item).scalar_subquery(),
        _settings_text("rules"),
        _settings_text(WORDS_VERSION),
        _published_count(author, bindparam("published_cap", type_=Integer)).scalar_subquery(),
        func.count().filter(ModerationItem.submitted_at > bindparam("minute_ago")),
        func.count(),
        select(func.max(ModerationItem.submitted_at))
        .where(ModerationItem.source_digest == bindparam("digest"), author, not_(same_item))
        .scalar_subquery(),
    ).where(author, ModerationItem.submitted_at > bindparam("day_ago"))
    return DirectStatement(statement)


def _published_count(author: Any, cap: Any) -> Any:
    """The author's published posts, counted up to ``cap`` (the new-user threshold is all
    the rules ask about) from the partial index of published items by author."""
    # The state is written into the SQL, not bound: a prepared statement's generic plan can
    # only use the partial index (``state = 'published'``) when it sees the value; bound, the
    # plan PostgreSQL keeps after five runs read the whole table (3 ms at 10,000 items). A
    # literal column, not a ``literal_execute`` parameter: that one is rendered into the SQL
    # string again on every run.
    published_state = literal_column(f"'{State.PUBLISHED.value}'")
    published = (
        select(ModerationItem.id)
        .where(author, ModerationItem.state == published_state)
        .limit(cap)
        .subquery()
    )
    return select(func.count()).select_from(published)


def _published_posts(session: Session, author: User, cap: int) -> int:
    return session.scalar(_published_count(ModerationItem.author_id == author.id, max(0, cap))) or 0


# The new-user threshold the last submit read: the next one counts published posts up to it,
# in the same statement that reads the settings (recounting only if they raised it since).
_published_cap_seen = rules.RuleSettings().new_user_hold_posts


@dataclass(frozen=True)
class _SubmitFacts:
    item_id: int | None
    item_state: str | None
    item_source: str | None
    settings: rules.RuleSettings
    words_key: tuple[Any, ...]
    author: rules.AuthorFacts


def _submit_facts(
    session: Session, kind_name: str, object_id: int, author: User, digest: str
) -> _SubmitFacts:
    """One round trip for what the rules ask (see ``_submit_facts_statement``), sent
    straight to the driver (``DirectStatement``): SQLAlchemy's execution and result layers
    cost as much as the statement."""
    global _published_cap_seen
    now = utcnow()
    cap = _published_cap_seen
    session.flush()  # what the connection reads must include the caller's pending changes
    (
        item_id,
        item_state,
        item_source,
        settings_text,
        *words_key,
        published,
        last_minute,
        today,
        last_identical,
    ) = _submit_facts_statement().rows(
        session,
        {
            "kind": kind_name,
            "object_id": object_id,
            "author_id": author.id,
            "digest": digest,
            "published_cap": max(0, cap),
            "minute_ago": now - timedelta(minutes=1),
            "day_ago": now - timedelta(days=1),
        },
    )[0]
    settings = _parse_rule_settings(settings_text)
    _published_cap_seen = settings.new_user_hold_posts
    if settings.new_user_hold_posts > cap and published >= cap:
        published = _published_posts(session, author, settings.new_user_hold_posts)
    if last_identical is not None and last_identical.tzinfo is None:  # SQLite: naive UTC
        last_identical = last_identical.replace(tzinfo=now.tzinfo)
    window = timedelta(minutes=settings.duplicate_window_minutes)
    return _SubmitFacts(
        item_id=item_id,
        item_state=item_state,
        item_source=item_source,
        settings=settings,
        words_key=tuple(words_key),
        author=rules.AuthorFacts(
            trust_level=author.trust_level,
            is_staff=author.is_staff,
            published_posts=published or 0,
            posts_last_minute=last_minute or 0,
            posts_today=today or 0,
            identical_recent=last_identical is not None and last_identical > now - window,
        ),
    )


@dataclass(frozen=True)
class SubmitResult:
    item_id: int
    published: bool
    text: str


def _item_data(item: ModerationItem) -> dict[str, Any]:
    """What every ``content.*`` activity carries: the kind and the feature's own id of the
    item, so CS can tell which of an organization's questions are visible without reading
    moderation's tables."""
    return {"kind": item.kind, "object_id": item.object_id}


def submit(
    session: Session,
    kind_name: str,
    obj: Any,
    author: User,
    text: str,
    org: Organization | None = None,
    has_upload: bool = False,
) -> SubmitResult:
    """Run the rules on new or edited content; publish, hold, or refuse (DomainError).

    The feature has flushed ``obj`` with ``text`` as its source; censored or replaced words
    are written back through the kind's ``apply_edit``. The item, its audit entry and its
    activities are written by ``_write_submission``, not through the unit of work: every
    post of every feature comes through here, and the ORM's flush of the one item cost more
    than the rules with a thousand watched words.
    """
    kind = get_kind(kind_name)
    digest = normalized_digest(text)
    facts = _submit_facts(session, kind_name, obj.id, author, digest)
    settings = facts.settings
    # What readers will see: the image rule looks for images there, not in the source.
    shown = kind.render(obj)
    decision = rules.evaluate(
        rules.Submission(kind=kind_name, text=text, has_upload=has_upload, html=shown),
        facts.author,
        compiled_words(session, facts.words_key),
        settings,
    )
    if decision.outcome == rules.Outcome.REFUSE:
        message = refusal_message(decision, settings, author.trust_level)
        if set(decision.reasons) <= RATE_LIMIT_WINDOWS.keys():
            wait = retry_after(session, author, decision.reasons)
            raise TooManyRequests(message, retry_after=wait, field="body")
        raise DomainError(message, field="body")
    if decision.text != text:
        kind.apply_edit(session, obj, decision.text)
        shown = kind.render(obj)
    published = decision.outcome == rules.Outcome.PUBLISH
    state = State.PUBLISHED if published else State.PENDING
    now = utcnow()
    values = {
        "organization_id": org.id if org is not None else author.organization_id,
        "author_id": author.id,
        "state": state,
        "needs_review": not published,
        "held_reasons": list(decision.reasons) if not published else [],
        "previous_source": facts.item_source,
        "source": decision.text,
        "source_digest": digest,
        "summary": kind.summarize(obj)[:SUMMARY_CHARS],
        "preview_html": shown,
        "submitted_at": now,
        "decided_at": now if published else None,
        "decided_by_id": None,
        "rejection_reason": None,
    }
    if facts.item_id is None:
        values.update(kind=kind_name, object_id=obj.id, flag_weight=0.0)
    audit = _audit_values(
        author, "submitted", facts.item_state, state, before=facts.item_source, after=decision.text
    )
    data = {"kind": kind_name, "object_id": obj.id}
    verbs = ["content.submitted", "content.published"] if published else ["content.submitted"]
    activities = [
        activity_columns(
            author, author.organization, verb, ModerationItem.__tablename__, None, data
        )
        for verb in verbs
    ]
    item_id = _write_submission(session, facts.item_id, values, audit, activities)
    if published:
        kind.on_publish(session, obj)
    return SubmitResult(item_id=item_id, published=published, text=decision.text)


def _write_submission(
    session: Session,
    item_id: int | None,
    item: dict[str, Any],
    audit: dict[str, Any],
    activities: list[dict[str, Any]],
) -> int:
    """Write a submission's item (INSERT, or UPDATE of ``item_id``), its audit entry and its
    activities; the item's id. On PostgreSQL in one statement (data-modifying CTEs): there
    each statement through SQLAlchemy and psycopg cost about 0.45 ms, more than the rules
    with a thousand watched words. SQLite cannot insert from a CTE and has no round trips to
    save. An instance of the item held by the session is expired: its row changed under it."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        params = {**item, **{f"audit_{name}": value for name, value in audit.items()}}
        for i, activity in enumerate(activities):
            params.update({f"activity{i}_{name}": value for name, value in activity.items()})
        if item_id is not None:
            params["item_id"] = item_id
        statement = _submission_statement(
            tuple(item), tuple(audit), tuple(activities[0]), len(activities), item_id is not None
        )
        returned = statement.rows(session, params)
    else:
        params = item if item_id is None else {**item, "item_id": item_id}
        returned = _direct_item_write(tuple(item), item_id is not None).rows(session, params)
    if not returned:  # deleted since the facts were read: nothing was written
        raise NotFound(str(_l("This item no longer exists.")))
    written = returned[0][0]
    if not postgresql:
        _insert_audit(session, written, audit)
        rows = [{**row, "subject_id": written} for row in activities]
        _direct_insert(Activity.__table__, tuple(rows[0])).execute_many(session, rows)
    # Written past the ORM's execution events, which the cache's listeners hear.
    _change_keys.note_change(session)
    kept = session.identity_map.get(session.identity_key(ModerationItem, written))
    if kept is not None:
        session.expire(kept)
    return int(written)


@lru_cache(maxsize=8)
def _submission_statement(
    item: tuple[str, ...],
    audit: tuple[str, ...],
    activity: tuple[str, ...],
    activity_rows: int,
    update_item: bool,
) -> DirectStatement:
    """``WITH item AS (INSERT or UPDATE ... RETURNING id), audit AS (INSERT ... SELECT)
    INSERT INTO activities ... SELECT ... FROM item`` for these columns, built once."""
    audits, log = AuditEntry.__table__, Activity.__table__
    new_item = _item_write(item, update_item).cte("item")
    audit_values = _column_binds(audits, audit, "audit_").values()
    audit_row = (
        insert(audits)
        .from_select([*audit, "item_id"], select(*audit_values, new_item.c.id))
        .cte("audit")
    )
    names = [name for name in activity if name != "subject_id"]
    rows = [
        select(*_column_binds(log, names, f"activity{i}_").values(), new_item.c.id)
        for i in range(activity_rows)
    ]
    return DirectStatement(
        insert(log)
        .from_select([*names, "subject_id"], rows[0] if len(rows) == 1 else union_all(*rows))
        .returning(log.c.subject_id)
        .add_cte(audit_row)
    )


def hold(
    session: Session,
    kind_name: str,
    obj: Any,
    text: str,
    reason: str,
    org: Organization | None,
) -> ModerationItem:
    """Queue content nobody wrote (a system proposal, such as a knowledge-base candidate) for
    review whatever the rules say: no author means no rules apply and no one to trust, so a
    moderator always decides. Audited and logged as submitted, like any held post."""
    kind = get_kind(kind_name)
    item = ModerationItem(
        kind=kind_name,
        object_id=obj.id,
        organization_id=org.id if org is not None else None,
        author_id=None,
        state=State.PENDING,
        needs_review=True,
        held_reasons=[reason],
        previous_source=None,
        source=text,
        source_digest=normalized_digest(text),
        summary=kind.summarize(obj)[:SUMMARY_CHARS],
        preview_html=kind.render(obj),
        submitted_at=utcnow(),
    )
    session.add(item)
    session.flush()
    _audit(session, item.id, None, "submitted", None, State.PENDING, None, None, text)
    record_activity(session, None, org, "content.submitted", item, _item_data(item))
    return item


def _audit_values(
    actor: User | None,
    action: str,
    from_state: str | None,
    to_state: str | None,
    reason: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """An audit entry's columns but its item's id."""
    return {
        "actor_id": actor.id if actor else None,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "before_text": before,
        "after_text": after,
        "created_at": utcnow(),
    }


def _audit(session: Session, item_id: int, *args: Any, **kwargs: Any) -> None:
    """One audit entry (``_audit_values``' arguments), written at once."""
    _insert_audit(session, item_id, _audit_values(*args, **kwargs))


def _insert_audit(session: Session, item_id: int, values: dict[str, Any]) -> None:
    row = {**values, "item_id": item_id}
    _direct_insert(AuditEntry.__table__, tuple(row)).rows(session, row)
    _change_keys.note_change(session)


def _column_binds(table: Table, names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """A parameter per column, typed as the column and named ``prefix`` + its name."""
    return {name: bindparam(prefix + name, type_=table.c[name].type) for name in names}


def _item_write(columns: tuple[str, ...], update_item: bool) -> Any:
    """A moderation item's INSERT, or UPDATE of ``item_id``, of these columns; its id returned."""
    items = ModerationItem.__table__
    values = _column_binds(items, columns)
    written = (
        update(items).where(items.c.id == bindparam("item_id")).values(values)
        if update_item
        else insert(items).values(values)
    )
    return written.returning(items.c.id)


# The item, audit and activity writes of submit on SQLite, and every transition's audit entry
# on both databases, built once per set of columns: they go straight to the driver
# (``DirectStatement``), where SQLAlchemy's execution path cost more than SQLite took to run
# them.
@lru_cache(maxsize=4)
def _direct_item_write(columns: tuple[str, ...], update_item: bool) -> DirectStatement:
    return DirectStatement(_item_write(columns, update_item))


@lru_cache(maxsize=16)
def _direct_insert(table: Table, columns: tuple[str, ...]) -> DirectStatement:
    return DirectStatement(insert(table).values(_column_binds(table, columns)))


# The posting limits' rolling windows, by the rules' refusal reason.
RATE_LIMIT_WINDOWS = {
    "rate_limit_minute": timedelta(minutes=1),
    "rate_limit_day": timedelta(days=1),
}


def retry_after(session: Session, author: User, reasons: tuple[str, ...] | list[str]) -> int:
    """Seconds until the author's oldest post in the longest exceeded window ages out of it,
    which is when a post is accepted again (the windows roll, they do not reset at midnight)."""
    window = max(RATE_LIMIT_WINDOWS[r] for r in reasons if r in RATE_LIMIT_WINDOWS)
    now = utcnow()
    oldest = session.scalar(
        select(func.min(ModerationItem.submitted_at)).where(
            ModerationItem.author_id == author.id, ModerationItem.submitted_at > now - window
        )
    )
    if oldest is None:
        return 1
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return max(1, int((oldest + window - now).total_seconds()) + 1)


def refusal_message(
    decision: rules.Decision, settings: rules.RuleSettings, trust_level: int
) -> str:
    """The rules' reasons in the author's language (the pure rules speak only codes and English)."""
    parts: list[str] = []
    for reason in decision.reasons:
        if reason == "blocked_word":
            words = "、".join(f"\u201c{w}\u201d" for w in decision.blocked_words) or "?"
            parts.append(str(_l("Your post contains a blocked word: %(words)s.", words=words)))
        elif reason == "duplicate":
            parts.append(str(_l("You posted the same text a moment ago.")))
        elif reason == "rate_limit_minute":
            parts.append(str(_l("You are posting too fast: wait a minute and try again.")))
        elif reason == "rate_limit_day":
            per_day = settings.limits_for(trust_level)[1]
            parts.append(
                str(
                    _l(
                        "Daily limit reached: you can post %(n)d times a day. Try again tomorrow.",
                        n=per_day,
                    )
                )
            )
    return " ".join(parts) or decision.message or str(_l("This post cannot be accepted."))


def item_state(session: Session, kind_name: str, object_id: int) -> str | None:
    return session.scalar(
        select(ModerationItem.state).where(
            ModerationItem.kind == kind_name, ModerationItem.object_id == object_id
        )
    )


def item_id(session: Session, kind_name: str, object_id: int) -> int | None:
    return session.scalar(
        select(ModerationItem.id).where(
            ModerationItem.kind == kind_name, ModerationItem.object_id == object_id
        )
    )


def date_item(session: Session, kind_name: str, object_id: int, when: datetime) -> None:
    """Demo data is written now and told as a history: the item submitted at ``when`` and,
    if it was decided, decided two hours later (the queue's ages and the statistics' times to
    decision read these)."""
    session.execute(
        update(ModerationItem)
        .where(ModerationItem.kind == kind_name, ModerationItem.object_id == object_id)
        .values(
            submitted_at=when,
            decided_at=case(
                (ModerationItem.decided_at.is_(None), None), else_=when + timedelta(hours=2)
            ),
        )
    )


def first_publication(session: Session, kind_name: str, object_id: int) -> bool:
    """True while the item holds the first version of its content (no earlier source): an
    ``on_publish`` hook tells people of new content then, and not again after an edit or a
    restore."""
    previous = session.scalar(
        select(ModerationItem.previous_source).where(
            ModerationItem.kind == kind_name, ModerationItem.object_id == object_id
        )
    )
    return previous is None


# --- decisions ----------------------------------------------------------------------------


def _claim(
    session: Session,
    item_id: int,
    moderator: User,
    expected: list[str],
    new_state: State,
    **values: Any,
) -> ModerationItem:
    """Move an item atomically; a second moderator gets a Conflict naming the first."""
    result = session.execute(
        update(ModerationItem)
        .where(ModerationItem.id == item_id, ModerationItem.state.in_(expected))
        .values(
            state=new_state,
            needs_review=False,
            decided_at=utcnow(),
            decided_by_id=moderator.id,
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    item = session.get(ModerationItem, item_id, populate_existing=True)
    if item is None or item.state == State.REMOVED and new_state != State.REMOVED:
        raise NotFound(str(_l("This item no longer exists.")))
    if result.rowcount != 1:
        who = item.decided_by.display_name if item.decided_by else str(_l("someone else"))
        raise Conflict(str(_l("Already decided by %(name)s.", name=who)))
    return item


def _notify_author(
    session: Session, item: ModerationItem, message: Any, subject: Any, link: str | None
) -> None:
    if item.author is None:
        return
    notify(session, item.author, "moderation", message, link)
    queue_mail(
        session,
        item.author.email,
        subject,
        "moderation_decision",
        locale=item.author.locale,
        topic=DECISION_MAIL,
        user=item.author,
        message=message,
        link=link or external_url("main.notifications"),
    )


def approve(
    session: Session, moderator: User, item_id: int, new_text: str | None = None
) -> ModerationItem:
    """Publish a pending item; with ``new_text``, the moderator's edit of it first.

    The edit is checked by the kind's ``validate_edit`` (the author's rules) before anything
    is written: a refused edit raises ``DomainError`` naming the field and leaves the item
    pending, its content, audit trail and activity log as they were."""
    require_moderator(moderator)
    if new_text is not None:
        new_text = checked_edit(session, item_id, new_text)
    item = _claim(session, item_id, moderator, [State.PENDING], State.PUBLISHED)
    kind = get_kind(item.kind)
    obj = kind.load(session, item.object_id)
    if obj is None:
        raise NotFound(str(_l("This item no longer exists.")))
    if new_text is not None and new_text != item.source:
        kind.apply_edit(session, obj, new_text)
        _audit(
            session,
            item.id,
            moderator,
            "edited",
            State.PENDING,
            State.PUBLISHED,
            None,
            item.source,
            new_text,
        )
        record_activity(
            session, moderator, item.organization, "content.edited", item, _item_data(item)
        )
        item.source = new_text
        item.preview_html = kind.render(obj)
    else:
        _audit(session, item.id, moderator, "published", State.PENDING, State.PUBLISHED)
    item.held_reasons = []
    kind.on_publish(session, obj)
    record_activity(
        session,
        item.author,
        item.organization,
        "content.published",
        item,
        _decision_data(item, moderator),
    )
    _notify_author(
        session,
        item,
        _l("Your %(kind)s was approved and is now visible.", kind=kind.label),
        _l("Your post was approved"),
        kind.url(obj),
    )
    return item


def checked_edit(session: Session, item_id: int, text: str) -> str:
    """A moderator's edited text for an item, checked as its author's would be and returned as
    it will be stored; the unchanged text comes back as it is. Reads only: nothing is written,
    so a refusal (``DomainError`` naming the field) leaves everything as it was."""
    item = session.get(ModerationItem, item_id)
    if item is None:
        raise NotFound(str(_l("This item no longer exists.")))
    text = clean_text(text)
    if text == item.source:
        return text
    if not text.strip():
        raise DomainError(str(_l("The edited text cannot be empty.")), field="text")
    kind = get_kind(item.kind)
    if kind.validate_edit is None:
        raise DomainError(
            str(_l("This kind of content cannot be edited here: approve or reject it.")),
            field="text",
        )
    obj = kind.load(session, item.object_id)
    if obj is None:
        raise NotFound(str(_l("This item no longer exists.")))
    return kind.validate_edit(obj, text)


def _decision_data(item: ModerationItem, moderator: User) -> dict[str, Any]:
    """What CS aggregates about a decision: the kind, who decided, and how long it waited."""
    waited = (item.decided_at or utcnow()) - item.submitted_at
    return {
        **_item_data(item),
        "moderator_id": moderator.id,
        "minutes_waited": round(waited.total_seconds() / 60, 2),
    }


def reject(session: Session, moderator: User, item_id: int, reason: str) -> ModerationItem:
    require_moderator(moderator)
    reason = clean_text(reason or "").strip()
    if not reason:
        raise DomainError(str(_l("Give the author a reason.")), field="reason")
    if len(reason) > MAX_REASON:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=MAX_REASON)), field="reason")
    item = _claim(
        session, item_id, moderator, [State.PENDING], State.REJECTED, rejection_reason=reason
    )
    kind = get_kind(item.kind)
    obj = kind.load(session, item.object_id)
    if obj is not None:
        kind.on_reject(session, obj)
    _audit(session, item.id, moderator, "rejected", State.PENDING, State.REJECTED, reason)
    record_activity(
        session,
        item.author,
        item.organization,
        "content.rejected",
        item,
        _decision_data(item, moderator),
    )
    _notify_author(
        session,
        item,
        _l("Your %(kind)s was not published: %(reason)s", kind=kind.label, reason=reason),
        _l("Your post was not published"),
        None,
    )
    return item


def hide(session: Session, moderator: User, item_id: int, reason: str) -> ModerationItem:
    require_moderator(moderator)
    item = _claim(session, item_id, moderator, [State.PUBLISHED], State.HIDDEN)
    _apply_hidden(session, item, moderator, reason)
    return item


def _apply_hidden(session: Session, item: ModerationItem, actor: User | None, reason: str) -> None:
    kind = get_kind(item.kind)
    obj = kind.load(session, item.object_id)
    if obj is not None:
        kind.on_hide(session, obj)
    _audit(session, item.id, actor, "hidden", State.PUBLISHED, State.HIDDEN, reason)
    record_activity(session, actor, item.organization, "content.hidden", item, _item_data(item))


def restore(session: Session, moderator: User, item_id: int) -> ModerationItem:
    """Publish a hidden item again; the flags that hid it were wrong."""
    require_moderator(moderator)
    item = _claim(session, item_id, moderator, [State.HIDDEN], State.PUBLISHED, flag_weight=0.0)
    kind = get_kind(item.kind)
    obj = kind.load(session, item.object_id)
    if obj is not None:
        kind.on_restore(session, obj)
    _resolve_flags(session, item, upheld=False)
    _audit(session, item.id, moderator, "restored", State.HIDDEN, State.PUBLISHED)
    record_activity(
        session, moderator, item.organization, "content.restored", item, _item_data(item)
    )
    return item


def remove(session: Session, moderator: User, item_id: int, reason: str = "") -> ModerationItem:
    """Take a hidden (or published) item down for good; the flags were right."""
    require_moderator(moderator)
    item = _claim(session, item_id, moderator, [State.HIDDEN, State.PUBLISHED], State.REMOVED)
    kind = get_kind(item.kind)
    obj = kind.load(session, item.object_id)
    if obj is not None:
        kind.on_remove(session, obj)
    _resolve_flags(session, item, upheld=True)
    _audit(session, item.id, moderator, "removed", None, State.REMOVED, reason or None)
    record_activity(
        session, moderator, item.organization, "content.removed", item, _item_data(item)
    )
    return item


def withdraw(session: Session, kind_name: str, object_id: int, author: User) -> bool:
    """The author took their content back (they emptied it): a pending item leaves the queue,
    so no moderator approves text that no longer exists, and a published one stops being
    flaggable. Audited as the author's act. Returns whether there was an item to withdraw."""
    item = session.scalar(
        select(ModerationItem).where(
            ModerationItem.kind == kind_name,
            ModerationItem.object_id == object_id,
            ModerationItem.author_id == author.id,
            ModerationItem.state != State.REMOVED,
        )
    )
    if item is None:
        return False
    from_state = item.state
    session.execute(
        update(ModerationItem)
        .where(ModerationItem.id == item.id)
        .values(state=State.REMOVED, needs_review=False, decided_at=utcnow(), decided_by_id=None)
        .execution_options(synchronize_session="fetch")
    )
    _audit(session, item.id, author, "withdrawn", from_state, State.REMOVED, None, item.source, "")
    record_activity(
        session, author, author.organization, "content.withdrawn", item, _item_data(item)
    )
    return True


def _resolve_flags(session: Session, item: ModerationItem, upheld: bool) -> None:
    session.execute(
        update(Flag).where(Flag.item_id == item.id, Flag.upheld.is_(None)).values(upheld=upheld)
    )


# --- flags --------------------------------------------------------------------------------


def flag_weight(session: Session, user: User) -> float:
    """Trust and a record of accurate flags make a flag count for more."""
    agreed, resolved = session.execute(
        select(
            func.count().filter(Flag.upheld.is_(True)),
            func.count().filter(Flag.upheld.is_not(None)),
        ).where(Flag.user_id == user.id)
    ).one()
    accuracy = ((agreed or 0) + 1) / ((resolved or 0) + 2)  # Laplace prior: 0.5 with no history
    base = 5.0 if user.is_staff else 1.0 + 0.5 * user.trust_level
    return round(base * 2 * accuracy, 3)


def flag(session: Session, user: User, item_id: int, reason: str, note: str = "") -> Flag:
    item = session.get(ModerationItem, item_id)
    obj = get_kind(item.kind).load(session, item.object_id) if item is not None else None
    if item is None or obj is None or item.state != State.PUBLISHED:
        raise NotFound(str(_l("Not found.")))
    if not get_kind(item.kind).visible_to(obj, user):
        raise NotFound(str(_l("Not found.")))
    if item.author_id == user.id:
        raise DomainError(str(_l("You cannot flag your own post.")))
    if reason not in {r.value for r in FlagReason}:
        raise DomainError(str(_l("Choose a reason.")), field="reason")
    note = clean_text(note or "").strip()
    if reason == FlagReason.OTHER and not note:
        raise DomainError(str(_l("Tell the moderators what is wrong.")), field="note")
    if len(note) > 500:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=500)), field="note")
    if session.scalar(select(Flag.id).where(Flag.item_id == item.id, Flag.user_id == user.id)):
        raise Conflict(str(_l("You have already flagged this.")))
    entry = Flag(
        item_id=item.id,
        user_id=user.id,
        reason=reason,
        note=note or None,
        weight=flag_weight(session, user),
    )
    session.add(entry)
    session.flush()
    record_activity(session, user, user.organization, "content.flagged", item, {"reason": reason})
    total = session.scalar(
        select(func.sum(Flag.weight)).where(Flag.item_id == item.id, Flag.upheld.is_(None))
    )
    session.execute(
        update(ModerationItem).where(ModerationItem.id == item.id).values(flag_weight=total or 0.0)
    )
    if (total or 0) >= FLAG_HIDE_THRESHOLD:
        hidden = session.execute(
            update(ModerationItem)
            .where(ModerationItem.id == item.id, ModerationItem.state == State.PUBLISHED)
            .values(state=State.HIDDEN, needs_review=True, decided_at=None, decided_by_id=None)
        )
        if hidden.rowcount == 1:
            session.refresh(item)
            _apply_hidden(session, item, None, "flags")
    return entry


def flag_content(
    session: Session, user: User, kind_name: str, object_id: int, reason: str, note: str = ""
) -> Flag:
    """Flag a piece of content by what pages know of it: its kind and its own id. The
    moderation item is found here; an unknown kind or content moderation never saw is
    NotFound, like content the user cannot see."""
    if kind_name not in kinds():
        raise NotFound(str(_l("Not found.")))
    found = item_id(session, kind_name, object_id)
    if found is None:
        raise NotFound(str(_l("Not found.")))
    return flag(session, user, found, reason, note)


FLAG_OPEN = "open"
FLAG_SENT = "flagged"


def flag_states(
    session: Session, viewer: User | None, keys: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """What a page may offer ``viewer`` for each (kind, object id) it shows, in one query:
    ``FLAG_OPEN`` where they may flag it (published, and not their own), ``FLAG_SENT`` where
    they already have; content that is neither is left out (no control at all). Nobody
    signed in may flag anything."""
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return {}
    wanted: dict[str, set[int]] = {}
    for kind_name, object_id in keys:
        wanted.setdefault(kind_name, set()).add(object_id)
    if not wanted:
        return {}
    rows = session.execute(
        select(ModerationItem.kind, ModerationItem.object_id, Flag.id)
        .outerjoin(Flag, and_(Flag.item_id == ModerationItem.id, Flag.user_id == viewer.id))
        .where(
            or_(
                *(
                    and_(ModerationItem.kind == name, ModerationItem.object_id.in_(sorted(ids)))
                    for name, ids in wanted.items()
                )
            ),
            ModerationItem.state == State.PUBLISHED,
            or_(ModerationItem.author_id.is_(None), ModerationItem.author_id != viewer.id),
        )
    ).all()
    return {
        (kind_name, object_id): FLAG_SENT if flag_id is not None else FLAG_OPEN
        for kind_name, object_id, flag_id in rows
    }


@dataclass(frozen=True)
class PostLink:
    kind_label: str
    summary: str
    url: str
    submitted_at: datetime


def recent_posts(
    session: Session,
    author: User,
    viewer: User,
    limit: int = 10,
    exclude_kinds: Iterable[str] = (),
) -> list[PostLink]:
    """The newest of ``author``'s published posts, of every kind, that ``viewer`` may see (a
    profile's "recent posts"). Each kind decides what a viewer may see (``visible_to``: an
    organization's private question stays with it), so a few more are read than shown."""
    registered = kinds()
    shown = sorted(set(registered) - set(exclude_kinds))
    statement = (
        select(ModerationItem)
        .where(
            ModerationItem.author_id == author.id,
            ModerationItem.state == State.PUBLISHED,
            ModerationItem.kind.in_(shown),
        )
        .order_by(ModerationItem.submitted_at.desc(), ModerationItem.id.desc())
        .limit(limit * 3)
    )
    posts: list[PostLink] = []
    for item in session.scalars(statement):
        kind = registered[item.kind]
        obj = kind.load(session, item.object_id)
        if obj is None or not kind.visible_to(obj, viewer):
            continue
        url = kind.url(obj)
        if url is None:
            continue
        posts.append(PostLink(str(kind.label), item.summary, url, item.submitted_at))
        if len(posts) == limit:
            break
    return posts


# --- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    kind: str | None = None
    organization_id: int | None = None
    reason: str | None = None
    older_than_hours: int | None = None
    newest_first: bool = False


def _filtered(statement: Any, filters: QueueFilters) -> Any:
    """The queue's WHERE and ORDER BY, shared by the page (plain rows) and the API (items)."""
    statement = statement.where(ModerationItem.needs_review.is_(True))
    if filters.kind:
        statement = statement.where(ModerationItem.kind == filters.kind)
    if filters.organization_id:
        statement = statement.where(ModerationItem.organization_id == filters.organization_id)
    if filters.reason == "flags":
        statement = statement.where(ModerationItem.state == State.HIDDEN)
    elif filters.reason:
        statement = statement.where(
            func.cast(ModerationItem.held_reasons, String()).like(f'%"{filters.reason}"%')
        )
    if filters.older_than_hours:
        statement = statement.where(
            ModerationItem.submitted_at < utcnow() - timedelta(hours=filters.older_than_hours)
        )
    order = (
        ModerationItem.submitted_at.desc() if filters.newest_first else ModerationItem.submitted_at
    )
    return statement.order_by(order, ModerationItem.id)


def queue_statement(filters: QueueFilters):  # noqa: ANN201 - a Select for paginate()
    author = joinedload(ModerationItem.author)
    return _filtered(select(ModerationItem), filters).options(
        author.joinedload(User.organization),
        author.lazyload(User.role_grants),
        joinedload(ModerationItem.organization),
    )


def queue_page(
    session: Session, moderator: User, filters: QueueFilters, page: int, per_page: int
) -> Page[Any]:
    require_moderator(moderator)
    return paginate(session, queue_statement(filters), page, per_page)


# The queue count and the authors' history are the page's only work that grows with the
# table (a count over every waiting item; a GROUP BY over every item of each author on the
# page). Both change only with a transition, and every transition writes an audit row, so
# they are cached per process and trusted only while the audit log's newest rows are
# unchanged. The change key is read from the database (an index range of at
# most CHANGE_WINDOW primary keys; at most once a second, see queue_change_key), so a
# decision taken in another worker is seen within that second.
CHANGE_WINDOW = 1000
_HISTORY_LIMIT = 20_000  # authors kept before the cache starts over


@dataclass
class _QueueCache:
    key: tuple[Any, ...] | None = None
    count: int | None = None
    history: dict[int, dict[str, int]] | None = None


_queue_cache = _QueueCache()


@lru_cache(maxsize=1)
def _change_key_statement() -> Any:
    """(newest audit id, audit rows among the newest CHANGE_WINDOW ids, newest row's time).

    The count catches a transaction that took an id early and committed late (its row lands
    below the newest id); the time tells a reused SQLite rowid after a rollback from the row
    that had it. Built once: building it cost more than running it."""
    newest = select(func.max(AuditEntry.id)).scalar_subquery()
    return select(
        newest.label("change_newest"),
        select(func.count())
        .where(AuditEntry.id > newest - CHANGE_WINDOW)
        .scalar_subquery()
        .label("change_window"),
        select(AuditEntry.created_at)
        .order_by(AuditEntry.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("change_time"),
    )


def _cache_for(key: tuple[Any, ...]) -> _QueueCache:
    """The cache valid for ``key``, emptied when the audit log has moved on."""
    global _queue_cache
    cache = _queue_cache
    if cache.key != key:
        cache = _QueueCache(key=key, history={})
        _queue_cache = cache
    return cache


# The change key itself is read at most once a second per process (MODERATION_QUEUE_SYNC_SECONDS;
# 0 under TESTING): a moderator's page asks for it on every view (the queue, the badge), and
# that round trip was a fifth of a kept queue page. A transition committed in this process
# forgets it at once; one committed in another process shows here within the second.
_change_keys: ChangeClearedCache[tuple[Any, ...]] = ChangeClearedCache(
    "moderation_change_key",
    (ModerationItem, AuditEntry),
    "MODERATION_QUEUE_SYNC_SECONDS",
    default_seconds=1.0,
)


def queue_change_key(session: Session) -> tuple[Any, ...]:
    """Where the audit log stands: a new value whenever any item's state or text changed."""
    return _change_keys.kept("audit", lambda: tuple(session.execute(_change_key_statement()).one()))


def queue_counts(session: Session, change_key: tuple[Any, ...] | None = None) -> int:
    """How many items wait for review (the navigation badge): counted once per change."""
    cache = _cache_for(change_key if change_key is not None else queue_change_key(session))
    if cache.count is None:
        cache.count = (
            session.scalar(select(func.count()).where(ModerationItem.needs_review.is_(True))) or 0
        )
    return cache.count


QUEUE_COLUMNS = (
    ModerationItem.id,
    ModerationItem.kind,
    ModerationItem.state,
    ModerationItem.held_reasons,
    ModerationItem.submitted_at,
    ModerationItem.source,
    ModerationItem.previous_source,
    ModerationItem.preview_html,
    ModerationItem.author_id,
    User.display_name.label("author_name"),
    User.trust_level.label("author_trust_level"),
    Organization.name.label("author_organization"),
)


def queue_rows(
    session: Session,
    moderator: User,
    filters: QueueFilters,
    page: int,
    per_page: int,
    change_key: tuple[Any, ...],
) -> tuple[Page[Any], dict[int, dict[str, int]]]:
    """One page of the review queue as plain rows, with each author's history.

    Rows, not ORM objects: the page only displays, and building 20 items with their authors
    and organizations cost more than the query. ``change_key`` (``queue_change_key``, read
    by the caller) names the cache of the unfiltered total and the authors' history, so a
    page costs the same with 10 or 10,000 waiting items; a total not cached rides along with
    the rows as a scalar subquery (one statement either way)."""
    require_moderator(moderator)
    cache = _cache_for(change_key)
    unfiltered = replace(filters, newest_first=False) == QueueFilters()
    known_total = cache.count if unfiltered else None
    counted = _filtered(select(func.count()), filters).order_by(None)
    columns = list(QUEUE_COLUMNS)
    if known_total is None:
        columns.append(counted.scalar_subquery().correlate(None).label("total"))
    statement = (
        _filtered(select(*columns), filters)
        .outerjoin(User, User.id == ModerationItem.author_id)
        .outerjoin(Organization, Organization.id == User.organization_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = session.execute(statement).all()
    if known_total is not None:
        total = known_total
    elif rows:
        total = rows[0].total
    else:  # a page past the end: no row to carry the total
        total = session.scalar(counted) or 0
    if unfiltered:
        cache.count = total
    if not rows:
        return Page(items=[], page=page, per_page=per_page, total=total), {}
    history = _cached_history(session, cache, {row.author_id for row in rows if row.author_id})
    return Page(items=rows, page=page, per_page=per_page, total=total), history


def _cached_history(
    session: Session, cache: _QueueCache, author_ids: set[int]
) -> dict[int, dict[str, int]]:
    known = cache.history if cache.history is not None else {}
    missing = author_ids - known.keys()
    if missing:
        if len(known) > _HISTORY_LIMIT:
            known.clear()
        fetched = author_history(session, missing)
        for author_id in missing:
            known[author_id] = fetched.get(author_id, {})
    cache.history = known
    return {author_id: known[author_id] for author_id in author_ids}


def author_history(session: Session, author_ids: set[int]) -> dict[int, dict[str, int]]:
    """Published and rejected counts per author, one grouped query for a whole page."""
    if not author_ids:
        return {}
    rows = session.execute(
        select(ModerationItem.author_id, ModerationItem.state, func.count())
        .where(
            ModerationItem.author_id.in_(author_ids),
            ModerationItem.state.in_([State.PUBLISHED, State.REJECTED]),
        )
        .group_by(ModerationItem.author_id, ModerationItem.state)
    ).all()
    history: dict[int, dict[str, int]] = {}
    for author_id, state, count in rows:
        history.setdefault(author_id, {})[state] = count
    return history


# --- trust levels -------------------------------------------------------------------------

READ_VERBS = ("content.viewed",)
LIKE_VERBS: set[str] = set()  # features register their "liked" verbs (votes, helpful marks)
register_verbs(*READ_VERBS, "trust.promoted")


def trust_thresholds(session: Session) -> trust.TrustThresholds:
    row = session.get(ModerationSetting, "trust")
    return trust.TrustThresholds.from_settings(dict(row.value) if row else {})


def trust_facts(session: Session, user: User) -> trust.TrustFacts:
    """Aggregate the activity log and the moderation items for one user (four queries)."""
    now = utcnow()
    recent = now - timedelta(days=100)
    mine = Activity.actor_id == user.id
    day = func.date(Activity.occurred_at)
    days, recent_days = session.execute(
        select(
            func.count(func.distinct(day)),
            func.count(func.distinct(day)).filter(Activity.occurred_at > recent),
        ).where(mine)
    ).one()
    # Each item counts once however often it is reopened.
    reads = (
        select(func.max(Activity.occurred_at).label("last_read"))
        .where(mine, Activity.verb.in_(READ_VERBS))
        .group_by(Activity.subject_type, Activity.subject_id)
        .subquery()
    )
    read, recent_read = session.execute(
        select(func.count(), func.count().filter(reads.c.last_read > recent)).select_from(reads)
    ).one()
    likes_given = session.scalar(
        select(func.count()).where(mine, Activity.verb.in_(LIKE_VERBS or {"-"}))
    )
    likes_received = session.scalar(
        select(func.count()).where(
            Activity.verb.in_(LIKE_VERBS or {"-"}),
            Activity.data["author_id"].as_integer() == user.id,
        )
    )
    by_author = ModerationItem.author_id == user.id
    published, recent_published, recent_rejected = session.execute(
        select(
            func.count().filter(ModerationItem.state == State.PUBLISHED),
            func.count().filter(
                ModerationItem.state == State.PUBLISHED, ModerationItem.submitted_at > recent
            ),
            func.count().filter(
                ModerationItem.state == State.REJECTED, ModerationItem.submitted_at > recent
            ),
        ).where(by_author)
    ).one()
    upheld = session.scalar(
        select(func.count())
        .select_from(Flag)
        .join(ModerationItem, Flag.item_id == ModerationItem.id)
        .where(by_author, Flag.upheld.is_(True), Flag.created_at > recent)
    )
    return trust.TrustFacts(
        minutes_since_sign_up=(now - user.created_at).total_seconds() / 60,
        days_visited=days or 0,
        items_read=read or 0,
        published_posts=published or 0,
        likes_given=likes_given or 0,
        likes_received=likes_received or 0,
        recent_days_visited=recent_days or 0,
        recent_published_posts=recent_published or 0,
        recent_items_read=recent_read or 0,
        recent_rejected_posts=recent_rejected or 0,
        recent_upheld_flags_against=upheld or 0,
    )


@dataclass(frozen=True)
class TrustStatus:
    level: int
    locked: bool
    next_level: int | None
    missing: list[tuple[str, float, float]]  # (fact, have, need)


def trust_status(session: Session, user: User) -> TrustStatus:
    """Promote the user if they earned it (never demote) and say what the next level needs."""
    lock = session.get(TrustLock, user.id)
    facts = trust_facts(session, user)
    thresholds = trust_thresholds(session)
    if lock is not None:
        user.trust_level = lock.level
    else:
        earned = trust.earned_level(facts, thresholds)
        if earned > user.trust_level:
            user.trust_level = earned
            record_activity(
                session, user, user.organization, "trust.promoted", user, {"level": earned}
            )
    next_level = user.trust_level + 1 if user.trust_level < 3 and lock is None else None
    missing = []
    if next_level is not None:
        for requirement in trust.missing_for(next_level, facts, thresholds):
            need = requirement.at_least if requirement.at_least is not None else requirement.at_most
            missing.append((requirement.fact, getattr(facts, requirement.fact), need or 0))
    return TrustStatus(
        level=user.trust_level, locked=lock is not None, next_level=next_level, missing=missing
    )


def promote_all(session: Session, batch: int = 500) -> int:
    """The periodic promotion: every active, unlocked user below TL3. Returns how many rose."""
    promoted = 0
    last_id = 0
    while True:
        users = session.scalars(
            select(User)
            .where(User.id > last_id, User.active.is_(True), User.trust_level < 3)
            .where(~select(TrustLock.user_id).where(TrustLock.user_id == User.id).exists())
            .order_by(User.id)
            .limit(batch)
        ).all()
        if not users:
            return promoted
        for user in users:
            before = user.trust_level
            trust_status(session, user)
            promoted += user.trust_level > before
            last_id = user.id
        session.flush()


def lock_trust_level(session: Session, moderator: User, user_id: int, level: int | None) -> None:
    """Fix a user's level (including TL4), or with ``None`` hand it back to the promotion."""
    require_moderator(moderator)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(str(_l("Not found.")))
    lock = session.get(TrustLock, user_id)
    if level is None:
        if lock is not None:
            session.delete(lock)
        return
    if level not in range(5):
        raise DomainError(str(_l("Choose a level from 0 to 4.")), field="level")
    if lock is None:
        lock = TrustLock(user_id=user_id, level=level, locked_by_id=moderator.id)
        session.add(lock)
    lock.level = level
    user.trust_level = level


# --- statistics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFigures:
    day: str
    decided: int
    p50_minutes: float
    p90_minutes: float


@dataclass(frozen=True)
class ModerationStats:
    queue_size: int
    oldest_waiting_hours: float
    days: list[DayFigures]
    per_moderator: list[tuple[str, int]]
    approved: int
    rejected: int
    flags_raised: int
    flags_upheld: int

    @property
    def approval_rate(self) -> float | None:
        decided = self.approved + self.rejected
        return self.approved / decided if decided else None


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def oldest_waiting(session: Session) -> datetime | None:
    """When the item first in the queue (the one that has waited longest for review) was
    submitted; None when none waits. The queue's own index answers it: the minimum over every
    pending item read 10,000 rows, and made a moderator's home page four times slower."""
    return session.scalar(
        select(ModerationItem.submitted_at)
        .where(ModerationItem.needs_review.is_(True))
        .order_by(ModerationItem.submitted_at)
        .limit(1)
    )


def statistics(session: Session, viewer: User, days: int = 30) -> ModerationStats:
    require_moderator(viewer)
    now = utcnow()
    since = now - timedelta(days=days)
    oldest = oldest_waiting(session)
    decided_rows = session.execute(
        select(AuditEntry.created_at, ModerationItem.submitted_at, AuditEntry.action)
        .join(ModerationItem, AuditEntry.item_id == ModerationItem.id)
        .where(
            AuditEntry.created_at > since,
            AuditEntry.actor_id.is_not(None),
            AuditEntry.action.in_(["published", "rejected", "edited"]),
            AuditEntry.from_state == State.PENDING,
        )
    ).all()
    by_day: dict[str, list[float]] = {}
    approved = rejected = 0
    for decided_at, submitted_at, action in decided_rows:
        minutes = max(0.0, (decided_at - submitted_at).total_seconds() / 60)
        # the moderator's days: a decision at 01:00 in Shanghai belongs to that day, not the last
        day = in_zone(decided_at, viewer.timezone).date().isoformat()
        by_day.setdefault(day, []).append(minutes)
        if action == "rejected":
            rejected += 1
        else:
            approved += 1
    per_moderator = session.execute(
        select(User.display_name, func.count())
        .join(AuditEntry, AuditEntry.actor_id == User.id)
        .where(
            AuditEntry.created_at > since,
            AuditEntry.action.in_(
                ["published", "rejected", "edited", "hidden", "restored", "removed"]
            ),
        )
        .group_by(User.id, User.display_name)
        .order_by(func.count().desc())
    ).all()
    raised, upheld = session.execute(
        select(func.count(), func.count().filter(Flag.upheld.is_(True))).where(
            Flag.created_at > since
        )
    ).one()
    return ModerationStats(
        queue_size=queue_counts(session),
        oldest_waiting_hours=round((now - oldest).total_seconds() / 3600, 1) if oldest else 0.0,
        days=[
            DayFigures(
                day,
                len(values),
                round(_percentile(values, 0.5), 1),
                round(_percentile(values, 0.9), 1),
            )
            for day, values in sorted(by_day.items(), reverse=True)
        ],
        per_moderator=[(name, n) for name, n in per_moderator],
        approved=approved,
        rejected=rejected,
        flags_raised=raised or 0,
        flags_upheld=upheld or 0,
    )
