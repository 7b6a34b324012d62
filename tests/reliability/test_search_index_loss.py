"""The search index deleted or damaged while the portal runs.

What a person sees: the search page, the as-you-type suggestions and the API say, in their
language, that search is being rebuilt (never a 500); posting still works; ``cocreate search
reindex`` rebuilds the index from the database and the same search finds the content again.
What an operator sees: the start-up check logs an index that is out of step with the
database, naming the command that repairs it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy.orm import Session

from portal.core.db import utcnow
from portal.roadmap.models import Idea
from portal.search import index, query
from portal.search.cli import search_group
from tests.conftest import login
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.reliability

REBUILDING_EN = "it is being rebuilt"
REBUILDING_ZH = "正在重建"


def root_of(app: Flask) -> Path:
    return Path(app.config["SEARCH_INDEX_DIR"])


def ask(client: FlaskClient, title: str, body: str) -> None:
    response = client.post("/questions/ask", data={"title": title, "body": body, "tags": "ops"})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def titles_found(client: FlaskClient, words: str) -> str:
    response = client.get(f"/search?q={words}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def assert_rebuilding(client: FlaskClient, words: str, expected: str = REBUILDING_EN) -> None:
    """Every search surface says search is being rebuilt; none answers 500."""
    page = client.get(f"/search?q={words}")
    assert page.status_code == 503 and page.headers["Retry-After"]
    html = page.get_data(as_text=True)
    assert expected in html and 'name="q"' in html  # the page, its search box and the note
    suggest = client.get(f"/search/suggest?q={words[:5]}")
    assert suggest.status_code == 503 and suggest.headers["Retry-After"]
    assert expected in suggest.get_json()["message"] and suggest.get_json()["results"] == []
    api = client.get(f"/api/v1/search?q={words}")
    assert api.status_code == 503 and api.headers["Retry-After"]
    error = api.get_json()["error"]
    assert error["code"] == "unavailable" and expected in error["message"]


def reindex(app: Flask) -> None:
    result = app.test_cli_runner().invoke(search_group, ["reindex", "--procs", "1"])
    assert result.exit_code == 0, result.output
    assert "Indexed" in result.output


@pytest.fixture
def author(session: Session):  # noqa: ANN201
    return UserFactory(trust_level=3, locale="en")


def garble(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(os.urandom(size))


def truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 3)


def delete_directory(root: Path) -> None:
    shutil.rmtree(root)


def damage(root: Path, how: str) -> None:
    directory = root / index.current_name(root)
    if how == "deleted":
        delete_directory(root)
        return
    for path in directory.iterdir():
        if path.suffix in (".toc", ".seg"):
            (garble if how == "garbled" else truncate)(path)


@pytest.mark.parametrize("how", ["deleted", "garbled", "truncated"])
def test_a_lost_index_says_rebuilding_posting_works_and_reindex_restores_it(
    app: Flask, client: FlaskClient, session: Session, author, how: str
) -> None:
    login(client, author)
    ask(client, "Quarterly zeppelin export fails", "The zeppelin export stops at 99 percent.")
    assert "Quarterly zeppelin export fails" in titles_found(client, "zeppelin")

    damage(root_of(app), how)

    assert_rebuilding(client, "zeppelin")
    reader = UserFactory(locale="zh_CN", organization=OrganizationFactory())
    login(client, reader)
    assert_rebuilding(client, "zeppelin", REBUILDING_ZH)

    login(client, author)  # posting does not depend on the index
    ask(client, "Zeppelin export on Sundays", "Does the zeppelin export run on Sundays too?")
    assert_rebuilding(client, "zeppelin")

    reindex(app)
    html = titles_found(client, "zeppelin")
    assert "Quarterly zeppelin export fails" in html and "Zeppelin export on Sundays" in html
    assert REBUILDING_EN not in html
    suggest = client.get("/search/suggest?q=zeppe")
    assert suggest.status_code == 200 and len(suggest.get_json()["results"]) == 2
    assert app.test_cli_runner().invoke(search_group, ["check"]).exit_code == 0


def test_start_up_check_reports_an_index_missing_documents(
    app: Flask, client: FlaskClient, session: Session, author, caplog: pytest.LogCaptureFixture
) -> None:
    login(client, author)
    ask(client, "Walrus dashboard loads slowly", "The walrus dashboard takes a minute.")
    ask(client, "Walrus alerts by email", "Can walrus alerts go out by email?")
    root = root_of(app)
    with app.app_context():
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="portal.search.index"):
            assert index.startup_check(root, session) is True
        assert not caplog.records

        # One document goes missing from the index (a lost update, a half-restored backup).
        _name, ix = index.open_index(root)
        with ix.searcher() as searcher:
            victim = next(searcher.documents(kind="question"))["id"]
        writer = ix.writer()
        writer.delete_by_term("id", victim)
        writer.commit()

        with caplog.at_level(logging.ERROR, logger="portal.search.index"):
            assert index.startup_check(root, session) is False
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(messages) == 1
    assert "out of step" in messages[0] and "cocreate search reindex" in messages[0]
    assert "question: 1 indexed, 2 in the database" in messages[0]
    # Out of step is not broken: search still answers, with what it has.
    assert "Walrus" in titles_found(client, "walrus")

    reindex(app)
    caplog.clear()
    with app.app_context(), caplog.at_level(logging.ERROR, logger="portal.search.index"):
        assert index.startup_check(root, session) is True
    assert not caplog.records


def test_an_index_deleted_while_the_portal_was_down_is_reported_and_not_searched(
    app: Flask, client: FlaskClient, session: Session, author, caplog: pytest.LogCaptureFixture
) -> None:
    login(client, author)
    ask(client, "Narwhal report is empty", "The narwhal report shows no rows.")
    root = root_of(app)
    delete_directory(root)
    index._SEEN_ROOTS.discard(str(root))  # a fresh process: it never saw the old index
    query._local.__dict__.clear()
    with app.app_context(), caplog.at_level(logging.ERROR, logger="portal.search.index"):
        assert index.startup_check(root, session) is False
    assert any("cocreate search reindex" in r.getMessage() for r in caplog.records)
    # A fresh empty index would answer "no results" for everything: it says rebuilding.
    assert_rebuilding(client, "narwhal")
    reindex(app)
    assert "Narwhal report is empty" in titles_found(client, "narwhal")


def test_start_up_check_is_cheap_on_a_few_thousand_documents(app: Flask, session: Session) -> None:
    org = OrganizationFactory()
    now = utcnow()
    documents = 3000
    session.execute(
        insert(Idea),
        [
            {
                "organization_id": org.id,
                "title": f"Idea number {n} about exports",
                "description_source": f"Export {n} every week.",
                "description_html": f"<p>Export {n} every week.</p>",
                "published": True,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(documents)
        ],
    )
    session.flush()
    root = root_of(app)
    with app.app_context():
        started = time.perf_counter()
        index.reindex(session, root=root)
        built = time.perf_counter() - started
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            assert index.startup_check(root, session) is True
            timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert index.check(session, root=root).ok
        full = time.perf_counter() - started
    print(
        f"\nstart-up check on {documents} documents: best {min(timings) * 1000:.0f} ms "
        f"(counts per kind); full check of every id {full * 1000:.0f} ms; reindex {built:.1f} s"
    )
    assert min(timings) < 1.0
