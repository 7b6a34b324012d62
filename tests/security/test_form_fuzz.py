"""Hostile input through every HTML form: a 4xx or the form again with a message, never a 500.

The forms are not listed by hand: every page a role can open (every GET route of the URL map,
with the world's objects as arguments) is read, and every ``<form>`` on it is collected with
its fields (inputs, selects, textareas, file inputs): POST forms are sent as bodies, GET forms
(filters, search boxes) and the query strings of the page's own links (``?page=2&sort=new``)
as query strings. Each form is then sent as
its role would send it with hostile values: a field at a time, the others as the page filled
them in (so validation of one field does not hide the handling of the next), and the whole
form at once. The values are what browsers, scripts and attackers send: 100,000 characters,
NUL bytes, numbers out of any range, dates that do not exist, options not offered, text where
a number goes, nothing at all, a file that is not what it says. Each request runs in a
savepoint rolled back after it, as in the tenant matrix.

The API has its own fuzzing (``test_api_schemathesis``); this covers what people type.
"""

from __future__ import annotations

import functools
import io
import time
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urljoin, urlsplit

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.conftest import login
from tests.security.test_tenant_matrix import url_values
from tests.security.world import build

pytestmark = pytest.mark.sweep

# Who fills in forms: anyone (sign-in, registration, password reset), a customer, an
# organization's admin, and each kind of vendor staff. A form is sent once by customers and
# once by staff (their paths differ: moderation, trust), each time by the first role of the
# two groups that finds it; the vendor admin, who may do most, goes first among staff.
ROLES = ("anonymous", "member_a", "admin_a", "vendor_admin", "moderator", "csm", "pm")
STAFF = {"vendor_admin", "moderator", "csm", "pm"}
# Forms whose sending ends the role's session or the world's fixtures for the next request
# are still sent; these are not, as they only lead away (search boxes are GET forms anyway).
SKIPPED_ACTIONS = {"/sign-out"}

# ~100,000 characters, Chinese and English. Mostly ASCII: a Chinese character is nine bytes of
# %-escapes in a form body, and decoding 63,000 of them took a third of this sweep's time.
HUGE = ("长文本 " + "long text " * 10) * 1_000
FORM_ENCODED = "application/x-www-form-urlencoded"
HOSTILE_TEXT = {
    "huge": HUGE,
    "nul": "before\x00after",
    "control": "\x1b[31m\u202eevil\u200b\ufeff",
    "number_like": "9" * 40,
    "negative": "-1",
    "float_junk": "1e309",
    "nan": "NaN",
    "date_junk": "2026-02-30",
    "not_an_option": "zz-not-an-option",
    "empty": "",
    "spaces": "   ",
}
# A whole form at once: every field the same way.
WHOLE_FORM = ("huge", "nul", "number_like", "not_an_option", "empty")


@dataclass
class Form:
    action: str
    method: str = "post"
    fields: dict[str, str] = field(default_factory=dict)  # name -> value the page filled in
    kinds: dict[str, str] = field(default_factory=dict)  # name -> input type, select, textarea
    options: dict[str, list[str]] = field(default_factory=dict)  # a select's option values
    files: set[str] = field(default_factory=set)


