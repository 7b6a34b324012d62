"""A live server on its own database and one headless Chromium for the browser journeys.

These tests need real commits (the browser and the server are separate clients), so they do
not use the rolled-back ``app``/``session`` fixtures: the live database is emptied after each
test instead. CSRF stays on, as in production: every form is the real form.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import make_server

import portal.models  # noqa: F401 - every table in Base.metadata, for the clean-up
from portal import migrate
from portal.app import create_app
from portal.core.db import Base, db
from portal.search import index as search_index
from tests.browser.helpers import ARTIFACTS
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config
from tests.services import chromium_path

# --no-sandbox: CI runs as root. Without the background-networking flags Chromium keeps
# calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # a page here answers in milliseconds; fail fast instead of hanging


class _ErrorLog(logging.Handler):
    """Keeps what the app logs at ERROR (unhandled exceptions become 500 pages, not tracebacks,
    with TESTING off), so a test fails when the server broke even if the page looked fine."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class LiveServer:
    app: Flask
    url: str
    errors: _ErrorLog = field(default_factory=_ErrorLog)


class _BufferedApp:
    """Hands the server each response whole, its iterable already closed.

    Werkzeug's development server does not close a response's iterable when the client drops
    the connection (the browser navigates away while a static file or a download is sent): the
    file stays open until the garbage collector finds it, and the ResourceWarning it raises
    then fails whichever test is running at that moment. No page streams, so buffering changes
    nothing the browser sees."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        iterable = self.app(environ, start_response)
        try:
            return [b"".join(iterable)]
        finally:
            if hasattr(iterable, "close"):
                iterable.close()


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


@pytest.fixture(scope="session")
def live_server(tmp_root: Path) -> Iterator[LiveServer]:
    """The portal on 127.0.0.1:<free port>, threaded, against a migrated database of its own."""
    database = sibling_database(TEST_DATABASE_URL, "live", tmp_root)
    migrate.upgrade(database)
    # Bind first so the app can be built knowing its own address (links in mail use it).
    server = make_server("127.0.0.1", 0, _not_ready, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(
        test_config(
            database,
            tmp_root,
            TESTING=False,  # real error pages and real after-commit mail, as in development
            WTF_CSRF_ENABLED=True,
            BASE_URL=url,
            INSTANCE_PATH=str(tmp_root / "live-instance"),
        )
    )
    live = LiveServer(app, url)
    app.logger.addHandler(live.errors)
    server.app = _BufferedApp(app)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield live
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    app.extensions["cocreate_engine"].dispose()


@pytest.fixture
def live_app(live_server: LiveServer) -> Iterator[Flask]:
    """The live app; every row is deleted afterwards (and the search index emptied) so each
    test starts from nothing."""
    live_server.errors.records.clear()
    yield live_server.app
    engine = live_server.app.extensions["cocreate_engine"]
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    with live_server.app.app_context():
        search_index.reindex(db.session)  # rows went behind the services' back: empty it too
        db.session.remove()
    errors = [f"{r.getMessage()}\n{r.exc_text or ''}" for r in live_server.errors.records]
    if errors:
        pytest.fail("the live server logged errors:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test body failed, for the failure screenshot below."""
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture
def new_context(
    browser: Browser, live_server: LiveServer, live_app: Flask
) -> Iterator[Callable[[], BrowserContext]]:
    """Opens fresh browser profiles (no cookies carried over), in English, on the live server;
    one per person in a test. All are closed at the end of the test, before ``live_app``
    empties the database, so no request of theirs is still running then."""
    opened: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(base_url=live_server.url, locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(request: pytest.FixtureRequest, context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    yield page
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    shot = ARTIFACTS / f"failed-{name}.png"
    if request.node.stash.get(_FAILED, False):  # keep what the browser saw, for the log reader
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=str(shot), full_page=True)
    else:
        shot.unlink(missing_ok=True)  # a stale one from an earlier failing run
