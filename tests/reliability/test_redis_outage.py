"""Redis stops while people browse and post: pages keep answering quickly, posts are saved,
the work they cause waits in ``task_outbox``, and once Redis is back the flush sends it and
the worker indexes the post.

Production-like: the broker and the rate-limit storage are the same private Redis, a real
Celery worker serves the queues, and the user signs in and posts through the HTML forms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import migrate
from portal.app import create_app
from portal.cli import cli
from portal.core.db import db
from portal.core.identity import Role, User
from portal.core.tasks import PendingTask
from portal.qa.models import Question
from portal.search import query
from tests import factories
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config
from tests.factories import PASSWORD
from tests.test_worker import start_worker, worker_env

pytestmark = [pytest.mark.reliability, pytest.mark.worker]

PAGE_BOUND = 2.0  # seconds any page may take while Redis is down


def _wait_for(condition: Callable[[], bool], seconds: float, worker) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        if condition():
            return True
        time.sleep(0.3)
    return False


def _timed(client: FlaskClient, method: str, url: str, **kwargs) -> tuple[int, float, str]:
    started = time.monotonic()
    response = getattr(client, method)(url, **kwargs)
    return response.status_code, time.monotonic() - started, response.headers.get("Location", "")


def _ask(client: FlaskClient, title: str) -> tuple[int, float, str]:
    return _timed(
        client,
        "post",
        "/questions/ask",
        data={"title": title, "body": "Steps we tried so far.", "tags": "sso"},
    )


def test_pages_and_posts_survive_a_redis_outage_and_the_work_is_sent_when_it_returns(
    tmp_root, private_redis, monkeypatch
):
    broker = private_redis.url(0)
    database = sibling_database(TEST_DATABASE_URL, "redis_outage", tmp_root)
    migrate.upgrade(database)
    index_dir = tmp_root / "redis-outage-index"
    env = worker_env(
        database, broker, tmp_root / "redis-outage-instance", SEARCH_INDEX_DIR=str(index_dir)
    )
    worker = start_worker(env, "-Q", "search,celery", "--concurrency", "1")
    app = create_app(
        test_config(
            database,
            tmp_root,
            TESTING=False,
            BROKER_URL=broker,
            RATELIMIT_ENABLED=True,  # counted in the same Redis, as production does
            RATELIMIT_STORAGE_URI=broker,
            SEARCH_INDEX_DIR=str(index_dir),
            BROKER_RETRY_AFTER=0.5,  # after a failed send, skip the broker this long
        )
    )
    try:
        with app.app_context():
            factories.bind(db.session())
            user = factories.staff(Role.VENDOR_ADMIN)
            db.session.commit()
            email, user_id = user.email, user.id
        client = app.test_client()

        def signed_in() -> tuple[int, float, str]:
            return _timed(client, "post", "/sign-in", data={"email": email, "password": PASSWORD})

        def found(title: str) -> bool:
            query.refresh(index_dir)
            with app.app_context():
                viewer = db.session.get(User, user_id)
                return bool(query.search(db.session, viewer, title).hits)

        # Redis up: a post is indexed by the worker.
        assert signed_in()[0] == 302
        status, _, location = _ask(client, "Rotating the SAML certificate before expiry")
        assert status == 302
        assert _wait_for(lambda: found("SAML certificate expiry"), 30, worker)

        private_redis.stop()

        # Browsing: every page answers 200, each within the bound.
        timings = []
        for url in ["/", "/questions/", location, "/kb/", "/search?q=SAML", "/questions/ask"]:
            status, elapsed, _ = _timed(client, "get", url)
            timings.append((url, status, elapsed))
        # Signing in again goes through the rate limiter, whose storage is down.
        client.post("/sign-out")
        status, elapsed, _ = signed_in()
        timings.append(("POST /sign-in", status, elapsed))
        # Posting: saved and redirected; its index update waits in the outbox.
        title = "Outage question about SCIM provisioning"
        status, elapsed, location = _ask(client, title)
        timings.append(("POST /questions/ask", status, elapsed))
        for name, code, seconds in timings:
            print(f"Redis down: {name:<28} {code} {seconds:.3f} s")
        assert [code for _, code, _ in timings] == [200] * 6 + [302, 302]
        assert max(seconds for _, _, seconds in timings) < PAGE_BOUND
        assert client.get(location).status_code == 200

        with app.app_context():
            question_id = db.session.scalar(select(Question.id).where(Question.title == title))
            assert question_id is not None
            kept = db.session.scalars(select(PendingTask)).all()
            assert any(
                row.name == "portal.search.update_documents"
                and ["question", question_id] in row.args[0]
                for row in kept
            ), [(row.name, row.args) for row in kept]
        assert not found("SCIM provisioning")

        private_redis.start()  # same port, empty: whatever was queued in Redis is gone

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = CliRunner().invoke(cli, ["tasks", "flush"], catch_exceptions=False)
        print(result.output)
        assert result.exit_code == 0
        assert f"Sent {len(kept)} tasks; 0 still waiting." in result.output
        assert _wait_for(lambda: found("SCIM provisioning"), 60, worker), "not indexed after flush"

        # The web process reconnects on its own: the next post is sent directly.
        time.sleep(0.5)
        status, elapsed, _ = _ask(client, "After the outage: LDAP group sync")
        print(f"Redis back: POST /questions/ask {status} {elapsed:.3f} s")
        assert status == 302
        assert _wait_for(lambda: found("LDAP group sync"), 30, worker)
        with app.app_context():
            assert db.session.scalars(select(PendingTask)).all() == []
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        app.extensions["cocreate_engine"].dispose()
