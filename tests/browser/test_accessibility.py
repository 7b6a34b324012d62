"""Every page, as each kind of person sees it, checked by axe-core in Chromium.

The pages are not listed by hand: the demo is loaded and each person signs in and follows
every link the pages show them, from the home page on, as a keyboard or screen-reader user
would reach them. Each page (one per route and set of query parameters, in each group of
people: customers in English, visitors in Chinese, vendor staff) is loaded in Chromium and
checked with axe-core against WCAG 2.0-2.2 A and AA (labels, names, landmarks, contrast,
ids, lang) and axe's best practices. Every violation is listed with its page and elements.
What a page shows only after a click (a menu, a form sent back with errors) is the browser
journeys' to check.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter

from portal.cli import cli
from portal.demo import DEMO_PASSWORD
from tests.browser.fixtures import TIMEOUT_MS, LiveServer
from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.sweep]

# Who reads the pages, in three groups; within a group a page is checked once, for the first
# person who reaches it (a member before the organization's admin, the vendor admin first
# among staff, who may open most).
GROUPS: tuple[tuple[str, str, tuple[str | None, ...]], ...] = (
    ("customers", "en-US", (None, "bob@acme.example", "alice@acme.example")),
    # The same templates in Chinese: what a visitor reaches is enough to check the language
    # the page declares and the Chinese texts (signed in, each page costs a second more).
    ("visitors in Chinese", "zh-CN", (None,)),
    (
        "staff",
        "en-US",
        (
            "admin@vendor.example",
            "moderator@vendor.example",
            "csm@vendor.example",
            "pm@vendor.example",
        ),
    ),
)
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
NOT_PAGES = {"accounts.sign_out", "static", "bootstrap.static", "main.favicon"}


@dataclass
class Finding:
    rule: str
    impact: str
    help: str
    pages: dict[str, list[str]] = field(default_factory=dict)  # url -> element selectors


def _node(node: dict[str, Any]) -> str:
    """An element and what axe found wrong with it, on one line."""
    summary = " ".join(node.get("failureSummary", "").split())
    return f"{', '.join(map(str, node['target']))} ({summary})"


def _route_key(adapter: MapAdapter, url: str) -> tuple[str, frozenset[str]] | None:
    parts = urlsplit(url)
    try:
        endpoint, _args = adapter.match(parts.path, method="GET")
    except HTTPException:
        return None
    if endpoint in NOT_PAGES or parts.path.startswith("/api/"):
        return None
    names = frozenset(name for name, _ in parse_qsl(parts.query) if name not in {"page", "next"})
    return str(endpoint), names


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _links(html: str, base: str) -> list[str]:
    """The same-site links of a page, as paths with their query strings."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    origin = urlsplit(base).netloc
    links = [urljoin(base, href) for href in parser.hrefs]
    return [_path(link) for link in links if urlsplit(link).netloc == origin]


def crawl(
    context: BrowserContext,
    adapter: MapAdapter,
    checked: set[tuple[str, frozenset[str]]],
    check: Callable[[Page, str], None],
) -> int:
    """Every page this person reaches by links from the home page, one a route (and set of
    query parameters): read through the context's own requests (the person's cookies) for
    their links, and loaded in Chromium and checked when nobody of the group was checked on
    that route yet. The pages checked."""
    page = context.new_page()
    visited: set[tuple[str, frozenset[str]]] = set()
    queue: deque[str] = deque(["/"])
    count = 0
    while queue:
        url = queue.popleft()
        key = _route_key(adapter, url)
        if key is None or key in visited:
            continue
        visited.add(key)
        response = context.request.get(url)
        if not response.ok or "text/html" not in response.headers.get("content-type", ""):
            continue  # a download (CSV export, template file) or a refusal, not a page
        landed = _route_key(adapter, response.url)
        if landed is None or (landed != key and landed in visited):
            continue  # redirected (to sign in, say) to a page this person has read
        visited.add(landed)
        queue.extend(_links(response.text(), response.url))
        if landed not in checked:
            checked.add(landed)
            page.goto(url)
            check(page, url)
            count += 1
    return count


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_every_page_passes_axe_for_every_kind_of_reader(
    live_app: Flask, live_server: LiveServer, browser: Browser
) -> None:
    result = live_app.test_cli_runner().invoke(cli, ["demo", "load"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    adapter = live_app.url_map.bind("127.0.0.1")
    axe = Axe()
    findings: dict[str, Finding] = {}
    checked: dict[str, int] = {}

    def check(page: Page, url: str) -> None:
        for violation in axe.run(page, options=AXE_OPTIONS).response["violations"]:
            rule = violation["id"]
            finding = findings.setdefault(
                rule, Finding(rule, violation["impact"], violation["help"])
            )
            finding.pages[url] = [_node(node) for node in violation["nodes"][:3]]

    for group, locale, people in GROUPS:
        routes: set[tuple[str, frozenset[str]]] = set()
        checked[group] = 0
        for email in people:
            context = browser.new_context(base_url=live_server.url, locale=locale)
            try:
                context.set_default_timeout(TIMEOUT_MS)
                if email is not None:
                    sign_in(context.new_page(), email, DEMO_PASSWORD)
                checked[group] += crawl(context, adapter, routes, check)
            finally:
                context.close()

    # Every group reached its pages: a crawl that stopped at the sign-in page proves nothing.
    assert checked["customers"] >= 30 and checked["staff"] >= 60, checked
    report = [f"pages checked: {checked}"]
    for finding in sorted(findings.values(), key=lambda f: f.rule):
        pages = len(finding.pages)
        report.append(f"{finding.rule} ({finding.impact}): {finding.help}, on {pages} pages")
        report += [
            f"    {url}: {'; '.join(nodes)}" for url, nodes in list(finding.pages.items())[:6]
        ]
    assert not findings, "\n".join(report)
