"""Thousands of sanitized XSS payloads rendered in one real Chromium page: no script runs.

The unit tests (tests/test_html_policy.py) check the outputs with Python's HTML parser; this
checks them with the parser that matters, a browser's. Every output of the corpus goes into one
page, served from a made-up origin through Playwright's request interception (so relative URLs
resolve as they would on the portal, and nothing reaches the network). Before the page loads,
alert/confirm/prompt/print are replaced by a counter; then every element gets the events an
``on*`` handler would answer (hover, focus, click, key, load, error, animation...) and is
clicked, with navigation to http(s)/mailto links cancelled but any other link (javascript:)
allowed to run. The page is loaded without a CSP, so the sanitizer alone is proven, and again
under a strict CSP, which must report no violation. A control page of unsanitized payloads
proves that the harness does catch execution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Route

from tests.test_html_policy import corpus_outputs

pytestmark = [pytest.mark.browser, pytest.mark.sweep]

ORIGIN = "http://cocreate.test"

# Runs before any content: the counters, and the click guard that keeps the page in place.
INIT_SCRIPT = """
window.__xss = 0;
window.__xssLog = [];
window.__violations = [];
const hit = (what) => { window.__xss += 1; window.__xssLog.push(String(what)); };
window.alert = hit; window.confirm = hit; window.prompt = hit; window.print = hit;
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI), true);
document.addEventListener('click', (e) => {
  const link = e.target.closest && e.target.closest('a[href]');
  if (link && ['http:', 'https:', 'mailto:'].includes(link.protocol)) e.preventDefault();
}, true);
"""

# Every event an inline handler in the payloads listens for, fired at every element.
FIRE_EVERYTHING = """
() => {
  const types = ['mouseover', 'mouseenter', 'mousemove', 'mousedown', 'mouseup', 'mouseout',
    'mouseleave', 'click', 'dblclick', 'auxclick', 'contextmenu', 'pointerover',
    'pointerenter', 'pointerdown', 'pointerup', 'pointermove', 'focus', 'focusin', 'blur',
    'focusout', 'keydown', 'keypress', 'keyup', 'input', 'beforeinput', 'change', 'select',
    'submit', 'reset', 'invalid', 'search', 'toggle', 'beforetoggle', 'load', 'error',
    'abort', 'scroll', 'scrollend', 'wheel', 'copy', 'cut', 'paste', 'drag', 'dragstart',
    'dragend', 'dragenter', 'dragover', 'drop', 'animationstart', 'animationend',
    'animationiteration', 'transitionstart', 'transitionend', 'transitionrun', 'play',
    'playing', 'canplay', 'loadstart', 'loadeddata', 'message', 'hashchange', 'popstate',
    'pageshow', 'resize', 'touchstart', 'touchend', 'beforeprint', 'afterprint'];
  const elements = [...document.body.querySelectorAll('*')];
  // Focus is dispatched as events, not by el.focus(): in a page this size each real focus
  // restyles the whole document (1,100 links took 15 s), and handlers see the same event.
  for (const el of elements) {
    for (const type of types) {
      try { el.dispatchEvent(new Event(type, {bubbles: true, cancelable: true})); } catch (e) {}
    }
    try { el.click(); } catch (e) {}
  }
  for (const type of types) window.dispatchEvent(new Event(type));
  return elements.length;
}
"""

# The browser's own view of the DOM: anything outside the policy, as the browser parsed it.
DOM_AUDIT = """
(origin) => {
  const tags = new Set(['P', 'BR', 'HR', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'STRONG', 'EM',
    'DEL', 'S', 'CODE', 'PRE', 'BLOCKQUOTE', 'UL', 'OL', 'LI', 'A', 'TABLE', 'THEAD', 'TBODY',
    'TR', 'TH', 'TD', 'IMG', 'ARTICLE']);
  const attributes = {A: ['href', 'title', 'rel'], IMG: ['src', 'alt', 'title'],
    TH: ['align'], TD: ['align']};
  const problems = [];
  if (document.scripts.length) problems.push(document.scripts.length + ' script elements');
  for (const el of document.body.querySelectorAll('*')) {
    if (!tags.has(el.tagName)) problems.push('<' + el.tagName + '>');
    for (const attr of el.attributes) {
      if (!(attributes[el.tagName] || []).includes(attr.name)) {
        problems.push(el.tagName + ' ' + attr.name + '=' + attr.value.slice(0, 80));
      }
    }
    if (el.tagName === 'A' && el.hasAttribute('href')) {
      const url = new URL(el.href);
      if (!['http:', 'https:', 'mailto:'].includes(url.protocol)) problems.push('href ' + el.href);
    }
    if (el.tagName === 'IMG' && el.hasAttribute('src')) {
      const url = new URL(el.src);
      if (url.origin !== origin || !url.pathname.startsWith('/uploads/')) {
        problems.push('src ' + el.src);
      }
    }
  }
  return problems;
}
"""

STRICT_CSP = (
    "default-src 'none'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-src 'none'; object-src 'none'"
)


@dataclass
class Run:
    """What one page load let happen."""

    elements: int = 0
    articles: int = 0  # fragments that the browser parsed as their own <article>
    executed: int = 0
    log: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    final_url: str = ""


def render_in_chromium(browser: Browser, fragments: list[str], *, csp: bool) -> Run:
    run = Run()
    meta = f'<meta http-equiv="Content-Security-Policy" content="{STRICT_CSP}">' if csp else ""
    body = "\n".join(f"<article>{fragment}</article>" for fragment in fragments)
    document = (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}</head><body>{body}</body></html>'
    )

    def serve(route: Route) -> None:
        url = route.request.url
        if url == ORIGIN + "/":
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=document)
        elif url.startswith(ORIGIN + "/"):
            route.fulfill(status=404, content_type="text/plain", body="")  # uploads and the like
        else:
            run.foreign_requests.append(url)
            route.abort()

    context = browser.new_context(java_script_enabled=True)
    context.set_default_timeout(15_000)
    try:
        page: Page = context.new_page()
        page.add_init_script(INIT_SCRIPT)
        page.route("**/*", serve)
        page.on("dialog", lambda dialog: _dismiss(dialog, run))
        page.on("console", lambda message: _console(message, run))
        page.goto(ORIGIN + "/", wait_until="load")
        run.articles = page.evaluate("document.querySelectorAll('body > article').length")
        run.elements = page.evaluate(FIRE_EVERYTHING)
        page.wait_for_timeout(1_000)  # javascript: navigations, image errors: all asynchronous
        run.executed = page.evaluate("window.__xss")
        run.log = page.evaluate("window.__xssLog")
        run.violations = page.evaluate("window.__violations")
        run.problems = page.evaluate(DOM_AUDIT, ORIGIN)
        run.final_url = page.url
    finally:
        context.close()
    return run


def _dismiss(dialog: Dialog, run: Run) -> None:
    run.dialogs.append(dialog.message)
    dialog.dismiss()


def _console(message: ConsoleMessage, run: Run) -> None:
    # A payload's console.log would mean it ran; Chromium's own CSP reports are counted apart.
    if message.type in ("log", "info", "debug"):
        run.log.append(f"console: {message.text}")


def corpus_fragments() -> list[str]:
    """Every sanitized output of every mode, each payload's outputs once."""
    seen: dict[str, None] = {}
    for outputs in corpus_outputs().values():
        seen.update(dict.fromkeys(outputs))
    return list(seen)


