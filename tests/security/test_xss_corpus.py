"""Thousands of published XSS payloads written through every field a user can write, then every
page that shows them rendered in Chromium: no script runs, no ``on*`` attribute, no
``javascript:`` URL, no injected script, frame, object, embed, base or meta refresh.

tests/test_html_policy.py proves the sanitizer's outputs one by one and
tests/browser/test_xss_render.py renders those outputs in Chromium. This test proves the
product: that each field really goes through the sanitizer or through Jinja's escaping, and
that no template or ``Markup()`` site undoes it. The payloads are brs-kb's (the dev
dependency also used by the policy tests). They are submitted over the HTTP surface of the
live server's app in-process (the JSON API with personal tokens, forms with their CSRF token)
as the roles that may write each field; the pages are then loaded by Chromium from the live
server, signed in as whoever may see them.

Every page is loaded with the portal's Content-Security-Policy ignored (``bypass_csp=True``),
so that the sanitizer and the escaping alone are proven; one page of each kind is loaded again
under the CSP, where no violation may be reported. Before any content, ``alert``/``confirm``/``prompt``/``print`` are
replaced by a recorder (payloads are not rewritten: however a payload reaches those functions,
the call is counted), and dialogs, console output, page errors and requests to other origins
are recorded. Then a DOM sweep in the page looks for what the browser actually parsed.

Payloads are packed many to a body (separated by blank lines, so that most parse as their own
paragraph), which is how thousands fit into a few pages; a sample is also submitted one
payload per body, because neighbours change how a payload parses. Fields that hold one line
(titles, names, queries, CSV cells) get a sample of the payloads that fit.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, Request
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy.orm import Session

from moderation import service as moderation
from portal.accounts import service as accounts
from portal.core.identity import Role, User
from portal.qa import service as qa
from tests import factories
from tests.browser.fixtures import LiveServer
from tests.conftest import login
from tests.factories import PASSWORD, OrganizationFactory, UserFactory, VendorFactory
from tests.test_html_policy import xss_payloads

pytestmark = [pytest.mark.browser, pytest.mark.sweep]

# --- the corpus ----------------------------------------------------------------------------


def pack(payloads: list[str], limit: int) -> list[str]:
    """Payloads joined by blank lines into bodies of at most ``limit`` characters."""
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for payload in payloads:
        if len(payload) + 2 > limit:
            continue
        if current and size + len(payload) + 2 > limit:
            bodies.append("\n\n".join(current))
            current, size = [], 0
        current.append(payload)
        size += len(payload) + 2
    if current:
        bodies.append("\n\n".join(current))
    return bodies


def payloads_in(body: str) -> int:
    return len(body.split("\n\n"))


# Which share of the corpus each packed field gets: every payload (1), every second (2)...
# Markdown rendering and search indexing cost about a second per 30,000 characters on a busy
# CI machine, so the whole corpus goes through KB articles (the largest bodies) and the other
# fields get interleaved shares, each from its own offset: every payload still reaches several
# fields, and the file stays within its time budget (about a minute).
SHARE = {
    "question body": 2,
    "kb body": 1,
    "answer body": 3,
    "idea description": 3,
    "template description": 4,
    "profile about": 4,
    "template review": 5,
    "cs nps comment": 5,
    "qa comment": 8,
    "idea comment": 8,
    "idea release notes": 8,
    "idea status response": 12,
    "held post": 12,
    "kb edit": 12,
    "held template": 12,
    "kb link targets": 2,
    "answer link targets": 4,
    "cs improvement": 16,
}


def part(payloads: list[str], name: str) -> list[str]:
    step = SHARE[name]
    return payloads[list(SHARE).index(name) % step :: step]


def as_targets(payloads: list[str]) -> list[str]:
    """Each payload as the URL of a Markdown link and image, bare and in angle brackets (the
    form that allows spaces), like tests/test_html_policy.py's link and image modes."""
    return [f"[x]({p}) [y](<{p}>) ![z]({p}) ![w](<{p}>)" for p in payloads if "\n" not in p]


