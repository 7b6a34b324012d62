"""A task whose every execution is counted, loaded into a real worker with
``celery -A wsgi:celery worker -I tests.reliability.probe_tasks``.

Each execution first commits a row to ``probe_runs`` (so an execution cut short by a kill
still counts), then inserts its effect, keyed by the task's argument, into
``probe_effects`` with ``ON CONFLICT DO NOTHING``: the idempotent insert the project's tasks
are expected to use. Lost tasks show as missing effects; re-runs show as extra runs. Sent
through ``enqueue_after_commit``, it has a ``task_outbox`` row that the project's base task
class deletes when ``record`` returns, as for every real task.

Why not a real task of the project: ``send_outbox_message`` is the only per-id one, and a
second run of it is a no-op in the database (``sent_at`` is checked under ``FOR UPDATE``), so
it would show neither re-runs nor doubles without an SMTP server in the loop.
"""

from __future__ import annotations

import os
import time

from celery import Task, shared_task
from sqlalchemy import text
from sqlalchemy.engine import Engine

from portal.core.db import db

TASK_NAME = "tests.reliability.probe_tasks.record"


def create_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS probe_runs, probe_effects"))
        connection.execute(
            text(
                "CREATE TABLE probe_runs (id SERIAL PRIMARY KEY, key INTEGER NOT NULL,"
                " pid INTEGER NOT NULL, redelivered BOOLEAN NOT NULL)"
            )
        )
        connection.execute(text("CREATE TABLE probe_effects (key INTEGER PRIMARY KEY)"))


@shared_task(name=TASK_NAME, bind=True)
def record(self: Task, key: int, pause: float = 0.0) -> None:
    """Count this execution, wait ``pause`` seconds (a window for a kill to land inside a
    task), then apply the effect once however often the task runs."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO probe_runs (key, pid, redelivered) VALUES (:key, :pid, :again)"),
            {"key": key, "pid": os.getpid(), "again": redelivered},
        )
    if pause:
        time.sleep(pause)
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO probe_effects (key) VALUES (:key) ON CONFLICT (key) DO NOTHING"),
            {"key": key},
        )
