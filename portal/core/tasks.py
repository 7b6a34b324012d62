"""Celery plumbing: one Celery app per Flask app, tasks run in the app context, and one
helper that sends work only after the transaction that produced it has committed.

When the broker (Redis) is away, a send fails fast (short socket timeouts, one quick retry)
and the unsent work is written to the ``task_outbox`` table instead of being lost; beat's
``flush_task_outbox`` sends it again once the broker is back (``cocreate tasks flush`` does
the same by hand). Every task is idempotent, so a send that happens twice is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery, Task, shared_task
from celery.exceptions import NotRegistered
from flask import Flask, current_app, has_app_context
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import JSON, String, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base, new_session, utcnow

log = logging.getLogger(__name__)

# Errors worth retrying with backoff: the database or the broker was briefly away.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, ConnectionError, TimeoutError)
RETRY_POLICY: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}

# How a send waits for the broker. One quick retry reconnects a pooled connection that a Redis
# restart closed; more would only make a page wait while Redis is down (the outbox keeps the
# work). Measured with Redis stopped: 0.1 s with this policy, 0.6 s with kombu's default, and
# 6 s with ``retry=False`` (the connection is then set up under Celery's own connect retries).
SEND_RETRY_POLICY: dict[str, float] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# Errors that mean "the broker is away" rather than "this task cannot be sent".
BROKER_ERRORS: tuple[type[BaseException], ...] = (BrokerError, OSError, TimeoutError)

_PENDING_KEY = "cocreate_tasks_after_commit"


class PendingTask(Base):
    """A task that could not be sent when its transaction committed (the broker was away)."""

    __tablename__ = "task_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


def celery_init_app(app: Flask) -> Celery:
    broker = app.config["BROKER_URL"]

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            # Inline (eager) tasks already run inside the sending app's context.
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    timeout = app.config["BROKER_SOCKET_TIMEOUT"]
    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.conf.update(
        broker_url=broker or "memory://",
        task_always_eager=not broker,
        task_eager_propagates=bool(app.config.get("TESTING")),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": app.config["BROKER_VISIBILITY_TIMEOUT"],
            # Without these a Redis that stops answering (failover, a dropped NAT entry) holds
            # a publish, and so a page, forever; a refused connection fails at once anyway.
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
        },
        task_routes={"portal.search.*": {"queue": "search"}},
        beat_schedule={
            "flush-outbox": {"task": "portal.core.mail.flush_outbox", "schedule": 300.0},
            "flush-task-outbox": {
                "task": "portal.core.tasks.flush_task_outbox",
                "schedule": float(app.config["TASK_OUTBOX_FLUSH_SECONDS"]),
            },
        },
        timezone="UTC",
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    app.extensions["cocreate_broker_breaker"] = _Breaker(app.config["BROKER_RETRY_AFTER"])
    return celery_app


def enqueue_after_commit(session: Session, task: Task, *args: Any) -> None:
    """Send ``task`` with ``args`` (ids, never ORM objects) once ``session`` commits.

    A rollback drops the pending sends, so a worker never sees work for rows that do not
    exist, and never sees them before they are visible. A send that fails after the commit
    (broker away) is kept in ``task_outbox`` and sent later by ``flush_task_outbox``.
    """
    celery_app: Celery = current_app.extensions["celery"]
    outbox_sessions = current_app.extensions["cocreate_sessionmaker"]
    breaker: _Breaker = current_app.extensions["cocreate_broker_breaker"]
    session.info.setdefault(_PENDING_KEY, []).append(
        (celery_app, outbox_sessions, breaker, task.name, args)
    )


class _Breaker:
    """After a failed send, skip the broker for ``BROKER_RETRY_AFTER`` seconds in this process:
    a Redis that does not answer costs one request its socket timeouts, not every request."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.open_until = 0.0
        self.last_error = ""

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, error: str) -> None:
        self.open_until = time.monotonic() + self.retry_after
        self.last_error = error


def _send(celery_app: Celery, name: str, args: Sequence[Any]) -> None:
    celery_app.tasks[name].apply_async(args=list(args), retry=True, retry_policy=SEND_RETRY_POLICY)


