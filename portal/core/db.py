"""One declarative Base, one session per app context, one engine per app."""

from __future__ import annotations

import re
import select
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask, current_app, has_request_context, request
from flask.globals import app_ctx, request_ctx
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite drops tzinfo on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _context_id() -> int:
    """A request gets its own session even when a test keeps an app context pushed around it."""
    if has_request_context():
        return id(request_ctx._get_current_object())
    return id(app_ctx._get_current_object())


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings both backends need in a web app."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin, so SAVEPOINT and
            # BEGIN behave as on PostgreSQL (the documented pysqlite recipe).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # A form post takes the write lock when it begins: a deferred transaction that read
            # first, then wrote after another request had committed (an as-you-type search
            # logged while the form was sent), got "database is locked" at once, without the
            # busy timeout. Page views stay deferred, so readers never wait on a writer.
            if has_request_context() and request.method not in _READ_METHODS:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

        return engine
    # The connect timeout keeps a page from hanging for the kernel's TCP timeout (minutes)
    # when the host stops answering.
    connect_args = {"connect_timeout": 5, **kwargs.pop("connect_args", {})}
    if make_url(url).get_driver_name() != "psycopg":  # no socket to look at: ask the server
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if "isolation_level" not in kwargs:  # an engine made for AUTOCOMMIT keeps it
        _read_requests_without_transactions(engine)

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check_before_use(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # pool_pre_ping's guarantee without its round trip on every request. A database
        # restart (or pg_terminate_backend) closes a connection by sending a last message and
        # a FIN, so an idle pooled connection whose socket is readable is closing: the pool
        # replaces it (DisconnectionError is retried with a fresh connection). What the socket
        # cannot show (a peer gone silent, a firewall's idle timeout) the real ping still
        # asks, once a connection has been idle for PING_AFTER_IDLE_SECONDS.
        if not _socket_idle(dbapi_connection):
            raise DisconnectionError("the server closed this pooled connection")
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except psycopg.Error as error:
            raise DisconnectionError("the pooled connection did not answer a ping") from error

    return engine


# What a statement needs a transaction block for: anything but a plain SELECT (DML, SAVEPOINT,
# DDL, a CTE that may write), row locks and transaction-scoped advisory locks. Checked for
# every statement of a page view, so the whole-text search runs only when a cheap scan of the
# upper-cased text found a candidate.
_PLAIN_SELECT = re.compile(r"\s*SELECT\b", re.IGNORECASE)
_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b|\bFOR\s+(?:KEY\s+)?SHARE\b|_XACT_")


def needs_transaction(statement: str) -> bool:
    if _PLAIN_SELECT.match(statement) is None:
        return True
    upper = statement.upper()
    if "FOR" not in upper and "_XACT_" not in upper:
        return False
    return _LOCKS.search(upper) is not None


_PAGE_VIEW_AUTOCOMMIT = "page_view_autocommit"


def _read_requests_without_transactions(engine: Engine) -> None:
    """A page view reads in autocommit until its first write.

    At READ COMMITTED every statement takes its own snapshot whether or not a transaction
    block is open, so the BEGIN and ROLLBACK around a page's reads were two round trips that
    changed nothing (a GET with one query: 0.50 ms before, 0.24 ms after). The first
    statement that writes or locks (see ``needs_transaction``) turns the connection back to
    transactional, so psycopg sends BEGIN before it and everything from there on commits or
    rolls back as one, exactly as before. Form posts, tasks and the CLI are transactional
    from their first statement.
    """

    @event.listens_for(engine, "checkout")
    def _autocommit_for_page_views(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        page_view = has_request_context() and request.method in _READ_METHODS
        record.info[_PAGE_VIEW_AUTOCOMMIT] = page_view
        if dbapi_connection.autocommit != page_view:  # the setter costs a trip through psycopg
            dbapi_connection.autocommit = page_view

    @event.listens_for(engine, "before_cursor_execute")
    def _transaction_from_first_write(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        _leave_page_view_autocommit(conn, cursor.connection, statement)


def _leave_page_view_autocommit(conn: Connection, dbapi_connection: Any, statement: str) -> None:
    if (
        conn.info.get(_PAGE_VIEW_AUTOCOMMIT)
        and needs_transaction(statement)
        # AUTOCOMMIT asked for by name (execution_options) is meant, and stays.
        and "isolation_level" not in conn.get_execution_options()
    ):
        conn.info[_PAGE_VIEW_AUTOCOMMIT] = False
        dbapi_connection.autocommit = False


# A pooled connection idle longer than this is pinged before use (see make_engine).
PING_AFTER_IDLE_SECONDS = 30.0


def _socket_idle(dbapi_connection: Any) -> bool:
    """True when a pooled psycopg connection is open with nothing waiting to be read."""
    if dbapi_connection.closed:
        return False
    try:
        poller = select.poll()
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
    except (OSError, psycopg.OperationalError):  # no socket any more
        return False
    return not poller.poll(0)  # readable, hung up or in error: not idle


class Database:
    """Engine and sessionmaker live on each app; ``db.session`` is scoped to the app context.

    Keeping them per app lets a test run several apps (say a live server beside the test
    client) against different databases in one process.
    """

    def __init__(self) -> None:
        self.session: scoped_session[Session] = scoped_session(
            lambda: current_app.extensions["cocreate_sessionmaker"](), scopefunc=_context_id
        )

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["cocreate_engine"] = engine
        app.extensions["cocreate_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)

        @app.teardown_request
        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self.session.remove()

    @property
    def engine(self) -> Engine:
        return current_app.extensions["cocreate_engine"]


db = Database()


def new_session() -> Session:
    """A session of its own (for tasks), bound like the app's request session."""
    return current_app.extensions["cocreate_sessionmaker"]()


class DirectStatement:
    """A Core statement compiled once per dialect and sent straight to the DBAPI cursor of a
    session's connection, in the session's transaction.

    For the few statements every post runs (moderation's ``submit``): in a request, between
    the rest of its work, SQLAlchemy's execution path cost 0.1-0.2 ms a statement, more than
    SQLite took to run it. What that path does is done here too, from the same compiled
    statement: the types' bind and result processors, errors raised as SQLAlchemy's, a
    dropped connection invalidated, a page view's autocommit left before a write. What it
    does not do: fire execution events (so a ``ChangeClearedCache`` must be told with
    ``note_change``), fill in Python-side column defaults or render ``literal_execute``
    parameters; a statement that needs either is refused when compiled.
    """

    def __init__(self, statement: Any) -> None:
        self._statement = statement
        # By dialect and driver: two PostgreSQL drivers differ in their parameter style.
        self._compiled: dict[tuple[str, str], _CompiledDirect] = {}

    def rows(self, session: Session, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Execute with one set of parameters; the rows it returns, processed by type."""
        return self._run(session, [params], many=False)

    def execute_many(self, session: Session, params: list[dict[str, Any]]) -> None:
        self._run(session, params, many=True)

    def _run(
        self, session: Session, params: list[dict[str, Any]], *, many: bool
    ) -> list[tuple[Any, ...]]:
        connection = session.connection()
        dialect = connection.dialect
        compiled = self._compiled.get((dialect.name, dialect.driver)) or self._compile(dialect)
        dbapi_connection = connection.connection.driver_connection
        _leave_page_view_autocommit(connection, dbapi_connection, compiled.sql)
        bound = [compiled.bind(p) for p in params]
        cursor = dbapi_connection.cursor()
        try:
            if many:
                cursor.executemany(compiled.sql, bound)
                return []
            cursor.execute(compiled.sql, bound[0])
            fetched = cursor.fetchall() if cursor.description is not None else []
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, cursor):
                connection.invalidate(error)
            raise DBAPIError.instance(
                compiled.sql, params, error, dialect.loaded_dbapi.Error, dialect=dialect
            ) from error
        finally:
            cursor.close()
        return [compiled.result(row) for row in fetched]

    def _compile(self, dialect: Dialect) -> _CompiledDirect:
        compiled = self._statement.compile(dialect=dialect)
        if compiled.insert_prefetch or compiled.update_prefetch or "POSTCOMPILE" in compiled.string:
            raise ValueError("a DirectStatement cannot fill in defaults or render parameters")
        direct = _CompiledDirect(compiled, dialect, self._statement)
        self._compiled[dialect.name, dialect.driver] = direct
        return direct


class _CompiledDirect:
    def __init__(self, compiled: Any, dialect: Dialect, statement: Any) -> None:
        self.sql: str = compiled.string
        names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        self._names = names
        self._positional = bool(compiled.positional)
        self._defaults = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        self._bind = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]
        columns = list(getattr(statement, "exported_columns", ()))
        self._result = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._any_result = any(process is not None for process in self._result)

    def bind(self, params: dict[str, Any]) -> Any:
        values = []
        for name, process in self._bind:
            value = params[name] if name in params else self._defaults[name]
            values.append(process(value) if process is not None else value)
        return values if self._positional else dict(zip(self._names, values, strict=True))

    def result(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self._any_result:
            return tuple(row)
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self._result, row, strict=False)
        )
