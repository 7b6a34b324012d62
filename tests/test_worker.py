"""A real Celery worker on Redis runs what the after-commit helper sends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from portal import migrate
from portal.app import create_app
from portal.core.db import db
from portal.core.mail import OutboxMessage, queue_mail
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config
from tests.services import redis_url

ROOT = Path(__file__).resolve().parent.parent


def start_worker(env: dict[str, str], *options: str) -> subprocess.Popen:
    """``celery -A wsgi:celery worker`` as production runs it, quiet and quick to start."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wsgi:celery", "worker", *options]
        + ["--pool", "solo", "--loglevel", "WARNING"]
        + ["--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
    )


def wait_until_listening(app: Any, worker: subprocess.Popen, seconds: float = 60) -> None:
    """A "within N s" clock starts when the worker answers, not when its process starts:
    importing the app takes seconds on a loaded machine, and a task sent meanwhile waits."""
    control = app.extensions["celery"].control
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        if control.ping(timeout=0.5):
            return
    raise AssertionError(f"the worker did not answer a ping within {seconds:.0f} s")


def worker_env(database: str, broker: str, instance: Path, **settings: str) -> dict[str, str]:
    """The environment a worker process gets: this process's, plus the app's settings."""
    return {
        **os.environ,
        "COCREATE_DATABASE_URL": database,
        "COCREATE_BROKER_URL": broker,
        "COCREATE_SECRET_KEY": "worker-test-secret-key-0123456789abcdef",
        "COCREATE_INSTANCE_PATH": str(instance),
        **{f"COCREATE_{name}": value for name, value in settings.items()},
    }


@contextmanager
def worker_and_app(
    tmp_root: Path, name: str, *options: str, **settings: str
) -> Iterator[tuple[subprocess.Popen, Any]]:
    """A worker (``options``: its queue, concurrency) on a database of its own and Redis, and
    an app on the same two, sending tasks (not running them inline); both gone afterwards.
    ``settings`` go to both (``SEARCH_INDEX_DIR=...``)."""
    broker = redis_url()
    database = sibling_database(TEST_DATABASE_URL, name, tmp_root)
    migrate.upgrade(database)
    env = worker_env(database, broker, tmp_root / f"{name}-instance", **settings)
    app = None
    worker = start_worker(env, *options)
    try:
        app = create_app(
            test_config(database, tmp_root, BROKER_URL=broker, TESTING=False, **settings)
        )
        yield worker, app
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        if app is not None:
            app.extensions["cocreate_engine"].dispose()


def committed_by(worker: subprocess.Popen, read: Callable[[], Any], seconds: float = 60) -> Any:
    """``read()`` every 0.3 s, each in a new transaction (to see the worker's commits), until
    it returns something other than None or ``seconds`` pass; the worker must stay alive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        time.sleep(0.3)
        db.session.rollback()  # end the snapshot
        found = read()
        if found is not None:
            return found
    return None


@pytest.mark.worker
def test_real_worker_processes_mail_sent_after_commit(tmp_root):
    with worker_and_app(tmp_root, "worker") as (worker, app), app.app_context():
        assert app.extensions["celery"].conf.task_always_eager is False
        message = queue_mail(
            db.session, "w@example.com", "Hi", "confirm_email", user=_Named(), link="x"
        )
        db.session.commit()
        message_id = message.id
        sent_at = committed_by(
            worker,
            lambda: db.session.scalar(
                select(OutboxMessage.sent_at).where(OutboxMessage.id == message_id)
            ),
        )
        assert sent_at is not None, "the worker did not process the task within 60 s"


class _Named:
    display_name = "Worker"


@pytest.mark.worker
def test_search_worker_indexes_within_five_seconds_and_rebuilds_a_lost_index(tmp_root):
    """With a broker, index updates go to the ``search`` queue, served by one worker of
    concurrency 1 (Whoosh has one writer); an article is findable within 5 s of its commit.
    When the index is lost, the search that finds out asks the worker to rebuild it."""
    from portal.core.identity import Role
    from portal.kb import service as kb
    from portal.search import index, query
    from tests import factories

    index_dir = tmp_root / "search-worker-index"
    with (
        worker_and_app(
            tmp_root, "search_worker", "-Q", "search", "--concurrency", "1",
            SEARCH_INDEX_DIR=str(index_dir),
        ) as (worker, app),
        app.app_context(),
    ):  # fmt: skip
        factories.bind(db.session())
        writer = factories.staff(Role.VENDOR_ADMIN)
        db.session.commit()
        wait_until_listening(app, worker)
        article = kb.create_article(
            db.session,
            writer,
            title="Rotating the SAML signing certificate",
            body="Upload the new certificate before the old one expires.",
            language="en",
            category_id=None,
            tags="sso",
            published=True,
        )
        db.session.commit()
        committed = time.monotonic()
        found = []
        while time.monotonic() - committed < 5 and not found:
            assert worker.poll() is None, "the worker died"
            time.sleep(0.2)
            query.refresh(index_dir)
            found = [hit.id for hit in query.search(db.session, writer, "SAML certificate").hits]
        assert found == [article.id], "not searchable within 5 s of the commit"

        for toc in (index_dir / index.current_name(index_dir)).glob("*.toc"):
            toc.unlink()  # lost while the portal runs
        index._INDEXES.clear()
        query._local.__dict__.clear()
        assert query.search(db.session, writer, "SAML certificate").unavailable
        lost, found = time.monotonic(), []
        while time.monotonic() - lost < 30 and not found:
            assert worker.poll() is None, "the worker died"
            time.sleep(0.2)
            found = [hit.id for hit in query.search(db.session, writer, "SAML certificate").hits]
        assert found == [article.id], "the worker did not rebuild the lost index in 30 s"


@pytest.mark.worker
def test_real_worker_runs_recompute_now_and_records_its_outcome(tmp_root):
    """Recompute now with a broker: the run is queued by the request's commit, a worker
    computes it, and the run's row says done with every account counted."""
    from cs_metrics import service
    from cs_metrics.models import RecomputeRun
    from portal.core.identity import Role
    from tests import factories

    with worker_and_app(tmp_root, "worker_recompute") as (worker, app), app.app_context():
        wait_until_listening(app, worker)
        factories.bind(db.session)
        csm = factories.staff(Role.CSM)
        for _ in range(3):
            factories.OrganizationFactory()
        run_id = service.start_recompute(db.session, csm).id
        db.session.commit()
        run = committed_by(
            worker,
            lambda: db.session.scalar(
                select(RecomputeRun).where(
                    RecomputeRun.id == run_id, RecomputeRun.status.in_(("done", "failed"))
                )
            ),
        )
        assert run is not None and run.status == "done", "not done within 60 s"
        assert run.accounts_done == run.accounts_total == 3
        assert run.started_at is not None and run.finished_at >= run.started_at
