"""Celery plumbing: one Celery app per Flask app, tasks run in the app context, and one
helper that sends work only after the transaction that produced it has committed.

With a broker, every send is tracked in the ``task_outbox`` table until the task has
COMPLETED, so nothing a committed transaction asked for can be lost, whatever the broker
does. ``enqueue_after_commit`` writes the row in the caller's transaction (it commits or
rolls back with the business change), sends the task after the commit with the row's id in
a message header, and the task deletes its row once its body has returned (a task that
raises keeps it; autoretry still applies). What a row outliving its task covers:

- a send that failed (Redis away, or skipped for ``BROKER_RETRY_AFTER`` seconds after a
  failure): the row is marked unsent and the next flush sends it;
- a message the broker lost: Redis keeps nothing on disk here, so a restart drops every
  queued task, and kombu's Redis transport takes a message off the list (BRPOP) before it
  records it as unacknowledged, so a worker killed in between loses a task that never
  started;
- a task that failed for good (retries exhausted).

Beat's ``flush_task_outbox`` (every ``TASK_OUTBOX_FLUSH_SECONDS``; ``cocreate tasks flush``
by hand) sends again, in id order, every row whose last send is older than
``TASK_OUTBOX_GRACE_SECONDS`` (default 10 minutes, longer than a normal queue wait) and
every row whose send failed. The trade-off: the flush cannot tell a lost task from a slow
one, so a task still queued or running after the grace period runs twice. Every task is
idempotent for that reason (search updates re-read the database, an export rebuilds the same
file, mail is sent under a row lock that checks ``sent_at``, a post's followers are told once
under its row lock, an import of a finished job or one running elsewhere is a no-op), and
the grace period keeps the doubles rare.

Without a broker (eager mode: development and tests) tasks run inline at commit and no row is
written at all; each runs as a worker would, in an empty context with an app context of its
own (its own sessions, no request, no signed-in user).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery, Task, shared_task
from celery.exceptions import NotRegistered
from flask import Flask, current_app, has_app_context
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import JSON, String, delete, event, func, inspect, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

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
# The message header that carries a task's ``task_outbox`` row id (Celery hands custom headers
# to the task as ``self.request.<name>``, and keeps them on a retry).
OUTBOX_HEADER = "outbox_id"


class PendingTask(Base):
    """A task a committed transaction asked for that has not completed yet."""

    __tablename__ = "task_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When it was last sent (at commit, or by a flush); None: that send failed, so the next
    # flush sends it without waiting for the grace period.
    sent_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)  # sends by the flush
    last_error: Mapped[str | None] = mapped_column(String(500))


def celery_init_app(app: Flask) -> Celery:
    broker = app.config["BROKER_URL"]

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            if self.request.is_eager:
                # Inline (no broker), run as a worker runs it: in an empty context, outside the
                # sender's request and app contexts. Otherwise the task would share the
                # request's session (committed, inside its commit hook) and its signed-in user.
                sender = current_app._get_current_object() if has_app_context() else app
                return contextvars.Context().run(self._in_app, sender, args, kwargs)
            return self._in_app(app, args, kwargs)

        def _in_app(self, flask_app: Flask, args: Any, kwargs: Any) -> object:
            if has_app_context():  # a worker's own context (its tests push one)
                result = self.run(*args, **kwargs)
            else:
                with flask_app.app_context():
                    result = self.run(*args, **kwargs)
            # Only reached when the body returned: a task that raised (or asked for a retry)
            # keeps its row, and the flush sends it again after the grace period.
            outbox_id = getattr(self.request, OUTBOX_HEADER, None)
            if outbox_id is not None and not self.request.is_eager:
                _completed(app.extensions["cocreate_sessionmaker"], int(outbox_id))
            return result

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
        # Celery 6's default: a worker that loses the broker stops its late-acked tasks (Redis
        # hands them out again, and the outbox covers what it does not).
        worker_cancel_long_running_tasks_on_connection_loss=True,
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
    exist, and never sees them before they are visible. With a broker, a ``task_outbox`` row
    is added to ``session`` too: it commits with the caller's change and stays until the
    task has completed, so a send that fails or a message the broker loses is sent again by
    ``flush_task_outbox``. Eager mode (no broker) writes no row: the task runs at commit.
    """
    celery_app: Celery = current_app.extensions["celery"]
    outbox_sessions = current_app.extensions["cocreate_sessionmaker"]
    breaker: _Breaker = current_app.extensions["cocreate_broker_breaker"]
    row = None
    if not celery_app.conf.task_always_eager:
        row = PendingTask(name=task.name, args=list(args))
        session.add(row)  # inserted by the commit's flush, batched with the caller's rows
    session.info.setdefault(_PENDING_KEY, []).append(
        (celery_app, outbox_sessions, breaker, task.name, args, row)
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


def _send(celery_app: Celery, name: str, args: Sequence[Any], outbox_id: int | None = None) -> None:
    headers = {OUTBOX_HEADER: outbox_id} if outbox_id is not None else None
    celery_app.tasks[name].apply_async(
        args=list(args), headers=headers, retry=True, retry_policy=SEND_RETRY_POLICY
    )


def _row_id(row: PendingTask | None) -> int | None:
    """The row's id without a query (the session has just committed); None when the row was
    never written (eager mode) or went with a rolled-back savepoint."""
    if row is None:
        return None
    identity = inspect(row).identity
    return int(identity[0]) if identity else None


@event.listens_for(Session, "after_commit")
def _send_pending_tasks(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released (begin_nested): the real commit is still to come
    pending = session.info.pop(_PENDING_KEY, [])
    unsent: list[tuple[int, str]] = []
    outbox_sessions = None
    for celery_app, sessions, breaker, name, args, row in pending:
        outbox_id = _row_id(row)
        if breaker.is_open():  # the broker just failed: do not make the page wait for it again
            error = f"not tried: {breaker.last_error}"
        else:
            try:
                _send(celery_app, name, args, outbox_id)
                continue
            except Exception as failure:
                if celery_app.conf.task_always_eager:
                    raise
                error = str(failure)
                breaker.trip(error)
                log.warning(
                    "could not send task %s%r (%s); task_outbox keeps it", name, args, error
                )
        if outbox_id is None:
            log.error("task %s%r lost: it has no task_outbox row", name, args)
        else:
            unsent.append((outbox_id, error[:500]))
            outbox_sessions = sessions
    if unsent and outbox_sessions is not None:
        _mark_unsent(outbox_sessions, unsent)


def _mark_unsent(outbox_sessions: sessionmaker[Session], unsent: list[tuple[int, str]]) -> None:
    """Let the next flush send these rows without waiting for the grace period. Best effort:
    the rows are already committed, so if this fails they are only sent later."""
    try:
        with outbox_sessions() as outbox:
            for error in {error for _id, error in unsent}:
                ids = [row_id for row_id, e in unsent if e == error]
                outbox.execute(
                    update(PendingTask)
                    .where(PendingTask.id.in_(ids))
                    .values(sent_at=None, last_error=error)
                )
            outbox.commit()
    except Exception:
        log.exception(
            "task_outbox rows %s not marked unsent; the flush sends them after the grace period",
            [row_id for row_id, _error in unsent],
        )


def _completed(outbox_sessions: sessionmaker[Session], outbox_id: int) -> None:
    """The task's body returned: forget its row, in a short transaction of its own. A failure
    here is only logged; the work is done, and the row makes the flush run it once more."""
    try:
        with outbox_sessions() as outbox:
            outbox.execute(delete(PendingTask).where(PendingTask.id == outbox_id))
            outbox.commit()
    except Exception:
        log.exception("task_outbox row %d not deleted; its task will run again", outbox_id)


@event.listens_for(Session, "after_rollback")
def _drop_pending_tasks(session: Session) -> None:
    if session.in_nested_transaction():
        return  # only a savepoint rolled back: the outer transaction's work still stands
    session.info.pop(_PENDING_KEY, None)


# --- the outbox flush -----------------------------------------------------------------------


@dataclass(frozen=True)
class FlushResult:
    sent: int  # sent again (without a broker: run inline and deleted)
    failed: int  # the send failed: marked unsent for the next flush
    waiting: int  # not sent afterwards: the last send failed (held rows among them)
    in_flight: int  # sent and not completed yet: their tasks delete them when done
    held: int  # past the attempt cap: kept for an operator, skipped by the periodic flush


def flush_task_outbox(session: Session, *, include_held: bool = False) -> FlushResult:
    """Send again, oldest first, the tasks that have not completed: rows whose send failed,
    and rows last sent more than ``TASK_OUTBOX_GRACE_SECONDS`` ago (the broker lost the
    message, or the task failed or is still running: idempotent tasks make a double run
    harmless). Each send bumps the row's attempts and restarts its grace period; the task
    deletes the row when it completes.

    A broker error stops the flush (the rest would fail the same way) and marks that row
    unsent; any other error (an unknown task name after a deploy) moves on. Rows with
    ``TASK_OUTBOX_MAX_ATTEMPTS`` attempts are held: kept and logged, skipped unless
    ``include_held`` (the CLI). Without a broker the task runs inline here, so its row is
    deleted at once.

    It commits after each row: a send cannot be rolled back, so neither may its bookkeeping.
    """
    celery_app: Celery = current_app.extensions["celery"]
    eager = celery_app.conf.task_always_eager
    cap = current_app.config["TASK_OUTBOX_MAX_ATTEMPTS"]
    cutoff = utcnow() - timedelta(seconds=current_app.config["TASK_OUTBOX_GRACE_SECONDS"])
    due = or_(PendingTask.sent_at.is_(None), PendingTask.sent_at < cutoff)
    query = select(PendingTask.id).where(due).order_by(PendingTask.id).limit(1000)
    if not include_held:
        query = query.where(PendingTask.attempts < cap)
    sent = failed = 0
    for row_id in session.scalars(query).all():
        row = session.get(PendingTask, row_id, with_for_update=True, populate_existing=True)
        if row is None or (row.sent_at is not None and row.sent_at >= cutoff):
            session.commit()  # completed meanwhile, or another flush sent it
            continue
        row.attempts += 1
        try:
            _send(celery_app, row.name, row.args, None if eager else row.id)
        except Exception as error:
            if eager and not isinstance(error, NotRegistered):
                raise  # inline: the task itself failed, as it would have at commit
            row.sent_at = None
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
        if eager:
            session.delete(row)  # it ran inline and returned: completed
        else:
            row.sent_at = utcnow()
            row.last_error = None
        session.commit()
        sent += 1
    total = session.scalar(select(func.count()).select_from(PendingTask)) or 0
    waiting = (
        session.scalar(
            select(func.count()).select_from(PendingTask).where(PendingTask.sent_at.is_(None))
        )
        or 0
    )
    held = (
        session.scalar(
            select(func.count()).select_from(PendingTask).where(PendingTask.attempts >= cap)
        )
        or 0
    )
    session.commit()
    if held:
        log.error("task_outbox holds %d rows past %d attempts (cocreate tasks flush)", held, cap)
    return FlushResult(
        sent=sent, failed=failed, waiting=waiting, in_flight=total - waiting, held=held
    )


@shared_task(name="portal.core.tasks.flush_task_outbox")
def flush_task_outbox_task() -> int:
    """Run by beat. No retry policy of its own: the next beat tick is the retry."""
    with new_session() as session:
        return flush_task_outbox(session).sent
