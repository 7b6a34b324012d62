"""Test database built by the migrations once per session; each test inside a transaction
that is rolled back, so every test starts from a clean database."""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from portal import migrate
from portal.app import create_app
from portal.core.db import Base, make_engine
from tests import factories
from tests.reliability.conftest import PrivateRedis
from tests.services import missing

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")


def _remember_url_builders() -> None:
    """Each test gets its own app, and werkzeug compiles a URL builder for each of its ~200
    rules, twice, through ``ast`` and ``compile``: 130 of the 170 ms ``create_app`` took, a
    fifth of the suite. A builder is a plain function of the rule's text, its parsed parts
    and its defaults (bound to the rule afterwards), so one compiled for an identical rule
    of an earlier app is reused. Tests only: an app is created once per process anyway."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    builders: dict[tuple[Any, ...], Any] = {}

    def remembered(self: Rule, append_unknown: bool = True) -> Any:
        key = (
            self.rule,
            tuple(self._trace),
            repr(sorted((self.defaults or {}).items())),
            append_unknown,
        )
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = compile_builder(self, append_unknown)
        return builder

    Rule._compile_builder = remembered  # type: ignore[method-assign]


def _share_compiled_templates() -> None:
    """Each test's app has its own Jinja environment, which compiled every template it
    rendered afresh (about 90 ms a page in a short test). A bytecode cache shared by the
    test process hands each environment the code compiled by an earlier one; Jinja keys it
    by template name and source checksum, so an edited template is compiled again."""
    from flask import Flask
    from jinja2 import BytecodeCache
    from jinja2.bccache import Bucket

    class MemoryBytecodeCache(BytecodeCache):
        def __init__(self) -> None:
            self.codes: dict[str, bytes] = {}

        def load_bytecode(self, bucket: Bucket) -> None:
            code = self.codes.get(bucket.key)
            if code is not None:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket: Bucket) -> None:
            self.codes[bucket.key] = bucket.bytecode_to_string()

    Flask.jinja_options = {**Flask.jinja_options, "bytecode_cache": MemoryBytecodeCache()}


_remember_url_builders()
_share_compiled_templates()

# The live server and the one Chromium, shared by the browser journeys and the security
# suite's XSS pages (a second Playwright in one process cannot start).
pytest_plugins = ["tests.browser.fixtures"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running Redis of this test alone: ``.stop()``/``.start()`` keep its port (a real
    outage and return), and messages it leaves queued reach no other test's worker."""
    if not shutil.which("redis-server"):
        missing("redis-server is not installed (apt-get install redis-server)")
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


def sibling_database(url: str, suffix: str, tmp_dir: Path) -> str:
    """A second, empty database next to the test one (for live servers and migration checks)."""
    if not url:
        path = tmp_dir / f"{suffix}.db"
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    parsed = make_url(url)
    name = f"{parsed.database}_{suffix}"
    admin = make_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def reset_database(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cocreate")


@pytest.fixture(scope="session")
def database_url(tmp_root: Path) -> str:
    if TEST_DATABASE_URL:
        reset_database(TEST_DATABASE_URL)
        url = TEST_DATABASE_URL
    else:
        url = f"sqlite:///{tmp_root / 'test.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_config(database_url: str, tmp_root: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "BROKER_URL": "",
        "INSTANCE_PATH": str(tmp_root / "instance"),
        "SEARCH_INDEX_DIR": str(tmp_root / f"search-index-{os.urandom(6).hex()}"),  # per app
        # Each test's app starts with an empty index and an empty database (rolled back):
        # the start-up comparison would find 0 = 0 on a connection of its own, ~40 ms an app
        # on PostgreSQL. Its own tests turn it on.
        "SEARCH_STARTUP_CHECK": False,
        "UPLOAD_DIR": str(tmp_root / "uploads"),
        "BASE_URL": "http://localhost",
    }
    config.update(overrides)
    return config


test_config.__test__ = False  # a helper, not a test, wherever it is imported


def committing_app(suffix: str, tmp_root: Path) -> Flask:
    """An app on a migrated database of its own whose sessions really commit (TESTING off):
    for races between threads or requests, which the rolled-back test session cannot show.
    ``app.config["DATABASE_URL"]`` says which database it is."""
    url = sibling_database(TEST_DATABASE_URL, suffix, tmp_root)
    migrate.upgrade(url)
    return create_app(test_config(url, tmp_root, TESTING=False))


