"""A worker killed with SIGKILL in the middle of a batch: every task it interrupted runs
again, no effect is doubled, and at most the one message the main process was fetching is
lost (a limit of kombu's Redis transport, explained at the assertion).

The production settings (``portal/core/tasks.py``) acknowledge a task only after it ran
(``acks_late``), give a task back when its pool process dies (``task_reject_on_worker_lost``)
and let a worker hold one message per process (prefetch multiplier 1). On Redis, a message
held by a worker that vanished comes back after ``BROKER_VISIBILITY_TIMEOUT``: a few seconds
here, so the test can wait for it.

Pool: prefork with concurrency 2, as ``celery worker`` runs by default in production (the
pool size follows the cores). It allows two kills that exercise the two recovery paths:
one pool process killed (the main process rejects its task, which is requeued at once),
then the whole process group killed (a lost machine or container: nobody is left to give
the messages back; the broker's visibility timeout does). ``--pool solo`` would only cover
the second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from portal.app import create_app
from portal.core.db import make_engine
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config
from tests.reliability import probe_tasks
from tests.reliability.conftest import PrivateRedis
from tests.services import missing

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
TASKS = 500
PAUSE = 0.02  # seconds inside each task: a window for the kill to land in
VISIBILITY_TIMEOUT = 3  # seconds
CONCURRENCY = 2
# The machine's PostgreSQL when the suite runs on SQLite: the worker and the test write one
# database from several processes, which is what PostgreSQL is for.
FALLBACK_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cocreate_test"


def _postgres_database(tmp_root: Path) -> str:
    base = TEST_DATABASE_URL
    if not base.startswith("postgresql"):
        base = os.environ.get("RELIABILITY_PG_URL", FALLBACK_PG_URL)
    try:
        return sibling_database(base, "worker_kill", tmp_root)
    except OperationalError as error:
        missing(f"PostgreSQL at {base} does not answer: {error.orig}")
        raise  # not reached: missing() skips or fails


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The production worker command, in a process group of its own so it can be killed
    whole, with the probe task imported (``-I``)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wsgi:celery", "worker"]
            + ["-I", "tests.reliability.probe_tasks"]
            + ["--pool", "prefork", "--concurrency", str(CONCURRENCY), "--loglevel", "WARNING"]
            + ["--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _end_group(worker: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if worker.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # ended in the meantime
            os.killpg(worker.pid, sig)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: parent pid
                found.append(int(entry.name))
    return found


@pytest.fixture
def probe_database(tmp_root: Path) -> Iterator[Engine]:
    engine = make_engine(_postgres_database(tmp_root))
    probe_tasks.create_tables(engine)
    yield engine
    engine.dispose()


def test_sigkilled_worker_reruns_interrupted_tasks_and_doubles_no_effect(
    probe_database: Engine, private_redis: PrivateRedis, tmp_root: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    database = probe_database.url.render_as_string(hide_password=False)
    broker = private_redis.url()
    queue = redis.Redis.from_url(broker)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "COCREATE_DATABASE_URL": database,
        "COCREATE_BROKER_URL": broker,
        "COCREATE_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "COCREATE_SECRET_KEY": "worker-kill-test-secret-key-0123456789abcdef",
        "COCREATE_INSTANCE_PATH": str(tmp_path / "instance"),
        "COCREATE_SEARCH_INDEX_DIR": str(tmp_path / "search-index"),
    }

    def scalar(sql: str) -> int:
        with probe_database.connect() as connection:
            return int(connection.execute(text(sql)).scalar_one())

    def effects() -> int:
        return scalar("SELECT count(*) FROM probe_effects")

    def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                state = (
                    f"{effects()} of {TASKS} effects, {queue.llen('celery')} queued,"
                    f" {queue.hlen('unacked')} unacknowledged"
                )
                pytest.fail(f"{what} within {timeout} s ({state}); worker log:\n{_tail(log)}")
            time.sleep(0.005)

    # A task in progress: its run is committed, its effect not yet.
    in_progress = (
        "SELECT pid FROM probe_runs r WHERE NOT EXISTS"
        " (SELECT 1 FROM probe_effects e WHERE e.key = r.key) ORDER BY r.id DESC LIMIT 1"
    )

    def pid_in_task() -> int | None:
        with probe_database.connect() as connection:
            return connection.execute(text(in_progress)).scalar()

    def kill_pool_process_in_task() -> bool:
        pid = pid_in_task()
        if pid is None or pid not in _children(worker.pid):
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    app = create_app(test_config(database, tmp_root, BROKER_URL=broker, TESTING=False))
    celery_app = app.extensions["celery"]
    assert celery_app.conf.task_acks_late and celery_app.conf.task_reject_on_worker_lost
    assert celery_app.conf.worker_prefetch_multiplier == 1

    worker = _start_worker(env, log)
    second = None
    try:
        with celery_app.producer_or_acquire() as producer:
            for key in range(TASKS):
                celery_app.send_task(probe_tasks.TASK_NAME, args=[key, PAUSE], producer=producer)
        sent = time.monotonic()

        # 1. One pool process dies in the middle of a task.
        wait_until(lambda: effects() >= TASKS // 5, 30, "the worker did not start the batch")
        wait_until(kill_pool_process_in_task, 10, "no pool process was seen inside a task")
        at_child_kill = effects()

        # 2. The whole worker dies (main process and pool) with tasks in progress.
        wait_until(lambda: effects() >= TASKS // 2, 30, "the worker stalled after the child")
        wait_until(lambda: pid_in_task() is not None, 10, "no task in progress")
        _end_group(worker, signal.SIGKILL)
        at_group_kill = effects()
        held_by_dead_worker = queue.hlen("unacked")
        assert 0 < at_group_kill < TASKS, "the kill did not land in the middle of the batch"
        assert worker.poll() is not None and not _children(worker.pid)

        # 3. A new worker finishes the batch, including what the dead one held.
        killed = time.monotonic()
        second = _start_worker(env, log)
        drained_at: float | None = None

        def finished() -> bool:
            nonlocal drained_at
            if queue.llen("celery") or queue.hlen("unacked"):
                drained_at = None
                return False
            if effects() == TASKS:
                return True
            # Nothing queued or held: only a task running right now can add an effect.
            drained_at = drained_at or time.monotonic()
            return time.monotonic() - drained_at > 3  # nothing left that could still run

        wait_until(finished, 45, "the batch was not finished")
        recovered = time.monotonic()
        _end_group(second, signal.SIGTERM)

        with probe_database.connect() as connection:
            keys = set(connection.execute(text("SELECT key FROM probe_effects")).scalars())
            started_keys = set(connection.execute(text("SELECT key FROM probe_runs")).scalars())
        runs = scalar("SELECT count(*) FROM probe_runs")
        reruns = runs - len(started_keys)
        redelivered = scalar("SELECT count(*) FROM probe_runs WHERE redelivered")
        started_not_finished = started_keys - keys
        never_started = set(range(TASKS)) - started_keys
        print(
            f"\nworker kill: {TASKS} tasks sent in {sent - started:.1f} s after start;"
            f" effects at pool-process kill {at_child_kill}, at whole-worker kill"
            f" {at_group_kill} ({held_by_dead_worker} messages held unacknowledged by the dead"
            f" worker); executions {runs} ({reruns} re-runs, {redelivered} redelivered"
            f" messages run); final effects {len(keys)}; never run {sorted(never_started)};"
            f" recovery {recovered - killed:.1f} s after the kill;"
            f" test {time.monotonic() - started:.1f} s"
        )
        # acks_late and task_reject_on_worker_lost: a task a kill interrupted runs again.
        assert not started_not_finished, f"started, killed, never finished: {started_not_finished}"
        # Known limit of kombu's Redis transport, not of our settings: BRPOP takes a message
        # off the list before the worker records it as unacknowledged, so a main process
        # killed in that sub-millisecond window loses the one message it was fetching (2 in
        # 15 kills when measured). At most one per killed main process; a sweep from the
        # database state (as flush_outbox does for mail) is what recovers it.
        assert len(never_started) <= 1, f"lost beyond the fetch window: {sorted(never_started)}"
        # Each kill can put back at most what the dead processes held: one task for the pool
        # process, one per process for the whole worker. More re-runs would mean messages
        # redelivered while a live worker still had them.
        assert reruns <= 1 + CONCURRENCY
        assert redelivered >= 1, "nothing was redelivered: the kills tested no recovery"
    finally:
        for process in (worker, second):
            if process is not None:
                _end_group(process, signal.SIGKILL)
        queue.close()
        app.extensions["cocreate_engine"].dispose()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
