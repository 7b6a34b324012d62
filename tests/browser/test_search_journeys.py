"""Search journeys in a real Chromium: a member types in the search box, picks a suggestion
with the keyboard (the click is recorded before the page changes), and runs a full search
whose results never include another organization's private notes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.core.db import db
from portal.search import index, registry
from portal.search.models import SearchLogEntry
from portal.search.registry import SearchDocument, SearchSource
from tests.browser.helpers import make_org, make_user, sign_in

pytestmark = pytest.mark.browser

KIND = "browsernote"


@pytest.fixture
def notes(live_app: Flask, monkeypatch):
    acme = make_org(live_app, "Acme", "acme-search")
    globex = make_org(live_app, "Globex", "globex-search")
    now = datetime.now(UTC)
    docs = {
        1: SearchDocument(KIND, 1, "Renewal checklist for admins", "steps", "/?note=1", now),
        2: SearchDocument(
            KIND, 2, "Renewal plan of Acme", "ours", "/?note=2", now, private_to_org_id=acme
        ),
        3: SearchDocument(
            KIND, 3, "Renewal plan of Globex", "theirs", "/?note=3", now, private_to_org_id=globex
        ),
    }
    source = SearchSource(
        KIND,
        "Notes",
        lambda _s, ids: [docs[i] for i in ids if i in docs],
        lambda _s: [(d.object_id, d.updated_at) for d in docs.values()],
    )
    monkeypatch.setitem(registry._SOURCES, KIND, source)
    with live_app.app_context():
        index.apply_updates(None, [(KIND, i) for i in docs])
    yield acme
    docs.clear()
    with live_app.app_context():
        index.apply_updates(None, [(KIND, i) for i in (1, 2, 3)])


def test_suggestions_by_keyboard_record_the_click(live_app: Flask, page: Page, notes):
    make_user(live_app, notes, "ann@acme.example", "Ann")
    sign_in(page, "ann@acme.example")
    page.goto("/search")
    box = page.locator("#search-q")
    box.press_sequentially("renew", delay=30)
    suggestions = page.locator('[data-suggest-for="q"] a')
    expect(suggestions).to_have_count(2)
    expect(page.locator('[data-suggest-for="q"]')).not_to_contain_text("Globex")
    box.press("ArrowDown")
    expect(suggestions.first).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(suggestions.nth(1)).to_be_focused()
    target = suggestions.nth(1).get_attribute("href")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{target}")

    entries = wait_for_click(live_app)
    assert [(e.query, e.source) for e in entries] == [("renew", "suggest")]
    assert entries[0].clicked_kind == KIND and entries[0].clicked_id in (1, 2)


def test_full_search_page_and_result_click(live_app: Flask, page: Page, notes):
    make_user(live_app, notes, "bob@acme.example", "Bob")
    sign_in(page, "bob@acme.example")
    page.goto("/search")
    page.locator("#search-q").fill("renewal plan")
    page.locator('main form[role="search"] button[type="submit"]').click()
    results = page.locator(".search-hit a[data-search-id]")
    expect(results).to_have_count(1)
    expect(results.first).to_have_text("Renewal plan of Acme")
    expect(page.locator("main")).not_to_contain_text("Globex")
    # Results show while the page still parses; the click is recorded once search.js has run.
    page.wait_for_load_state("load")
    results.first.click()
    page.wait_for_url("**/?note=2")
    # (typing may also have logged an as-you-type search, depending on timing)
    [entry] = [e for e in wait_for_click(live_app, "page") if e.source == "page"]
    assert entry.clicked_id == 2


def wait_for_click(
    app: Flask, source: str | None = None, seconds: float = 15.0
) -> list[SearchLogEntry]:
    """The click is sent with ``keepalive`` while the page moves on: it may land just after
    (seconds later when CI runs two suites on two cores). Waits for a click on an entry of
    ``source`` (any entry when None)."""
    deadline = time.monotonic() + seconds
    while True:
        with app.app_context():
            entries = list(db.session.scalars(select(SearchLogEntry)))
        clicked = [e for e in entries if e.clicked_at and source in (None, e.source)]
        if clicked or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)