class _Forms(HTMLParser):
    """The POST forms of a page: their action and their fields' names and filled-in values."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[Form] = []
        self.links: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._textarea: str | None = None
        self._by_id: dict[str, Form] = {}
        # Fields outside their form, tied to it by form="..." (the queue's row checkboxes).
        self._detached: list[tuple[str, list[tuple[str, str | None]]]] = []

    def close(self) -> None:
        super().close()
        for tag, attrs in self._detached:
            owner = self._by_id.get(dict(attrs).get("form") or "")
            if owner is not None:
                self._form = owner
                self.handle_starttag(tag, [(k, v) for k, v in attrs if k != "form"])
        self._form = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "?" in a.get("href", ""):
            # A link with a query string is a GET form the page filled in (?page=2&sort=new).
            href = urljoin(self.page_url, a["href"])
            if urlsplit(href).netloc == urlsplit(self.page_url).netloc:
                params = dict(parse_qsl(urlsplit(href).query, keep_blank_values=True))
                link = Form(href, "get", params, dict.fromkeys(params, "text"))
                self.links.append(link)
            return
        if tag == "form":
            method = a.get("method", "get").lower()
            self._form = Form(urljoin(self.page_url, a.get("action") or self.page_url), method)
            self.forms.append(self._form)
            if a.get("id"):
                self._by_id[a["id"]] = self._form
            return
        if a.get("form") and tag in ("input", "select", "textarea", "button"):
            self._detached.append((tag, attrs))
            return
        form = self._form
        if form is not None and tag == "option" and self._select is not None:
            form.options.setdefault(self._select, []).append(a.get("value", ""))
            if "selected" in a or not form.fields.get(self._select):
                form.fields[self._select] = a.get("value", "")
            return
        if form is None or not a.get("name"):
            return
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "file":
                form.files.add(name)
            elif kind in ("checkbox", "radio"):
                if "checked" in a or name not in form.fields:
                    form.fields[name] = a.get("value", "on")
            elif kind not in ("submit", "button", "image", "reset"):
                form.fields[name] = a.get("value", "")
            form.kinds.setdefault(name, kind)
        elif tag == "select":
            self._select = name
            form.fields.setdefault(name, "")
            form.kinds[name] = "select"
        elif tag == "textarea":
            self._textarea = name
            form.fields[name] = ""
            form.kinds[name] = "textarea"
        elif tag == "button" and a.get("value"):
            form.fields.setdefault(name, a["value"])

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea is not None:
            self._form.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def discover(
    app: Flask, client: FlaskClient, world: Any, forms: dict[str, Form], role: str
) -> list[str]:
    """Add to ``forms`` every form on every page the client's user can open, keyed by the
    role's group, the method and the action path (a form another role of the group found
    first is left to it); the keys added."""
    group = "staff" if role in STAFF else "customers"
    added: list[str] = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/static")):
            continue
        if rule.endpoint in ("accounts.sign_out", "main.favicon"):
            continue
        with app.test_request_context():
            url = url_for(
                rule.endpoint, **url_values(rule.endpoint, set(rule.arguments), world, world.a)
            )
        response = client.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            response.close()
            continue
        parser = _Forms("http://localhost" + url)
        parser.feed(response.get_data(as_text=True))
        parser.close()
        response.close()
        for form in parser.forms + parser.links:
            key = f"{group} {form.method.upper()} {urlsplit(form.action).path}"
            if form.method == "post":  # two forms to one action (mark one read, mark all)
                key += " " + ",".join(sorted(set(form.fields) | form.files))
            if urlsplit(form.action).path in SKIPPED_ACTIONS:
                continue
            if key not in forms:
                forms[key] = form
                added.append(key)
            elif form.method == "get" and key in added:  # every parameter its links use
                for name, value in form.fields.items():
                    forms[key].fields.setdefault(name, value)
                    forms[key].kinds.setdefault(name, form.kinds[name])
    return added


# What each kind of field is sent, one at a time: text goes where numbers are read and
# numbers past any column where text is, since a tampered form is not bound by its types.
BY_KIND = {
    "date": ("date_junk", "huge", "number_like"),
    "number": ("number_like", "float_junk", "nan", "negative", "huge"),
    "select": ("not_an_option", "number_like", "negative", "huge"),
    "checkbox": ("not_an_option", "number_like"),
    "radio": ("not_an_option", "number_like"),
}
TEXT = ("huge", "nul", "control", "number_like", "spaces")


@functools.cache
def _quoted(value: str) -> str:
    return quote_plus(value)  # 100,000 characters take tens of ms: each value once


def form_body(fields: dict[str, str]) -> bytes:
    """``fields`` as a browser sends a form (``application/x-www-form-urlencoded``)."""
    return "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in fields.items()).encode()


def post(client: FlaskClient, path: str, fields: dict[str, Any]) -> Any:
    """A form sent as a browser sends it: encoded here, where each hostile value is quoted
    once for the whole sweep, unless it carries a file (multipart, as the test client does)."""
    if any(not isinstance(value, str) for value in fields.values()):
        return client.post(path, data=fields, content_type=None)
    return client.post(path, data=form_body(fields), content_type=FORM_ENCODED)


def variants(form: Form) -> list[tuple[str, dict[str, Any]]]:
    """(label, body) pairs: each field hostile in turn, then the whole form, then files. A
    query string is not sent 100,000 characters: a server refuses a request line that long
    (gunicorn past 4,094 bytes) before the portal sees it."""
    out: list[tuple[str, dict[str, Any]]] = []
    sent = [label for label in HOSTILE_TEXT if form.method == "post" or label != "huge"]
    for name in form.fields:
        for label in BY_KIND.get(form.kinds.get(name, "text"), TEXT):
            if label in sent:
                out.append((f"{name}={label}", {**form.fields, name: HOSTILE_TEXT[label]}))
    for label in WHOLE_FORM:
        if label in sent:
            out.append((f"all={label}", {name: HOSTILE_TEXT[label] for name in form.fields}))
    out.append(("nothing", {}))
    for name in form.files:
        junk = (io.BytesIO(b"MZ\x90\x00" + b"\xff" * 4096), "report.csv")
        out.append((f"{name}=junk file", {**form.fields, name: junk}))
        out.append((f"{name}=empty file", {**form.fields, name: (io.BytesIO(b""), "")}))
    return out


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"DEV_OUTBOX": False}


def with_waiting_work(app: Flask, session: Session, world: Any) -> None:
    """What makes the forms that only exist with data appear: a held question in the queue
    (its bulk checkboxes) and an unread notification (its "mark read" button)."""
    from portal.core.notifications import notify
    from portal.qa import service as qa
    from tests.factories import UserFactory
    from tests.security.world import call

    newcomer = UserFactory(organization=world.a.org, trust_level=0)
    body = "I cannot find it, see https://example.com/export"  # a new user's link: held
    call(app, session, qa.ask, newcomer, "Where is the export button?", body)
    notify(session, world.a.member, "test", "Your question has an answer.", "/questions/")
    session.flush()


def test_no_form_answers_hostile_input_with_a_500(
    app: Flask, session: Session, connection: Connection
) -> None:
    world = build(app, session)
    with_waiting_work(app, session, world)
    users = world.users()
    problems: list[str] = []
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    forms: dict[str, Form] = {}
    for role in ROLES:
        user = users.get(role)
        client = login(app.test_client(), user) if user else app.test_client()
        for key in sorted(discover(app, client, world, forms, role)):
            _group, method, path = key.split(" ")[:3]
            for label, body in variants(forms[key]):
                if user is not None:
                    login(client, user)  # a form may have signed the role out
                if method == "GET" and any(not isinstance(v, str) for v in body.values()):
                    continue  # a file has no place in a query string
                nested = connection.begin_nested()
                try:
                    if method == "GET":
                        response = client.get(path, query_string=body)
                    else:
                        response = post(client, path, body)
                    statuses[response.status_code] += 1
                    if response.status_code >= 500:
                        problems.append(f"{key} as {role} ({label}): {response.status}")
                    response.close()
                except Exception as error:  # noqa: BLE001 - TESTING re-raises what is a 500
                    problems.append(
                        f"{key} as {role} ({label}): {type(error).__name__}: {error}"[:400]
                    )
                finally:
                    nested.rollback()
                    session.expire_all()
                sent[role] += 1
    total = sum(sent.values())
    print(
        f"\nform fuzz: {len(forms)} forms, {total} requests in"
        f" {time.perf_counter() - started:.0f} s, by role"
        f" {dict(sent)}; statuses {dict(sorted(statuses.items()))}; {len(problems)} problems"
    )
    assert len(forms) > 60 and total > 1000, "the crawl found too few forms to mean anything"
    assert not problems, "\n".join(problems)


TEXT_KINDS = ("text", "textarea", "email", "url", "search")


def test_a_refused_form_comes_back_as_it_was_typed(
    app: Flask, session: Session, connection: Connection
) -> None:
    """Never lost input: every POST form with two or more text fields is sent with each field
    marked, one of them too long; a form that is refused (400 or 422) must show every other
    field's text again, so nobody retypes what they wrote."""
    world = build(app, session)
    users = world.users()
    forms: dict[str, Form] = {}
    lost: list[str] = []
    refused = 0
    for role in ROLES:
        user = users.get(role)
        client = login(app.test_client(), user) if user else app.test_client()
        for key in sorted(discover(app, client, world, forms, role)):
            _group, method, path = key.split(" ")[:3]
            form = forms[key]
            texts = [n for n, kind in form.kinds.items() if kind in TEXT_KINDS]
            if method != "POST" or len(texts) < 2:
                continue
            typed = {name: f"Typed{name.replace('_', '').replace('-', '')}Text" for name in texts}
            # A choice other than the first, so that a form drawn afresh would show another.
            chosen = {  # a list field (name[], one per row) is left to the text check
                name: values[-1]
                for name, values in form.options.items()
                if len(set(values)) > 1 and values[-1] and not name.endswith("[]")
            }
            for too_long in texts:
                if user is not None:
                    login(client, user)
                nested = connection.begin_nested()
                try:
                    response = post(
                        client, path, {**form.fields, **chosen, **typed, too_long: HUGE}
                    )
                    page = response.get_data(as_text=True)
                finally:
                    nested.rollback()
                    session.expire_all()
                if response.status_code not in (400, 422):
                    continue
                refused += 1
                lost += [
                    f"{key} as {role}: {name} lost when {too_long} was too long"
                    for name, text in typed.items()
                    if name != too_long and text not in page
                ]
                again = _Forms("http://localhost" + path)
                again.feed(page)
                again.close()
                shown = [f for f in again.forms if urlsplit(f.action).path == path]
                lost += [
                    f"{key} as {role}: choice {name}={value!r} came back as"
                    f" {shown[0].fields.get(name)!r} when {too_long} was too long"
                    for name, value in chosen.items()
                    if shown and name in shown[0].fields and shown[0].fields[name] != value
                ]
    print(f"\nrefused forms checked for what was typed: {refused}")
    assert refused > 30, "too few refusals to mean anything"
    assert not lost, "\n".join(lost)
