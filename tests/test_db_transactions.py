"""Transactions of requests on the app's own engine (not the test harness's shared connection).

Page views read without a transaction block on PostgreSQL (no BEGIN/ROLLBACK round trips);
these tests hold the promise that comes with it: whatever a request writes, page view or
form post, still commits or rolls back as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import bindparam, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from portal import migrate
from portal.app import create_app
from portal.core.db import DirectStatement, db, needs_transaction, utcnow
from portal.core.identity import Organization
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config

ORGANIZATIONS = Organization.__table__
# An organization's row straight to the driver, its id and creation time returned.
WRITE_ORGANIZATION = DirectStatement(
    insert(ORGANIZATIONS)
    .values(
        {
            name: bindparam(name, type_=ORGANIZATIONS.c[name].type)
            for name in ("name", "slug", "kind", "created_at")
        }
    )
    .returning(ORGANIZATIONS.c.id, ORGANIZATIONS.c.created_at)
)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sibling_database(TEST_DATABASE_URL, "transactions", tmp_path_factory.mktemp("tx"))
    migrate.upgrade(url)
    return url


@pytest.fixture
def app(database: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(test_config(database, tmp_path))

    def write_two() -> str:
        """Two organizations; the second one's slug is taken when ``clash`` is given."""
        slug = request.args["slug"]
        db.session.scalar(select(func.count()).select_from(Organization))  # a read first
        db.session.add(Organization(name="First", slug=slug, kind="customer"))
        db.session.flush()
        second = "taken" if request.args.get("clash") else f"{slug}-2"
        db.session.add(Organization(name="Second", slug=second, kind="customer"))
        db.session.commit()
        return "ok"

    def lock_row() -> str:
        db.session.execute(select(Organization.id).limit(1).with_for_update()).all()
        db.session.scalar(select(func.count()).select_from(Organization))
        return "locked"

    def write_two_directly() -> str:
        """``write_two`` with each row sent by a ``DirectStatement``."""
        slug = request.args["slug"]
        db.session.scalar(select(func.count()).select_from(Organization))
        second = "taken" if request.args.get("clash") else f"{slug}-2"
        for name, taken in (("First", slug), ("Second", second)):
            row = {"name": name, "slug": taken, "kind": "customer", "created_at": utcnow()}
            WRITE_ORGANIZATION.rows(db.session, row)
        db.session.commit()
        return "ok"

    app.add_url_rule("/_test/write-two", "write_two", write_two, methods=["GET", "POST"])
    app.add_url_rule(
        "/_test/write-directly", "write_directly", write_two_directly, methods=["GET", "POST"]
    )
    app.add_url_rule("/_test/lock", "lock_row", lock_row)
    with app.app_context():
        db.session.add(Organization(name="Taken", slug="taken", kind="customer"))
        db.session.commit()
    yield app
    with app.app_context():
        db.session.query(Organization).delete()
        db.session.commit()
        db.session.remove()
    app.extensions["cocreate_engine"].dispose()


def slugs(app: Flask) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(Organization.slug)))
        db.session.remove()
    return found


@pytest.fixture
def in_transaction(app: Flask) -> Iterator[list[tuple[str, bool]]]:
    """(statement, whether a transaction block was open after it) for each statement."""
    seen: list[tuple[str, bool]] = []
    engine = app.extensions["cocreate_engine"]

    def after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN"):  # SQLite's, sent as a statement
            return
        if engine.dialect.name == "postgresql":
            status = cursor.connection.info.transaction_status.name
            seen.append((statement.split()[0].upper(), status != "IDLE"))
        else:
            seen.append((statement.split()[0].upper(), cursor.connection.in_transaction))

    event.listen(engine, "after_cursor_execute", after)
    yield seen
    event.remove(engine, "after_cursor_execute", after)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_what_a_request_writes_commits_or_rolls_back_as_one(app, method):
    client = app.test_client()
    assert client.open("/_test/write-two?slug=both", method=method).text == "ok"
    assert {"both", "both-2"} <= slugs(app)

    with pytest.raises(Exception, match="(?i)unique"):
        client.open("/_test/write-two?slug=half&clash=1", method=method)
    assert "half" not in slugs(app)  # the first insert went with the failed second one


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_what_a_request_writes_past_the_orm_commits_or_rolls_back_as_one(app, method):
    client = app.test_client()
    assert client.open("/_test/write-directly?slug=both", method=method).text == "ok"
    assert {"both", "both-2"} <= slugs(app)

    with pytest.raises(IntegrityError):  # the driver's error, raised as SQLAlchemy's
        client.open("/_test/write-directly?slug=half&clash=1", method=method)
    assert "half" not in slugs(app)  # a page view left autocommit before its first write