def short(payloads: list[str], limit: int, count: int) -> list[str]:
    """``count`` payloads of at most ``limit`` characters, spread over the whole corpus and
    all holding markup or a script URL (the ones worth a one-line field)."""
    fitting = [
        p
        for p in payloads
        if len(p) <= limit and p.strip() and ("<" in p or "javascript:" in p.lower())
    ]
    step = max(1, len(fitting) // count)
    return fitting[::step][:count]


# --- what the browser checks -----------------------------------------------------------------

INIT_SCRIPT = """
window.__xss = [];
window.__violations = [];
const hit = (what) => { window.__xss.push(String(what).slice(0, 200)); };
window.alert = hit; window.confirm = hit; window.prompt = hit; window.print = hit;
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' +
    (e.sample || '')), true);
"""

# The browser's own view of the page: anything a payload could have turned into markup.
SWEEP = """
(origin) => {
  const problems = [];
  const decoder = document.createElement('textarea');
  const url = (value) => {
    decoder.innerHTML = value;
    return decoder.value.replace(/[\\u0000-\\u0020\\u007f-\\u009f]/g, '').toLowerCase();
  };
  const urlAttributes = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'data',
    'poster', 'background', 'codebase', 'cite', 'srcset', 'lowsrc', 'dynsrc', 'ping']);
  const where = (el) => el.tagName + (el.id ? '#' + el.id : '') + ' in ' +
    (el.closest('[id]') ? el.closest('[id]').id : '?');
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on')) problems.push('on* attribute ' + where(el) + ' ' + name + '=' +
        attr.value.slice(0, 80));
      if (urlAttributes.has(name) && /^(javascript|vbscript|data):/.test(url(attr.value))) {
        problems.push('script URL ' + where(el) + ' ' + name + '=' + attr.value.slice(0, 80));
      }
      if (name === 'style' && /expression\\(|javascript:|behavior:|-moz-binding/i.test(attr.value)) {
        problems.push('style ' + where(el) + ' ' + attr.value.slice(0, 80));
      }
      if (name === 'srcdoc') problems.push('srcdoc ' + where(el));
    }
    const tag = el.tagName.toLowerCase();
    if (tag === 'script') {
      // HTML or SVG script: only our own files, with no inline text.
      const raw = el.getAttribute('src') || el.getAttribute('href') ||
        el.getAttribute('xlink:href') || '';
      const src = raw ? new URL(raw, location.href) : null;
      const text = el.textContent || '';
      const ours = src && src.origin === origin && !text.trim() &&
        /^\\/(static|bootstrap\\/static)\\//.test(src.pathname);
      if (!ours) problems.push('script ' + where(el) + ' ' + (raw || text.slice(0, 80)));
    } else if (['iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'base', 'portal',
                'style', 'foreignobject', 'animate', 'set', 'handler', 'listener'].includes(tag)) {
      problems.push('injected <' + tag + '> ' + where(el));
    } else if (tag === 'meta' && el.httpEquiv) {
      problems.push('injected <meta http-equiv=' + el.httpEquiv + '> ' + where(el));
    } else if (tag === 'link') {
      const href = new URL(el.href, location.href);
      const ours = href.origin === origin &&
        (el.rel === 'stylesheet' || (el.rel === 'icon' && href.pathname === '/static/favicon.svg'));
      if (!ours) {
        problems.push('injected <link rel=' + el.rel + ' href=' + el.href + '>');
      }
    }
  }
  // How much payload text the page shows: a page that shows none proves nothing.
  const shown = (document.body.innerText.match(/alert|javascript|script|onerror/gi) || []).length;
  return {problems, shown};
}
"""


# --- writing: the HTTP surface, as the roles that may write each field ------------------------


@dataclass
class Person:
    user_id: int
    email: str
    token: str
    client: FlaskClient
    csrf: str = ""


class Writer:
    """Submits through the live app in-process: the JSON API with a personal token, forms with
    the session's CSRF token. Counts what each field received."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.submitted: dict[str, int] = {}

    def count(self, name: str, payloads: int) -> None:
        self.submitted[name] = self.submitted.get(name, 0) + payloads

    def api(self, who: Person, method: str, path: str, **kwargs: Any) -> Any:
        response = who.client.open(
            "/api/v1" + path,
            method=method,
            headers={"Authorization": f"Bearer {who.token}"},
            **kwargs,
        )
        assert response.status_code < 300, (path, response.status_code, response.get_data()[:500])
        return response.get_json()

    def form(self, who: Person, path: str, data: dict[str, Any], ok: int = 302) -> None:
        if not who.csrf:
            page = who.client.get("/profile").get_data(as_text=True)
            match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
            assert match, "no CSRF token on /profile"
            who.csrf = match.group(1)
        response = who.client.post(path, data={"csrf_token": who.csrf, **data})
        assert response.status_code in (ok, 200), (path, response.status_code)
        if response.status_code == 200:  # a form shown again names what it refused
            body = response.get_data(as_text=True)
            assert "invalid-feedback" not in body and "alert-danger" not in body, (
                path,
                re.findall(r"invalid-feedback[^>]*>([^<]*)", body)[:3],
            )


def people(app: Flask, authors: int) -> dict[str, Person]:
    """The users, written straight to the live database (setup, not the surface under test)."""
    engine = app.extensions["cocreate_engine"]
    with app.app_context():
        session = Session(bind=engine, expire_on_commit=False)
        factories.bind(session)
        vendor = VendorFactory()
        customer = OrganizationFactory(name="Acme Analytics", slug="acme")
        users: dict[str, User] = {
            "moderator": factories.staff(Role.MODERATOR, organization=vendor),
            "pm": factories.staff(Role.PRODUCT_MANAGER, organization=vendor),
            "csm": factories.staff(Role.CSM, organization=vendor),
            "vendor_admin": factories.staff(Role.VENDOR_ADMIN, organization=vendor),
        }
        for n in range(authors):
            users[f"author{n}"] = UserFactory(organization=customer, trust_level=3)
        users["newcomer"] = UserFactory(organization=customer, trust_level=0)
        session.flush()
        # The forum's moderators lifted the posting limits: hundreds of posts in a minute.
        moderation.save_rule_settings(
            session, users["vendor_admin"], {"rate_limits": {str(t): [0, 0] for t in range(5)}}
        )
        session.commit()
        out: dict[str, Person] = {}
        for name, user in users.items():
            _token, raw = accounts.create_api_token(session, user, "xss corpus", "write")
            client = login(app.test_client(), user)
            out[name] = Person(user.id, user.email, raw, client)
        session.commit()
        session.close()
    return out


def authored(people_: dict[str, Person]) -> list[Person]:
    return [p for name, p in people_.items() if name.startswith("author")]


def write_everything(
    app: Flask, payloads: list[str]
) -> tuple[Writer, list[tuple[str, str]], dict[str, Person]]:
    """Every field gets the corpus (packed) or a sample; returns the pages to render as
    (who, path)."""
    w = Writer(app)
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        print(f"  wrote {what} in {now - clock:.2f}s")
        clock = now

    cast = people(app, authors=24)
    lap("people")
    authors = authored(cast)
    pages: list[tuple[str, str]] = []
    one_liners = short(payloads, 80, 60)
    singles = short(payloads, 400, 12)

    # Watched words (moderators): payloads as the replacement text of words, which the rules
    # then write into posts that contain them (the comments below carry every word).
    canaries = [f"canary{n}" for n in range(12)]
    for word, replacement in zip(canaries, short(payloads, 100, 12), strict=True):
        w.form(
            cast["moderator"],
            "/moderation/words",
            {"pattern": word, "action": "replace", "replacement": replacement},
        )
        w.count("watched word replacement", 1)
    lap("watched words")

    # Display names: every author is named by a payload, and authors write everything below.
    for person, name in zip(authors, one_liners, strict=False):
        w.api(person, "PATCH", "/me", json={"display_name": name})
        w.count("display name", 1)
    # Profile texts: the whole corpus over the authors' about texts (5,000 characters each).
    for person, body in zip(authors, pack(part(payloads, "profile about"), 5000), strict=False):
        w.form(person, "/profile/about", {"about": body})
        w.count("profile about", payloads_in(body))
    pages += [("author0", f"/users/{p.user_id}") for p in authors[:3]]
    org_id = w.api(authors[0], "GET", "/me")["organization_id"]
    pages += [("vendor_admin", f"/orgs/{org_id}/members")]
    lap("profiles")

    # Questions: titles, bodies (the corpus in 30,000-character bodies), single-payload bodies;
    # on each packed question one packed answer and packed comments, so that one page load
    # shows three fields' worth of the corpus.
    question_ids = []
    bodies = pack(part(payloads, "question body"), 30_000)
    answers = pack(part(payloads, "answer body"), 30_000)
    for n, title in enumerate(one_liners[: len(bodies) + 12]):
        body = bodies[n] if n < len(bodies) else singles[n % len(singles)]
        question = w.api(
            authors[n % len(authors)],
            "POST",
            "/questions",
            json={"title": f"{title} q{n:02}", "body": body},
        )
        question_ids.append(question["id"])
        w.count("question title", 1)
        w.count("question body", payloads_in(body))
    lap("questions")
    answered = question_ids[: len(bodies)]
    for n, (qid, body) in enumerate(zip(answered, answers, strict=False)):
        w.api(
            authors[(n + 1) % len(authors)],
            "POST",
            f"/questions/{qid}/answers",
            json={"body": body},
        )
        w.count("answer body", payloads_in(body))
    single_q = question_ids[len(bodies)]
    for n, body in enumerate(singles):
        w.api(
            authors[n % len(authors)], "POST", f"/questions/{single_q}/answers", json={"body": body}
        )
        w.count("answer body", 1)
    for n, body in enumerate(pack(as_targets(part(payloads, "answer link targets")), 30_000)):
        w.api(
            authors[n % len(authors)], "POST", f"/questions/{single_q}/answers", json={"body": body}
        )
        w.count("answer link targets", payloads_in(body))
    lap("answers")
    for n, body in enumerate([" ".join(canaries)] + pack(part(payloads, "qa comment"), 600)):
        w.form(
            authors[n % len(authors)],
            f"/questions/{answered[n % len(answered)]}/comments",
            {"body": body},
        )
        w.count("question comment", payloads_in(body))
    lap("comments")
    pages += [("author0", "/questions/"), ("author0", "/questions/?page=2")]
    pages += [("author0", f"/questions/{qid}") for qid in answered + [single_q]]
    pages += [("author0", "/notifications"), ("author0", "/questions/ask")]

    # Roadmap: idea titles and descriptions, comments, and a product manager's answer and
    # release notes.
    idea_ids = []
    descriptions = pack(part(payloads, "idea description"), 20_000)
    for n, title in enumerate(one_liners[: len(descriptions) + 8]):
        body = descriptions[n] if n < len(descriptions) else singles[n % len(singles)]
        idea = w.api(
            authors[n % len(authors)],
            "POST",
            "/ideas",
            json={"title": f"{title} i{n:02}", "description": body},
        )
        idea_ids.append(idea["id"])
        w.count("idea title", 1)
        w.count("idea description", payloads_in(body))
    for n, body in enumerate(pack(part(payloads, "idea comment"), 2000)):
        w.api(
            authors[n % len(authors)],
            "POST",
            f"/ideas/{idea_ids[n % 4]}/comments",
            json={"body": body},
        )
        w.count("idea comment", payloads_in(body))
    notes = pack(part(payloads, "idea release notes"), 20_000)
    for n, (idea_id, response) in enumerate(
        zip(idea_ids[:4], pack(part(payloads, "idea status response"), 5000), strict=False)
    ):
        w.api(
            cast["pm"],
            "POST",
            f"/ideas/{idea_id}/status",
            json={
                "status": "shipped",
                "response": response,
                "release_notes": notes[n % len(notes)],
            },
        )
        w.count("idea status response", payloads_in(response))
        w.count("idea release notes", payloads_in(notes[n % len(notes)]))
    lap("ideas")
    pages += [("author0", "/roadmap/"), ("author0", "/roadmap/changelog")]
    pages += [("author0", "/roadmap/new")]
    pages += [("author0", f"/roadmap/ideas/{i}") for i in idea_ids[: len(descriptions)]]
    pages += [("pm", "/roadmap/impact")]

    # Knowledge base, written by vendor staff: titles and 50,000-character bodies.
    article_ids = []
    for n, body in enumerate(pack(part(payloads, "kb body"), 50_000)):
        article = w.api(
            cast["vendor_admin"],
            "POST",
            "/kb/articles",
            json={"title": one_liners[n], "body": body, "language": "en"},
        )
        article_ids.append(article["id"])
        w.count("kb title", 1)
        w.count("kb body", payloads_in(body))
    # The corpus as Markdown link and image targets, where images are allowed (KB only).
    linked = pack(as_targets(part(payloads, "kb link targets")), 50_000)
    for n, body in enumerate(linked):
        article = w.api(
            cast["vendor_admin"],
            "POST",
            "/kb/articles",
            json={"title": f"Links {n}", "body": body, "language": "en"},
        )
        article_ids.append(article["id"])
        w.count("kb link/image targets", payloads_in(body))
    # An edit, so that the versions page shows a diff of two sources (kb/views.py diff_html).
    edit = pack(part(payloads, "kb edit"), 20_000)[0]
    w.api(cast["vendor_admin"], "PATCH", f"/kb/articles/{article_ids[0]}", json={"body": edit})
    w.count("kb edit (diff)", payloads_in(edit))
    lap("kb")
    pages += [("vendor_admin", f"/kb/articles/{article_ids[0]}/versions")]
    pages += [("author0", "/kb/")]
    pages += [("author0", f"/kb/articles/{a}") for a in article_ids]

    # Gallery: titles, descriptions, manifests (name, data sources, parameter labels),
    # changelogs, and every author's review of one template.
    template_ids = []
    descriptions = pack(part(payloads, "template description"), 20_000)
    names = short(payloads, 100, 200)
    # As a browser can send them in a multipart header: no quote, slash or backslash.
    file_names = [n for n in names if n.isprintable() and not set(n) & set('"/\\;')][:12]
    for n, title in enumerate(one_liners[: max(len(descriptions), 12)]):
        body = descriptions[n] if n < len(descriptions) else singles[n % len(singles)]
        few = names[n * 10 : n * 10 + 10] or names[:10]
        manifest = {
            "name": few[0],
            "version": "1.0.0",
            "description": few[1],
            "requires": {"product": ">=5.2, <6"},
            "data_sources": [{"name": x, "type": "postgres"} for x in few[2:6]],
            "parameters": [
                {"name": f"p{i}", "type": "date", "label": x} for i, x in enumerate(few[6:])
            ],
            "template": {"panels": [{"title": x} for x in few]},
        }
        template = w.api(
            authors[n % len(authors)],
            "POST",
            "/templates",
            data={
                "file": (io.BytesIO(json.dumps(manifest).encode()), file_names[n % 12] + ".json"),
                "title": f"{title} t{n:02}",
                "description": body,
                "changelog": singles[n % len(singles)],
            },
            content_type="multipart/form-data",
        )
        template_ids.append(template["id"])
        w.count("template title", 1)
        w.count("template description", payloads_in(body))
        w.count("template manifest", len(few))
        w.count("template changelog", 1)
        w.count("template file name", 1)
    for n, body in enumerate(pack(part(payloads, "template review"), 5000)):
        template_id = template_ids[n // len(authors)]  # one review per author and template
        w.form(
            authors[n % len(authors)], f"/gallery/templates/{template_id}/review", {"body": body}
        )
        w.count("template review", payloads_in(body))
    lap("gallery")
    pages += [("author0", "/gallery/"), ("author0", "/gallery/mine")]
    pages += [("author0", f"/gallery/templates/{t}") for t in template_ids[: len(descriptions)]]

    # Search queries: logged, and shown back on the results page and in the insights.
    queries = short(payloads, 200, 80)
    for query in queries:
        response = cast["author1"].client.get("/search", query_string={"q": query})
        assert response.status_code == 200
        w.count("search query", 1)
    lap("search")
    pages += [("author1", "/search?" + urlencode({"q": q})) for q in queries[:6]]
    pages += [("vendor_admin", "/search/insights")]

    # Customer success: a CRM import of accounts and NPS answers whose text cells are payloads.
    # Text a CRM export can hold: no control characters (NULs make a file read as UTF-16).
    printable = [p for p in payloads if p.isprintable()]
    cells = short(printable, 200, 120)
    accounts_csv = io.StringIO()
    writer = csv.writer(accounts_csv)
    writer.writerow(
        ["external_id", "name", "plan", "segment", "tier", "industry", "region", "product_version"]
    )
    for n in range(20):
        row = cells[n * 6 : n * 6 + 6] or cells[:6]
        writer.writerow([f"X-{n}", row[0], *row])
    job_a = w.api(
        cast["csm"],
        "POST",
        "/cs/imports",
        data={
            "kind": "accounts",
            "import_valid_rows": "true",
            "file": (io.BytesIO(accounts_csv.getvalue().encode()), file_names[0] + ".csv"),
        },
        content_type="multipart/form-data",
    )
    w.count("cs account cells", 20 * 7)
    nps_csv = io.StringIO()
    writer = csv.writer(nps_csv)
    writer.writerow(["external_id", "account_external_id", "score", "responded_at", "comment"])
    comments = pack([p for p in part(payloads, "cs nps comment") if p.isprintable()], 5000)
    for n, body in enumerate(comments):
        writer.writerow([f"N-{n}", f"X-{n % 20}", n % 11, "2026-01-15 10:00", body])
    job_b = w.api(
        cast["csm"],
        "POST",
        "/cs/imports",
        data={
            "kind": "nps_responses",
            "import_valid_rows": "true",
            "file": (io.BytesIO(nps_csv.getvalue().encode()), file_names[1] + ".csv"),
        },
        content_type="multipart/form-data",
    )
    w.count("cs nps comment", sum(payloads_in(b) for b in comments))
    usage_csv = io.StringIO()
    writer = csv.writer(usage_csv)
    writer.writerow(["account_external_id", "day", "metric", "value"])
    metrics = short(printable, 100, 12)
    for n in range(60):
        writer.writerow([f"X-{n % 3}", f"2026-01-{n % 28 + 1:02}", metrics[n % len(metrics)], n])
    job_c = w.api(
        cast["csm"],
        "POST",
        "/cs/imports",
        data={
            "kind": "usage_events",
            "import_valid_rows": "true",
            "file": (io.BytesIO(usage_csv.getvalue().encode()), "usage.csv"),
        },
        content_type="multipart/form-data",
    )
    w.count("cs usage metric name", len(metrics))
    jobs = (job_a, job_b, job_c)
    assert all(job["rows_done"] > 0 for job in jobs), [
        (
            j["status"],
            j["rows_total"],
            j["rows_valid"],
            j["rows_done"],
            j["report"].get("file_error"),
        )
        for j in jobs
    ]
    listing = cast["csm"].client.get("/cs/accounts").get_data(as_text=True)
    account_pages = sorted(set(re.findall(r'href="(/cs/accounts/\d+)"', listing)))[:3]
    assert account_pages, "no imported account is listed on /cs/accounts"
    # Improvement items: what a CSM writes about an account.
    org_ids = [int(path.rsplit("/", 1)[1]) for path in account_pages]
    texts = short(printable, 100, 18)
    for n, description in enumerate(pack(part(payloads, "cs improvement"), 2000)[:6]):
        w.form(
            cast["csm"],
            "/cs/improvements/new",
            {
                "org_id": org_ids[n % len(org_ids)],
                "department": "sales",
                "title": texts[n * 3],
                "owner_name": texts[n * 3 + 1],
                "description": description,
            },
        )
        w.count("cs improvement", 2 + payloads_in(description))
    lap("cs imports")
    pages += [("csm", "/cs/improvements")]
    pages += [("csm", "/cs/"), ("csm", "/cs/accounts"), ("csm", "/cs/nps"), ("csm", "/cs/imports")]
    pages += [("csm", "/cs/tasks"), ("csm", "/cs/alerts")]
    pages += [("csm", f"/cs/imports/{job['id']}") for job in jobs]
    pages += [("csm", path) for path in account_pages]

    # A newcomer's posts are held: the queue shows their sanitized previews, and the
    # moderators' flag notes.
    newcomer = cast["newcomer"]
    held = pack(part(payloads, "held post"), 30_000)
    question = w.api(
        newcomer, "POST", "/questions", json={"title": one_liners[-1], "body": held[0]}
    )
    for body in held[1:]:
        w.api(newcomer, "POST", f"/questions/{answered[0]}/answers", json={"body": body})
    w.count("held post", sum(payloads_in(b) for b in held))
    held_template = pack(part(payloads, "held template"), 20_000)[0]
    w.api(
        newcomer,
        "POST",
        "/templates",
        data={
            "file": (io.BytesIO(json.dumps(manifest).encode()), "held.json"),
            "title": one_liners[-2],
            "description": held_template,
            "changelog": held_template[:10_000].rsplit("\n\n", 1)[0],
        },
        content_type="multipart/form-data",
    )
    w.count("held template", payloads_in(held_template))
    queue = w.api(cast["moderator"], "GET", "/moderation/queue", query_string={"per_page": 50})
    items = [item["id"] for item in queue["items"]]
    assert len(items) >= len(held), (len(items), question)
    flagged = question_ids[len(bodies) + 1 :]  # single-payload questions, not rendered alone
    with app.app_context():
        engine = app.extensions["cocreate_engine"]
        with Session(bind=engine) as session:
            flag_items = [moderation.item_id(session, qa.QUESTION_KIND, q) for q in flagged]
    for item_id, note in zip(flag_items, short(payloads, 500, len(flag_items)), strict=True):
        w.api(
            cast["author2"],
            "POST",
            f"/moderation/items/{item_id}/flags",
            json={"reason": "other", "note": note},
        )
        w.count("flag note", 1)
    lap("moderation")
    pages += [("moderator", "/moderation/queue"), ("moderator", "/moderation/words")]
    return w, pages, cast


# --- reading: every page in Chromium ----------------------------------------------------------


@dataclass
class Report:
    loads: int = 0
    problems: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # during the current page load
    shown: dict[str, int] = field(default_factory=dict)  # path -> payload words in its text
    timings: list[tuple[float, str]] = field(default_factory=list)


def signed_in(browser_: Browser, live: LiveServer, email: str, bypass_csp: bool) -> BrowserContext:
    context = browser_.new_context(base_url=live.url, locale="en-US", bypass_csp=bypass_csp)
    context.set_default_timeout(15_000)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.goto("/sign-in")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_selector('form[action="/sign-out"]', state="attached")
    page.close()
    return context


def render(page: Page, live: LiveServer, path: str, report: Report, mode: str) -> None:
    """Loads ``path`` in ``page`` (whose listeners fill ``report.seen``) and sweeps it."""
    started = time.perf_counter()
    report.seen.clear()
    seen = report.seen
    swept = {"problems": [], "shown": 1}
    try:
        response = page.goto(path, wait_until="load")
        assert response is not None, path
        assert response.status == 200, (path, response.status)
        if path in TYPED:  # titles suggested while typing, put in the page by our scripts
            field_, suggestion = TYPED[path]
            page.fill(field_, "alert")
            page.wait_for_selector(suggestion, state="attached")
        seen += [f"script ran: {call}" for call in page.evaluate("window.__xss")]
        seen += [f"CSP violation: {v}" for v in page.evaluate("window.__violations")]
        swept = page.evaluate(SWEEP, live.url)
    except PlaywrightError as error:  # a payload that navigated away or reloaded the page
        seen.append(f"the page went away ({page.url[:80]}): {error.message[:160]}")
    if page.url.split("#")[0] != live.url + path:
        seen.append(f"the page navigated to {page.url[:120]}")
    seen += swept["problems"]
    report.shown[path] = min(report.shown.get(path, swept["shown"]), swept["shown"])
    report.loads += 1
    report.problems += [f"[{mode}] {path}: {what}" for what in seen]
    report.timings.append((time.perf_counter() - started, f"[{mode}] {path}"))


# Pages whose scripts show payload titles as the user types: field, then a suggestion.
TYPED = {
    "/questions/ask": ("#title", "[data-suggest-for=title] a"),
    "/roadmap/new": ("#title", "#similar-ideas li a"),
}


def watched_page(context: BrowserContext, live: LiveServer, report: Report, mode: str) -> Page:
    """A tab whose dialogs, console output, page errors and requests elsewhere are recorded."""
    page = context.new_page()

    def request(r: Request) -> None:
        if not r.url.startswith(live.url + "/"):
            report.seen.append("request to another origin: " + r.url[:120])

    def dialog(d: Dialog) -> None:
        report.seen.append("dialog: " + d.message[:120])
        d.dismiss()

    def console(message: ConsoleMessage) -> None:
        text = message.text
        if message.type == "error" and "Failed to load resource" in text:
            return  # a 404 for an image path a payload named: requested, not run
        report.seen.append(f"console {message.type}: {text[:160]}")

    page.on("request", request)
    page.on("dialog", dialog)
    page.on("console", console)
    page.on("pageerror", lambda error: report.seen.append(f"page error: {error}"[:200]))
    return page


def test_no_payload_survives_any_field_on_any_page(
    browser: Browser,
    live_server: LiveServer,
    live_app: Flask,
) -> None:
    payloads = list(xss_payloads())
    started = time.perf_counter()
    writer, pages, cast = write_everything(live_app, payloads)
    written = time.perf_counter()
    report = Report()
    roles = sorted({who for who, _ in pages})
    for mode, bypass in (("sanitizer alone", True), ("with CSP", False)):
        kinds: set[str] = set()
        for role in roles:
            context = signed_in(browser, live_server, cast[role].email, bypass)
            try:
                page = watched_page(context, live_server, report, mode)
                for who, path in pages:
                    kind = re.sub(r"\d+", "N", path.split("?")[0])
                    # Under the CSP one page of each kind: the CSP is the same for all, and
                    # what it would block the sanitizer pass above has already looked for.
                    if who != role or (not bypass and kind in kinds):
                        continue
                    kinds.add(kind)
                    render(page, live_server, path, report, mode)
            finally:
                context.close()
    done = time.perf_counter()

    print(
        f"\nXSS corpus: {len(payloads)} payloads (brs-kb); written in {written - started:.1f} s; "
        f"{len(pages)} pages, {report.loads} loads in {done - written:.1f} s"
    )
    for name, count in writer.submitted.items():
        print(f"  {name:<26} {count:>5} payloads")
    print(f"  findings: {len(report.problems)}")
    for problem in report.problems[:40]:
        print("   ", problem)
    print("  slowest loads:", [f"{t:.2f}s {p}" for t, p in sorted(report.timings)[-5:]])
    blank = sorted(path for path, shown in report.shown.items() if shown == 0)
    print(f"  pages that showed no payload text: {blank}")

    assert report.problems == [], "\n".join(report.problems[:40])
    assert blank == [], blank
    assert len(payloads) >= 4_000
    assert writer.submitted["kb body"] >= len(payloads) * 0.99  # all but the few over 50,000


def test_the_sweep_catches_what_it_looks_for(
    browser: Browser,
    live_server: LiveServer,
    live_app: Flask,
) -> None:
    """The harness itself: unsanitized markup put into a real page is reported, each kind by
    the check meant for it, so that a clean run of the test above means something."""
    report = Report()
    context = live_server_context(browser, live_server)
    try:
        page = watched_page(context, live_server, report, "control")
        page.goto("/sign-in")
        page.evaluate(
            """() => document.querySelector('main').insertAdjacentHTML('beforeend',
              '<img src="x" onerror="alert(`img`)">' +
              '<a href=" JaVa&#x09;script:alert(1)">link</a>' +
              '<iframe srcdoc="<b>x</b>"></iframe>' +
              '<svg><animate attributeName="href" values="javascript:alert(2)"/></svg>' +
              '<meta http-equiv="refresh" content="0;url=javascript:alert(3)">' +
              '<img src="http://elsewhere.example/x.png">')"""
        )
        page.evaluate(
            "() => { const s = document.createElement('script'); "
            "s.textContent = 'alert(`inline`)'; document.body.append(s); }"
        )
        # The img's onerror runs once the server has answered its 404: under load that takes
        # longer than any fixed pause, so wait for both calls (a harness that misses them fails
        # here by timeout).
        page.wait_for_function(
            "['img', 'inline'].every((call) => window.__xss.includes(call))", timeout=15_000
        )
        seen = report.seen
        seen += [f"script ran: {call}" for call in page.evaluate("window.__xss")]
        seen += page.evaluate(SWEEP, live_server.url)["problems"]
    finally:
        context.close()
    text = "\n".join(report.seen)
    assert "script ran: img" in text and "script ran: inline" in text
    assert "on* attribute IMG" in text and "onerror" in text
    assert "script URL A" in text
    assert "injected <iframe>" in text and "srcdoc" in text
    assert "injected <animate>" in text
    assert "injected <meta http-equiv=refresh>" in text
    assert "script " in text and "alert(`inline`)" in text
    assert "request to another origin: http://elsewhere.example/x.png" in text


def live_server_context(browser_: Browser, live: LiveServer) -> BrowserContext:
    context = browser_.new_context(base_url=live.url, locale="en-US", bypass_csp=True)
    context.set_default_timeout(15_000)
    context.add_init_script(INIT_SCRIPT)
    return context
