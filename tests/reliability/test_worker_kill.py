"""A worker killed with SIGKILL in the middle of a batch: every task it interrupted runs
again, no effect is doubled, and nothing is lost: exactly one effect per task sent.

The tasks are sent as the application sends them, through ``enqueue_after_commit``, so each
has a ``task_outbox`` row until it completes. A main process killed between kombu's BRPOP and
its record of the message as unacknowledged loses that message (a limit of kombu's Redis
transport); its row outlives it, and the outbox flush, run here once the restarted worker has
drained the queue, sends it again.

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
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from portal.app import create_app
from portal.core.db import db, make_engine
from portal.core.tasks import PendingTask, enqueue_after_commit, flush_task_outbox
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config
from tests.reliability import probe_tasks
from tests.reliability.conftest import PrivateRedis
from tests.services import missing
from tests.test_worker import worker_env

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
TASKS = 500
PAUSE = 0.02  # seconds inside each task: a window for the kill to land in
VISIBILITY_TIMEOUT = 3  # seconds
# The flush sends again what has not completed this long after its send; it runs here only
# once the queue is drained, so a short grace period cannot double a task merely queued.
GRACE = 1.0  # seconds
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
    PendingTask.__table__.create(engine)
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
    env = worker_env(
        database,
        broker,
        tmp_path / "instance",
        SEARCH_INDEX_DIR=str(tmp_path / "search-index"),
        BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
    )

    probe = _Probe(
        probe_database,
        log,
        lambda: (
            f"{probe.effects()} of {TASKS} effects, {queue.llen('celery')} queued,"
            f" {queue.hlen('unacked')} unacknowledged"
        ),
        poll=0.005,
    )
    scalar, effects, outbox, wait_until = probe.scalar, probe.effects, probe.outbox, probe.wait

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

    app = create_app(
        test_config(
            database, tmp_root, BROKER_URL=broker, TESTING=False, TASK_OUTBOX_GRACE_SECONDS=GRACE
        )
    )
    celery_app = app.extensions["celery"]
    assert celery_app.conf.task_acks_late and celery_app.conf.task_reject_on_worker_lost
    assert celery_app.conf.worker_prefetch_multiplier == 1

    worker = _start_worker(env, log)
    second = None
    try:
        with app.app_context():
            for key in range(TASKS):
                enqueue_after_commit(db.session, probe_tasks.record, key, PAUSE)
            db.session.commit()  # 500 outbox rows, then 500 sends
        sent = time.monotonic()
        assert outbox() > 0, "no outbox rows: the tasks were not sent as the app sends them"

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
        # A worker gives back messages older than the visibility timeout when it starts, and
        # then only every unacked_restore_interval x throttle (100 s) seconds: start it once
        # the dead worker's messages are old enough, or the test waits for the next sweep.
        time.sleep(VISIBILITY_TIMEOUT)
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
        drained = time.monotonic()
        with probe_database.connect() as connection:
            started_before_flush = set(
                connection.execute(text("SELECT key FROM probe_runs")).scalars()
            )
        lost_by_broker = set(range(TASKS)) - started_before_flush
        left_before_flush = outbox()

        # 4. The outbox flush (what beat runs every TASK_OUTBOX_FLUSH_SECONDS, called here as
        # the service) sends again every task that has not completed within the grace period.
        resent = probe.flush_outbox(app, 30)
        recovered = time.monotonic()
        _end_group(second, signal.SIGTERM)

        with probe_database.connect() as connection:
            keys = list(connection.execute(text("SELECT key FROM probe_effects")).scalars())
            started_keys = set(connection.execute(text("SELECT key FROM probe_runs")).scalars())
        runs = scalar("SELECT count(*) FROM probe_runs")
        reruns = runs - len(started_keys)
        redelivered = scalar("SELECT count(*) FROM probe_runs WHERE redelivered")
        print(
            f"\nworker kill: {TASKS} tasks sent through enqueue_after_commit in"
            f" {sent - started:.1f} s after start; effects at pool-process kill {at_child_kill},"
            f" at whole-worker kill {at_group_kill} ({held_by_dead_worker} messages held"
            f" unacknowledged by the dead worker); after the restarted worker drained the queue:"
            f" {len(lost_by_broker)} never started (lost by the broker: {sorted(lost_by_broker)}),"
            f" {left_before_flush} outbox rows left; the flush re-sent {resent}; executions"
            f" {runs} ({reruns} re-runs, {redelivered} redelivered messages run); final effects"
            f" {len(keys)}, outbox rows {outbox()}; drained {drained - killed:.1f} s and"
            f" recovered {recovered - killed:.1f} s after the kill;"
            f" test {time.monotonic() - started:.1f} s"
        )
        # Exactly one effect per task sent: none lost, none doubled (probe_effects' primary
        # key would refuse a double; the re-runs are where one would have come from).
        assert sorted(keys) == list(range(TASKS))
        assert started_keys == set(range(TASKS))
        # Every task completed, so every outbox row was deleted by its task.
        assert outbox() == 0
        # What the broker lost, the flush sent again.
        assert resent >= len(lost_by_broker)
        # Each kill can put back at most what the dead processes held: one task for the pool
        # process, one per process for the whole worker; the flush adds one per row it re-sent
        # whose task had run (killed after its body, before deleting its row).
        assert reruns <= 1 + CONCURRENCY + resent
        assert redelivered >= 1, "nothing was redelivered: the kills tested no recovery"
    finally:
        for process in (worker, second):
            if process is not None:
                _end_group(process, signal.SIGKILL)
        queue.close()
        app.extensions["cocreate_engine"].dispose()


def test_a_redis_restart_loses_the_queue_and_the_outbox_flush_sends_it_again(
    probe_database: Engine, private_redis: PrivateRedis, tmp_root: Path, tmp_path: Path
) -> None:
    """Our Redis keeps nothing on disk: a restart mid-batch drops every queued message and
    the ones the worker held. The rows of those tasks outlive them, and the flush sends them
    again once the worker has reconnected: exactly one effect per task."""
    tasks = 200
    database = probe_database.url.render_as_string(hide_password=False)
    broker = private_redis.url()
    log = tmp_path / "worker.log"
    env = worker_env(
        database, broker, tmp_path / "instance", SEARCH_INDEX_DIR=str(tmp_path / "search-index")
    )

    probe = _Probe(
        probe_database,
        log,
        lambda: (
            f"{probe.effects()} of {tasks} effects, {probe.outbox()} outbox rows,"
            f" {redis.Redis.from_url(broker).llen('celery')} queued; {worker.describe()}"
        ),
    )
    scalar, effects, outbox, wait_until = probe.scalar, probe.effects, probe.outbox, probe.wait

    app = create_app(
        test_config(
            database, tmp_root, BROKER_URL=broker, TESTING=False, TASK_OUTBOX_GRACE_SECONDS=GRACE
        )
    )
    worker = _Supervised(env, log)
    probe.supervise = worker.keep_running
    try:
        with app.app_context():
            for key in range(tasks):
                enqueue_after_commit(db.session, probe_tasks.record, key, PAUSE)
            db.session.commit()
        wait_until(lambda: effects() >= tasks // 5, 30, "the worker did not start the batch")
        private_redis.kill()
        private_redis.start()  # same port, empty
        at_restart = effects()

        last = [-1, time.monotonic()]

        def settled() -> bool:  # no new effect for 3 s: whatever survived has run
            now = effects()
            if now != last[0]:
                last[:] = [now, time.monotonic()]
            return time.monotonic() - last[1] > 3

        wait_until(settled, 30, "the effects did not settle")
        before_flush = effects()
        assert before_flush < tasks, "the restart lost nothing: it came too late"

        resent = probe.flush_outbox(app, 60)
        with probe_database.connect() as connection:
            keys = list(connection.execute(text("SELECT key FROM probe_effects")).scalars())
        runs = scalar("SELECT count(*) FROM probe_runs")
        print(
            f"\nredis restart: {tasks} tasks sent; effects at the restart {at_restart},"
            f" once settled {before_flush} ({tasks - before_flush} lost with the queue);"
            f" the worker died of the restart and was started again {worker.restarts} times;"
            f" the flush re-sent {resent}; executions {runs} ({runs - tasks} re-runs);"
            f" final effects {len(keys)}, outbox rows {outbox()}"
        )
        assert sorted(keys) == list(range(tasks))
        assert outbox() == 0
        assert resent >= tasks - before_flush
    finally:
        _end_group(worker.process, signal.SIGKILL)
        app.extensions["cocreate_engine"].dispose()


class _Supervised:
    """The worker under a process manager (systemd's ``Restart=always``): started again
    whenever it has exited. Celery/kombu 5.7 sometimes die of a Redis restart ("Unrecoverable
    error: AttributeError: 'NoneType' object has no attribute 'hostname'", closing the broken
    connection while Redis still refuses), and not always at once: the exit can come seconds
    after the effects have settled, so the test checks at every poll, not once."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process = _start_worker(env, log)
        self.restarts = 0

    def keep_running(self) -> None:
        if self.process.poll() is not None:
            self.process = _start_worker(self.env, self.log)
            self.restarts += 1

    def describe(self) -> str:
        state = "running" if self.process.poll() is None else f"exited ({self.process.returncode})"
        return f"worker {state}, started again {self.restarts} times"


@dataclass
class _Probe:
    """The probe database's counts, and waiting on them: a timeout fails the test with
    ``state()`` (what the batch had reached) and the worker's log. ``supervise`` runs at every
    poll (a process manager's check)."""

    engine: Engine
    log: Path
    state: Callable[[], str]
    poll: float = 0.01
    supervise: Callable[[], None] = lambda: None

    def scalar(self, sql: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar_one())

    def effects(self) -> int:
        return self.scalar("SELECT count(*) FROM probe_effects")

    def outbox(self) -> int:
        return self.scalar("SELECT count(*) FROM task_outbox")

    def flush_outbox(self, app: Flask, timeout: float) -> int:
        """The outbox flush as beat runs it, up to three times: after the grace period, every
        task not completed is sent again, until the outbox is empty. How many were resent."""
        resent = 0
        with app.app_context():
            for _ in range(3):
                if not self.outbox():
                    break
                time.sleep(GRACE)
                resent += flush_task_outbox(db.session).sent
                db.session.remove()
                self.wait(lambda: self.outbox() == 0, timeout, "the flushed tasks did not complete")
        return resent

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.supervise()
            if time.monotonic() > deadline:
                detail = f"{what} within {timeout} s ({self.state()})"
                pytest.fail(f"{detail}; worker log:\n{_tail(self.log)}")
            time.sleep(self.poll)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