def test_a_direct_statement_converts_values_as_the_orm_does(app):
    created = datetime(2026, 3, 1, 8, 30, 15, 250000, tzinfo=UTC)
    with app.app_context():
        row = {"name": "Direct", "slug": "direct", "kind": "customer", "created_at": created}
        [(org_id, returned)] = WRITE_ORGANIZATION.rows(db.session, row)
        db.session.commit()
        assert returned == created and returned.tzinfo is not None
        assert db.session.get(Organization, org_id).created_at == created
        read = DirectStatement(
            select(ORGANIZATIONS.c.slug, ORGANIZATIONS.c.created_at).where(
                ORGANIZATIONS.c.id == bindparam("id")
            )
        )
        assert read.rows(db.session, {"id": org_id}) == [("direct", created)]
        assert read.rows(db.session, {"id": -1}) == []
        db.session.remove()


@pytest.mark.parametrize(
    "statement",
    [
        # created_at's default is computed in Python, which only SQLAlchemy's execution does
        insert(ORGANIZATIONS).values(name=bindparam("name"), slug=bindparam("slug")),
        select(ORGANIZATIONS.c.id).where(
            ORGANIZATIONS.c.kind == bindparam("kind", "customer", literal_execute=True)
        ),
    ],
)
def test_a_direct_statement_refuses_what_only_sqlalchemy_can_send(app, statement):
    with app.app_context():
        with pytest.raises(ValueError, match="DirectStatement"):
            DirectStatement(statement).rows(db.session, {"name": "x", "slug": "x"})
        db.session.remove()


def test_a_page_view_reads_without_a_transaction_until_it_writes(app, in_transaction):
    postgres = app.extensions["cocreate_engine"].dialect.name == "postgresql"
    app.test_client().get("/_test/write-two?slug=view")
    read, *writes = in_transaction
    assert read == ("SELECT", not postgres)  # SQLite's BEGIN costs no round trip: kept
    assert writes and all(open_ for _verb, open_ in writes)


def test_a_form_post_is_one_transaction_from_its_first_read(app, in_transaction):
    app.test_client().post("/_test/write-two?slug=post")
    assert in_transaction and all(open_ for _verb, open_ in in_transaction)


def test_a_row_lock_in_a_page_view_is_held_in_a_transaction(app, in_transaction):
    assert app.test_client().get("/_test/lock").text == "locked"
    assert [open_ for _verb, open_ in in_transaction] == [True, True]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT id FROM users", False),
        ("\n  select 1", False),
        ("SELECT pg_try_advisory_lock(1)", False),  # a session lock outlives transactions
        ("INSERT INTO users (id) VALUES (1)", True),
        ("WITH new AS (INSERT INTO t DEFAULT VALUES RETURNING id) SELECT id FROM new", True),
        ("SAVEPOINT sa_1", True),
        ("SELECT id FROM users FOR UPDATE", True),
        ("select id from users for no key update skip locked", True),
        ("SELECT id FROM users FOR SHARE", True),
        ("SELECT pg_advisory_xact_lock(7)", True),
    ],
)
def test_statements_that_need_a_transaction_block(statement, expected):
    assert needs_transaction(statement) is expected