@event.listens_for(Session, "after_commit")
def _send_pending_tasks(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released (begin_nested): the real commit is still to come
    pending = session.info.pop(_PENDING_KEY, [])
    unsent: list[tuple[Callable[[], Session], str, Sequence[Any], str]] = []
    for celery_app, outbox_sessions, breaker, name, args in pending:
        if breaker.is_open():  # the broker just failed: do not make the page wait for it again
            unsent.append((outbox_sessions, name, args, f"not tried: {breaker.last_error}"[:500]))
            continue
        try:
            _send(celery_app, name, args)
        except Exception as error:
            if celery_app.conf.task_always_eager:
                raise
            log.warning(
                "could not send task %s%r (%s); keeping it in task_outbox", name, args, error
            )
            breaker.trip(str(error))
            unsent.append((outbox_sessions, name, args, str(error)[:500]))
    if unsent:
        _keep_unsent(unsent)


def _keep_unsent(unsent: list[tuple[Callable[[], Session], str, Sequence[Any], str]]) -> None:
    """Write the unsent tasks in a short transaction of their own: the caller's transaction
    has committed already, and its request must not fail over the broker."""
    try:
        with unsent[0][0]() as outbox:
            outbox.add_all(
                PendingTask(name=name, args=list(args), last_error=error)
                for _sessions, name, args, error in unsent
            )
            outbox.commit()
    except Exception:
        log.exception(
            "could not keep %d unsent tasks in task_outbox; lost: %r",
            len(unsent),
            [(name, args) for _sessions, name, args, _error in unsent],
        )


@event.listens_for(Session, "after_rollback")
def _drop_pending_tasks(session: Session) -> None:
    if session.in_nested_transaction():
        return  # only a savepoint rolled back: the outer transaction's work still stands
    session.info.pop(_PENDING_KEY, None)


# --- the outbox flush -----------------------------------------------------------------------


@dataclass(frozen=True)
class FlushResult:
    sent: int  # sent and deleted
    failed: int  # tried and kept (attempts bumped)
    waiting: int  # still in the outbox afterwards, held rows included
    held: int  # past the attempt cap: kept for an operator, skipped by the periodic flush


def flush_task_outbox(session: Session, *, include_held: bool = False) -> FlushResult:
    """Send the tasks the broker missed, oldest first, deleting each row once it is sent.

    Tasks are idempotent (they take ids and re-read the database), so a row sent twice, say
    by a flush that crashed between the send and the delete, or because the same work was
    also sent directly, does no harm. A broker error stops the flush (the rest would fail
    the same way) and bumps that row's attempts; any other error (an unknown task name
    after a deploy) bumps attempts and moves on. Rows with ``TASK_OUTBOX_MAX_ATTEMPTS``
    attempts are held: kept and logged, skipped unless ``include_held`` (the CLI).

    It commits after each row: a send cannot be rolled back, so neither may its delete.
    """
    celery_app: Celery = current_app.extensions["celery"]
    cap = current_app.config["TASK_OUTBOX_MAX_ATTEMPTS"]
    query = select(PendingTask.id).order_by(PendingTask.id).limit(1000)
    if not include_held:
        query = query.where(PendingTask.attempts < cap)
    sent = failed = 0
    for row_id in session.scalars(query).all():
        row = session.get(PendingTask, row_id, with_for_update=True)
        if row is None:  # another flush sent it
            session.commit()
            continue
        try:
            _send(celery_app, row.name, row.args)
        except Exception as error:
            if celery_app.conf.task_always_eager and not isinstance(error, NotRegistered):
                raise  # inline: the task itself failed, as it would have at commit
            row.attempts += 1
            row.last_error = f"{type(error).__name__}: {error}"[:500]
            failed += 1
            session.commit()
            if row.attempts == cap:
                log.error("task_outbox row %d (%s) held after %d attempts", row_id, row.name, cap)
            if isinstance(error, BROKER_ERRORS):
                log.warning("task_outbox flush stopped: broker unavailable (%s)", error)
                break
            log.exception("task_outbox row %d (%s) could not be sent", row_id, row.name)
            continue
        session.delete(row)
        session.commit()
        sent += 1
    waiting = session.scalar(select(func.count()).select_from(PendingTask)) or 0
    held = (
        session.scalar(
            select(func.count()).select_from(PendingTask).where(PendingTask.attempts >= cap)
        )
        or 0
    )
    session.commit()
    if held:
        log.error("task_outbox holds %d rows past %d attempts (cocreate tasks flush)", held, cap)
    return FlushResult(sent=sent, failed=failed, waiting=waiting, held=held)


@shared_task(name="portal.core.tasks.flush_task_outbox")
def flush_task_outbox_task() -> int:
    """Run by beat. No retry policy of its own: the next beat tick is the retry."""
    with new_session() as session:
        return flush_task_outbox(session).sent
