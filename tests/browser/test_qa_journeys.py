"""The Q&A journey in a real Chromium against a live server: a new customer asks (held for
review), a moderator approves it in the queue, a colleague from another company answers, the
asker accepts the answer and marks it helpful, and another member votes it up.

Users and organizations are written through the services; everything after that is done in the
browser, through the real forms (CSRF on)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from flask import Flask
from PIL import Image
from playwright.sync_api import BrowserContext, Locator, Page, expect

from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role, User
from tests.browser.helpers import make_org, make_user, sign_in

pytestmark = pytest.mark.browser

NewContext = Callable[[], BrowserContext]
TITLE = "How do I share a dashboard with our finance team?"


def make_moderator(app: Flask) -> int:
    with app.app_context():
        org = Organization(name="Cocreate Staff", slug="cocreate-staff", kind=OrgKind.VENDOR)
        db.session.add(org)
        db.session.commit()
        org_id = org.id
    return make_user(app, org_id, "mona@cocreate.example", "Mona Moderator", Role.MODERATOR)


def trusted(app: Flask, user_id: int, level: int = 2) -> None:
    with app.app_context():
        db.session.get(User, user_id).trust_level = level
        db.session.commit()


def signed_in(new_context: NewContext, email: str) -> Page:
    page = new_context().new_page()
    sign_in(page, email)
    return page


def test_ask_review_answer_accept_vote_and_helpful(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    acme = make_org(live_app, "Acme Analytics", "acme")
    globex = make_org(live_app, "Globex Retail", "globex")
    make_user(live_app, acme, "nora@acme.example", "Nora New")
    trusted(live_app, make_user(live_app, globex, "gina@globex.example", "Gina Globex"))
    trusted(live_app, make_user(live_app, globex, "hank@globex.example", "Hank Hill"))
    make_moderator(live_app)

    # A new member asks: the question waits for review, and says so to her alone.
    sign_in(page, "nora@acme.example")
    page.goto("/questions/")
    page.get_by_role("link", name="Ask a question").click()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Details").fill("Finance should **see** it but not edit it.")
    page.get_by_label("Tags").fill("Dashboards sharing")
    page.get_by_label("Product area").select_option("dashboards")
    page.get_by_role("button", name="Post your question").click()
    expect(page).to_have_url(re.compile(r"/questions/\d+$"))
    question_url = page.url
    expect(page.locator(".flash-messages")).to_contain_text("awaiting review")
    expect(page.get_by_test_id("question-state")).to_have_text("Awaiting review")
    expect(page.locator(".qa-body strong")).to_have_text("see")

    answerer = signed_in(new_context, "gina@globex.example")
    assert answerer.goto(question_url).status == 404

    # The moderator approves it in the queue.
    moderator = signed_in(new_context, "mona@cocreate.example")
    moderator.goto("/moderation/queue")
    item = moderator.locator("article.mod-item").first
    expect(item).to_contain_text(TITLE)
    item.get_by_role("button", name="Approve", exact=True).click()
    expect(moderator.locator(".flash-messages")).to_contain_text("Approved")

    # Someone from another company answers; it is published at once (trusted member).
    answerer.goto(question_url)
    expect(answerer.get_by_role("heading", name=TITLE)).to_be_visible()
    answerer.get_by_role("textbox", name="Your answer").fill(
        "Open *Share* and choose **View only** for the group."
    )
    answerer.get_by_role("button", name="Post your answer").click()
    expect(answerer.locator(".flash-messages")).to_contain_text("Your answer is published.")
    answer = answerer.get_by_test_id("answer").first
    expect(answer).to_contain_text("View only")
    expect(answer.get_by_role("button", name="Upvote")).to_have_count(0)  # not one's own

    # The asker accepts it and says it helped.
    page.reload()
    answer = page.get_by_test_id("answer").first
    answer.get_by_role("button", name="Accept this answer").click()
    expect(page.locator(".flash-messages")).to_contain_text("You accepted this answer.")
    answer = page.get_by_test_id("answer").first
    expect(answer.get_by_test_id("accepted")).to_have_text("Accepted answer")
    answer.get_by_role("button", name="This helped me").click()
    answer = page.get_by_test_id("answer").first
    expect(answer.get_by_test_id("helped")).to_have_text("helped 1 person in 1 organization")
    expect(answer.get_by_role("button", name="This helped me")).to_have_count(0)

    # Another member votes the answer up, then takes the vote back.
    voter = signed_in(new_context, "hank@globex.example")
    voter.goto(question_url)
    answer = voter.get_by_test_id("answer").first
    answer.get_by_role("button", name="Upvote").click()
    answer = voter.get_by_test_id("answer").first
    expect(answer.get_by_test_id("score")).to_have_text("1")
    expect(answer.get_by_role("button", name="Upvote")).to_have_attribute("aria-pressed", "true")
    answer.get_by_role("button", name="Upvote").click()
    expect(voter.get_by_test_id("answer").first.get_by_test_id("score")).to_have_text("0")

    # The list shows it answered, with the accepted answer marked.
    voter.goto("/questions/?sort=votes")
    row = voter.locator(f'li[data-question-id="{question_url.rsplit("/", 1)[1]}"]')
    expect(row).to_contain_text(TITLE)
    expect(row).to_contain_text("1 answer")


PREVIEWED = (
    "Embed the **chart** with [the guide](https://example.com/embed).\n\n"
    '<img src=x onerror="window.previewed = 1">\n\n'
    "<script>window.previewed = 2</script>\n\n"
    '![logo](https://example.com/a.png" onerror="window.previewed = 3)'
)


def test_preview_shows_the_question_as_it_will_be_published(page: Page, live_app: Flask) -> None:
    acme = make_org(live_app, "Acme Analytics", "acme")
    trusted(live_app, make_user(live_app, acme, "tess@acme.example", "Tess Trusted"))
    sign_in(page, "tess@acme.example")
    page.goto("/questions/ask")
    page.get_by_label("Title").fill("How do I embed a chart in a wiki page?")
    details = page.get_by_label("Details")
    details.fill(PREVIEWED)
    page.get_by_label("Tags").fill("embedding")

    page.get_by_role("button", name="Preview", exact=True).click()
    preview = page.locator("[data-markdown-output]")
    expect(preview.locator("strong")).to_have_text("chart")
    expect(preview.get_by_role("link", name="the guide")).to_have_attribute(
        "rel", "nofollow ugc noopener"
    )
    expect(details).to_be_hidden()
    shown = preview.inner_html()
    assert page.evaluate("window.previewed") is None  # nothing the writer typed ran

    page.get_by_role("button", name="Write", exact=True).click()
    expect(details).to_be_visible()
    expect(details).to_have_value(PREVIEWED)

    # A screenshot, added with the button: its Markdown lands at the cursor (the end here).
    page.get_by_text("Add image").set_input_files(
        files=[{"name": "wiki chart.png", "mimeType": "image/png", "buffer": png(120, 80)}]
    )
    expect(details).to_have_value(
        re.compile(r"\n\n!\[wiki chart\]\(/uploads/[0-9a-f]{32}\.png\)\n\n$")
    )
    page.get_by_text("Add image").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just text"}]
    )
    expect(page.get_by_role("status")).to_contain_text("not an image the portal can show")
    page.get_by_role("button", name="Preview", exact=True).click()
    assert loaded_width(preview.get_by_role("img", name="wiki chart")) == 120
    shown = preview.inner_html()

    page.get_by_role("button", name="Post your question").click()
    expect(page).to_have_url(re.compile(r"/questions/\d+$"))
    assert page.locator(".qa-body").inner_html() == shown
    shot = page.locator(".qa-body").get_by_role("img", name="wiki chart")
    assert loaded_width(shot) == 120
    assert page.evaluate("window.previewed") is None
    with page.context.expect_page() as opened:  # full size, in a tab of its own
        shot.click()
    opened.value.wait_for_load_state()
    assert opened.value.url.endswith(shot.get_attribute("src"))


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(out, "PNG")
    return out.getvalue()


def loaded_width(image: Locator) -> int:
    """The width the browser decoded: 0 if the image did not load."""
    expect(image).to_have_js_property("complete", True)
    return image.evaluate("img => img.naturalWidth")


def test_a_draft_survives_a_reload_and_goes_when_sent(page: Page, live_app: Flask) -> None:
    acme = make_org(live_app, "Acme Analytics", "acme")
    trusted(live_app, make_user(live_app, acme, "tess@acme.example", "Tess Trusted"))
    make_user(live_app, acme, "ned@acme.example", "Ned Next")
    sign_in(page, "tess@acme.example")
    page.goto("/questions/ask")
    details = page.get_by_label("Details")
    details.fill("Half-written: how do exports handle")
    page.reload()  # leaving the page saves what the last keystrokes had not yet saved
    expect(details).to_have_value("Half-written: how do exports handle")
    note = page.get_by_role("status").filter(has_text="Your unsent draft is back.")
    expect(note).to_be_visible()
    note.get_by_role("button", name="Discard it").click()
    expect(details).to_have_value("")
    page.reload()
    expect(details).to_have_value("")

    details.fill("How do exports handle Chinese column names?")
    page.reload()
    page.get_by_label("Title").fill("How do exports handle Chinese column names?")
    page.get_by_label("Tags").fill("exports")
    page.get_by_role("button", name="Post your question").click()
    expect(page).to_have_url(re.compile(r"/questions/\d+$"))
    page.goto("/questions/ask")
    expect(details).to_have_value("")

    # A draft left behind does not follow the next person to sign in on this browser.
    details.fill("Something private about our renewal")
    page.reload()
    expect(details).to_have_value("Something private about our renewal")
    page.locator('form[action="/sign-out"] button').click()
    sign_in(page, "ned@acme.example")
    page.goto("/questions/ask")
    expect(details).to_have_value("")
    page.locator('form[action="/sign-out"] button').click()
    sign_in(page, "tess@acme.example")
    page.goto("/questions/ask")
    expect(details).to_have_value("")