def vendor_and_customer(session: Session) -> tuple[Any, Any]:
    """The vendor and one customer organization, flushed: where a ``committing_app`` test
    starts (the factories are bound to the rolled-back test session, not to its app)."""
    from portal.core.identity import Organization

    vendor = Organization(name="V", slug="v", kind="vendor")
    customer = Organization(name="C", slug="c", kind="customer")
    session.add_all([vendor, customer])
    session.flush()
    return vendor, customer


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    connection = engine.connect()
    transaction = connection.begin()
    yield connection
    transaction.rollback()
    connection.close()


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change settings for its app."""
    return {}


@pytest.fixture
def app(
    database_url: str, tmp_root: Path, connection: Connection, app_config: dict[str, Any]
) -> Flask:
    app = create_app(test_config(database_url, tmp_root, **app_config))
    # Every session of this app, the request's and the tasks', joins the test transaction.
    app.extensions["cocreate_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return app


@pytest.fixture
def session(app: Flask, connection: Connection) -> Iterator[Session]:
    """The test's own session: factories write through it, assertions read through it."""
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    factories.bind(session)
    yield session
    session.close()


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[Flask]:
    """An app context for calling services directly. Not for tests that also use ``client``:
    requests would share its ``g`` (and flask-login's cached user)."""
    with app.app_context():
        yield app


@pytest.fixture
def client(app: Flask, session: Session) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, user: Any) -> FlaskClient:
    """Sign ``user`` in on ``client`` without a password round trip."""
    from portal.core.sessions import SEEN_AT, SIGNED_IN_AT

    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user.id)
        flask_session["_fresh"] = True
        flask_session[SIGNED_IN_AT] = flask_session[SEEN_AT] = time.time()  # as a sign-in sets
    return client


def statements_during(connection: Connection, action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """What ``action()`` returned, and the SQL statements it ran (savepoint bookkeeping of the
    test harness aside)."""
    from sqlalchemy import event

    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", listener)
    try:
        result = action()
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    harness = ("SAVEPOINT", "RELEASE", "ROLLBACK")
    return result, [s for s in statements if not s.lstrip().upper().startswith(harness)]


def statements_of(client: FlaskClient, connection: Connection, url: str) -> list[str]:
    """SQL statements a GET of ``url`` runs; the page must answer 200."""
    response, statements = statements_during(connection, lambda: client.get(url))
    assert response.status_code == 200
    return statements


def count_statements(client: FlaskClient, connection: Connection, url: str) -> int:
    """How many statements a GET of ``url`` runs, for the constant-query-count tests."""
    return len(statements_of(client, connection, url))


@pytest.fixture
def outbox(session: Session):  # noqa: ANN201
    """Mail queued during the test, newest last."""
    from sqlalchemy import select

    from portal.core.mail import OutboxMessage

    def messages(recipient: str | None = None) -> list[OutboxMessage]:
        session.expire_all()
        statement = select(OutboxMessage).order_by(OutboxMessage.id)
        if recipient:
            statement = statement.where(OutboxMessage.recipient == recipient)
        return list(session.scalars(statement))

    return messages


__all__ = ["Base", "count_statements", "login"]


# What reaches a database: the session's test database, or the live server's sibling of it.
DATABASE_FIXTURES = frozenset({"database_url", "live_server", "tmp_root"})


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is alive once the tests are collected (every module of the app and of the suite,
    SQLAlchemy's metadata, the translations) lives to the end: frozen out of the collector's
    sight, the full collections that the app built for every test sets off no longer walk it.
    Measured on 104 tests: 5.5 s of garbage collection became 2.5 s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 10, 10)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A module marked ``database_free`` is run once by ``.ci/run`` (in the SQLite lane), so
    it must not reach a database: a test of it asking for one is a collection error."""
    for item in items:
        if item.get_closest_marker("database_free"):
            reached = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
            if reached:
                raise pytest.UsageError(
                    f"{item.nodeid} is marked database_free but uses {', '.join(sorted(reached))}"
                )
