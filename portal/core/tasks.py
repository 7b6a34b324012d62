"""Celery plumbing: one Celery app per Flask app, tasks run in the app context, and one
helper that sends work only after the transaction that produced it has committed."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

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

_PENDING_KEY = "cocreate_tasks_after_commit"


def celery_init_app(app: Flask) -> Celery:
    broker = app.config["BROKER_URL"]

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            # Inline (eager) tasks already run inside the sending app's context.
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

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
        broker_transport_options={"visibility_timeout": app.config["BROKER_VISIBILITY_TIMEOUT"]},
        task_routes={"portal.search.*": {"queue": "search"}},
        beat_schedule={
            "flush-outbox": {"task": "portal.core.mail.flush_outbox", "schedule": 300.0},
        },
        timezone="UTC",
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def enqueue_after_commit(session: Session, task: Task, *args: Any) -> None:
    """Send ``task`` with ``args`` (ids, never ORM objects) once ``session`` commits.

    A rollback drops the pending sends, so a worker never sees work for rows that do not
    exist, and never sees them before they are visible.
    """
    celery_app: Celery = current_app.extensions["celery"]
    session.info.setdefault(_PENDING_KEY, []).append((celery_app, task.name, args))


@event.listens_for(Session, "after_commit")
def _send_pending_tasks(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released (begin_nested): the real commit is still to come
    pending = session.info.pop(_PENDING_KEY, [])
    for celery_app, name, args in pending:
        try:
            celery_app.tasks[name].apply_async(args=list(args))
        except Exception:
            if celery_app.conf.task_always_eager:
                raise
            # The broker is away: the data is committed, and periodic tasks pick up what
            # was not sent (the mail outbox is flushed by beat).
            log.exception("could not send task %s%r; it will be picked up later", name, args)


@event.listens_for(Session, "after_rollback")
def _drop_pending_tasks(session: Session) -> None:
    if session.in_nested_transaction():
        return  # only a savepoint rolled back: the outer transaction's work still stands
    session.info.pop(_PENDING_KEY, None)
