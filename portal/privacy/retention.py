"""Retention: old rows of the activity log, the search log and sent mail are deleted, so
personal data is kept no longer than it serves a purpose (GDPR art. 5(1)(e), PIPL art. 19).

Each kind has a setting in days (``0`` keeps rows forever). Rows go in batches of ids so a
large backlog never holds one long lock; the caller commits after each batch (``after_batch``)
and the task logs the progress. The defaults keep two years of activity, enough for the
customer-success signals (which read at most a year back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.mail import OutboxMessage
from portal.search.models import SearchLogEntry

log = logging.getLogger(__name__)

BATCH_SIZE = 1000


@dataclass(frozen=True)
class Rule:
    """What one setting governs: ``model`` rows whose ``stamp`` is older than the cutoff."""

    name: str
    setting: str
    default_days: int
    model: Any
    stamp: Any
    extra: Callable[[], ColumnElement[bool]] | None = None


RULES: tuple[Rule, ...] = (
    Rule("activity", "RETENTION_ACTIVITY_DAYS", 730, Activity, Activity.occurred_at),
    Rule(
        "search_log", "RETENTION_SEARCH_LOG_DAYS", 180, SearchLogEntry, SearchLogEntry.searched_at
    ),
    # Only mail that was sent: unsent mail is still work to do (the outbox sweep retries it).
    Rule(
        "outbox",
        "RETENTION_OUTBOX_DAYS",
        90,
        OutboxMessage,
        OutboxMessage.sent_at,
        lambda: OutboxMessage.sent_at.is_not(None),
    ),
)
DEFAULTS: dict[str, int] = {rule.setting: rule.default_days for rule in RULES}


def retention_days(config: Mapping[str, Any]) -> dict[str, int]:
    """Days each kind is kept, from ``config`` with the defaults; a negative or unreadable
    value falls back to the default rather than deleting everything."""
    days: dict[str, int] = {}
    for rule in RULES:
        raw = config.get(rule.setting, rule.default_days)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = rule.default_days
        days[rule.name] = value if value >= 0 else rule.default_days
    return days


def _expired(rule: Rule, cutoff: datetime) -> list[ColumnElement[bool]]:
    conditions = [rule.stamp < cutoff]
    if rule.extra is not None:
        conditions.append(rule.extra())
    return conditions


def purge(
    session: Session,
    config: Mapping[str, Any],
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    after_batch: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Delete (or with ``dry_run`` only count) expired rows; returns rows per kind.

    ``after_batch(kind, deleted_so_far)`` runs after each batch is flushed: the task and the
    command commit there, so each batch is its own short transaction.
    """
    now = now or utcnow()
    counts: dict[str, int] = {}
    for rule in RULES:
        days = retention_days(config)[rule.name]
        if days == 0:
            counts[rule.name] = 0
            continue
        conditions = _expired(rule, now - timedelta(days=days))
        if dry_run:
            counts[rule.name] = (
                session.scalar(select(func.count()).select_from(rule.model).where(*conditions)) or 0
            )
            continue
        deleted = 0
        while True:
            ids = list(
                session.scalars(
                    select(rule.model.id)
                    .where(*conditions)
                    .order_by(rule.model.id)
                    .limit(batch_size)
                )
            )
            if not ids:
                break
            session.execute(
                delete(rule.model).where(rule.model.id.in_(ids)),
                execution_options={"synchronize_session": False},
            )
            deleted += len(ids)
            log.info("retention: %s deleted %d rows so far", rule.name, deleted)
            if after_batch is not None:
                after_batch(rule.name, deleted)
            if len(ids) < batch_size:
                break
        counts[rule.name] = deleted
    return counts