@pytest.mark.parametrize("csp", [False, True], ids=["sanitizer alone", "with strict CSP"])
def test_no_sanitized_payload_runs_in_chromium(browser: Browser, csp: bool):
    fragments = corpus_fragments()
    assert len(fragments) > 4_000
    run = render_in_chromium(browser, fragments, csp=csp)

    # No fragment swallowed the ones after it (an unclosed <textarea> or comment would), so
    # every one of them was parsed, audited and exercised.
    assert run.articles == len(fragments)
    assert run.elements > len(fragments)
    assert run.executed == 0 and run.log == [], run.log[:20]
    assert run.dialogs == []
    assert run.problems == [], run.problems[:20]
    assert run.foreign_requests == [], run.foreign_requests[:20]
    assert run.final_url == ORIGIN + "/"
    if csp:
        assert run.violations == [], run.violations[:20]


UNSANITIZED = [
    '<img src="x" onerror="alert(\'img\')">',
    "<div onmouseover=\"alert('hover')\">hover me</div>",
    "<a href=\"javascript:alert('link')\">click me</a>",
    "<p><script>alert('script')</script></p>",
]


def test_the_harness_catches_a_payload_that_runs(browser: Browser):
    run = render_in_chromium(browser, UNSANITIZED, csp=False)
    assert {"img", "hover", "link", "script"} <= set(run.log)
    assert run.dialogs == []  # alert was replaced, so nothing blocked the page
    assert any("onerror" in problem for problem in run.problems)
    assert any(problem.startswith("href javascript:") for problem in run.problems)

    blocked = render_in_chromium(browser, UNSANITIZED, csp=True)
    assert blocked.executed == 0 and len(blocked.violations) >= 2  # the CSP caught them
    assert escape("<") not in "".join(blocked.log)
