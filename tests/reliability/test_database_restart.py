"""PostgreSQL restarted under a running app: during the outage pages answer at once with a
503 error page (no hang, no 500), and the first request after the database is back answers
200 within 5 s, because the pool replaces connections the server closed before handing them
out (``portal.core.db``: it looks at the socket, where ``pool_pre_ping`` would ask the server).

The cluster is a private one (``private_postgres``): the machine's PostgreSQL never stops.
The app is a real ``gunicorn wsgi:app`` process whose pool holds connections the restart
kills.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from portal import migrate
from portal.core.db import make_engine
from tests import factories
from tests.reliability.conftest import PrivatePostgres, free_port, wait_for_port

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
BACK_WITHIN = 5.0  # seconds from the database accepting connections to a 200
OUTAGE_ANSWER_WITHIN = 3.0  # seconds a request may take while the database is down
READS_DATABASE = "/kb/"  # knowledge-base home: counts and newest articles, not cached
SIGNED_IN_PAGE = "/notifications"


@dataclass
class Answer:
    status: int
    body: str
    seconds: float


class Browser:
    """A cookie-keeping HTTP client for one server (the standard library is enough)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def request(self, path: str, form: dict[str, str] | None = None) -> Answer:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        started = time.monotonic()
        try:
            with self.opener.open(self.base + path, data=data, timeout=30) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read().decode()
            error.close()
        return Answer(status, body, time.monotonic() - started)


@pytest.fixture
def server(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[str]:
    """A migrated database on the private cluster, a member in it, and gunicorn serving it."""
    url = private_postgres.create_database("cocreate_restart")
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        factories.bind(session)
        factories.UserFactory(email="restart@example.com")
        session.commit()
    engine.dispose()

    port = free_port()
    env = {
        **os.environ,
        "COCREATE_DATABASE_URL": url,
        "COCREATE_BROKER_URL": "",
        "COCREATE_SECRET_KEY": "database-restart-test-secret-key-0123456789",
        "COCREATE_INSTANCE_PATH": str(tmp_path / "instance"),
        "COCREATE_SEARCH_INDEX_DIR": str(tmp_path / "search-index"),
        "COCREATE_UPLOAD_DIR": str(tmp_path / "uploads"),
    }
    log = tmp_path / "gunicorn.log"
    with log.open("ab") as output:
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", "1", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)
        if not private_postgres.running:
            private_postgres.start()  # leave the session's cluster as we found it


def sign_in(browser: Browser, email: str) -> None:
    page = browser.request("/sign-in")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.body)
    assert page.status == 200 and token, page.body[:500]
    answer = browser.request(
        "/sign-in",
        {"email": email, "password": factories.PASSWORD, "csrf_token": token.group(1)},
    )
    assert answer.status == 200 and "Sign out" in answer.body, answer.body[:500]


def test_app_answers_503_while_postgresql_is_down_and_200_within_5_s_after(
    server: str, private_postgres: PrivatePostgres
) -> None:
    started = time.monotonic()
    anonymous, member = Browser(server), Browser(server)
    sign_in(member, "restart@example.com")
    assert anonymous.request(READS_DATABASE).status == 200
    assert member.request(SIGNED_IN_PAGE).status == 200  # the pool now holds a connection

    # 1. A restart nobody saw: the pool still holds connections the old server closed.
    private_postgres.stop("fast")
    private_postgres.start()  # returns once connections are accepted
    back = time.monotonic()
    after_restart = anonymous.request(READS_DATABASE)
    after_restart_seconds = time.monotonic() - back
    assert after_restart.status == 200, after_restart.body[:1000]  # the pool replaced them
    assert after_restart_seconds < BACK_WITHIN
    assert member.request(SIGNED_IN_PAGE).status == 200

    # 2. An outage with requests during it.
    private_postgres.stop("fast")
    outage = [anonymous.request(READS_DATABASE), member.request(SIGNED_IN_PAGE)]
    outage.append(anonymous.request(READS_DATABASE))  # again: the pool was reset meanwhile
    for answer in outage:
        assert answer.status == 503, (answer.status, answer.body[:1000])
        assert answer.seconds < OUTAGE_ANSWER_WITHIN
        # The site's error page with its way home, not gunicorn's bare "Internal Server Error".
        assert "error-page" in answer.body and "Go to the home page" in answer.body
        assert "briefly unavailable" in answer.body  # not "someone changed this"
    assert anonymous.request("/healthz").status == 200  # liveness needs no database

    # 3. The database is back.
    private_postgres.start()
    back = time.monotonic()
    first = anonymous.request(READS_DATABASE)
    first_answer = time.monotonic() - back
    signed_in = member.request(SIGNED_IN_PAGE)
    print(
        f"\ndatabase restart: first request after an unseen restart {after_restart.status}"
        f" in {after_restart_seconds * 1000:.0f} ms; during the outage {len(outage)} requests"
        f" answered {sorted({a.status for a in outage})} in at most"
        f" {max(a.seconds for a in outage) * 1000:.0f} ms; first request after PostgreSQL was"
        f" back: {first.status} in {first_answer * 1000:.0f} ms; signed-in page"
        f" {signed_in.status} in {signed_in.seconds * 1000:.0f} ms;"
        f" test {time.monotonic() - started:.1f} s"
    )
    assert first.status == 200, first.body[:1000]
    assert first_answer < BACK_WITHIN
    assert signed_in.status == 200, signed_in.body[:1000]


@pytest.mark.parametrize("seen_by", ["socket", "ping after idle"])
def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
    private_postgres: PrivatePostgres, monkeypatch: pytest.MonkeyPatch, seen_by: str
) -> None:
    """The pool notices a closed connection without asking the server on every checkout; a
    connection idle for long is still pinged (here the socket is made to show nothing)."""
    from sqlalchemy import text

    from portal.core import db as db_module

    if seen_by == "ping after idle":
        monkeypatch.setattr(db_module, "_socket_idle", lambda _connection: True)
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.1)
    engine = make_engine(private_postgres.url())
    backend = text("SELECT pg_backend_pid()")
    try:
        with engine.connect() as connection:
            first = connection.scalar(backend)
        with engine.connect() as connection:
            assert connection.scalar(backend) == first  # an idle, open connection is reused
        admin = make_engine(private_postgres.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        admin.dispose()
        time.sleep(0.3)  # the server's goodbye reaches the pooled socket; the idle time passes
        with engine.connect() as connection:  # no error reaches the caller
            replacement = connection.scalar(backend)
        assert replacement != first
    finally:
        engine.dispose()
