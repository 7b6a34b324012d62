"""The knowledge-base journey in a real Chromium against a live server: a staff member writes
an article through the form, a customer finds it from the knowledge-base home, reads it and
says it helped, and the staff member sees the comment on the article."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from portal.core.identity import Role
from tests.browser.helpers import make_org, make_user, make_vendor_org, sign_in

pytestmark = pytest.mark.browser

NewContext = Callable[[], BrowserContext]


def signed_in(new_context: NewContext, email: str) -> Page:
    page = new_context().new_page()
    sign_in(page, email)
    return page


def test_staff_writes_an_article_and_a_customer_marks_it_helpful(live_app, new_context):
    make_user(live_app, make_vendor_org(live_app), "kim@cocreate.example", "Kim Writer", Role.CSM)
    acme = make_org(live_app, "Acme Analytics", "acme")
    make_user(live_app, acme, "carla@acme.example", "Carla Customer")

    writer = signed_in(new_context, "kim@cocreate.example")
    writer.goto("/kb/")
    writer.get_by_role("link", name="New article").click()
    writer.get_by_role("textbox", name="Title").fill("Share a dashboard with your team")
    writer.get_by_role("textbox", name="Article (Markdown)").fill(
        "Open the dashboard and click **Share**.\n\n<script>alert(1)</script>"
    )
    writer.get_by_role("combobox", name="Language").select_option("en")
    writer.get_by_role("textbox", name="Tags").fill("dashboards sharing")
    writer.get_by_role("button", name="Save article").click()
    expect(writer).to_have_url(re.compile(r"/kb/articles/\d+$"))
    expect(writer.get_by_role("heading", level=1)).to_have_text("Share a dashboard with your team")
    expect(writer.locator(".article-body strong")).to_have_text("Share")
    expect(writer.locator(".article-body")).to_contain_text("<script>alert(1)</script>")
    article_url = writer.url

    reader = signed_in(new_context, "carla@acme.example")
    reader.goto("/kb/")
    newest = reader.get_by_role("region", name="Newest articles")
    newest.get_by_role("link", name="Share a dashboard with your team").click()
    expect(reader).to_have_url(article_url)
    feedback = reader.get_by_role("region", name="Was this article helpful?")
    expect(feedback.get_by_test_id("helpful-counts")).to_have_text("0 yes · 0 no")
    feedback.get_by_role("textbox", name="Comment (optional)").fill("Exactly what I needed")
    feedback.get_by_role("button", name="Yes, it helped").click()
    expect(reader.locator(".flash-messages")).to_contain_text("Thank you for your feedback.")
    feedback = reader.get_by_role("region", name="Was this article helpful?")
    expect(feedback.get_by_test_id("helpful-counts")).to_have_text("1 yes · 0 no")
    expect(feedback.get_by_test_id("your-feedback")).to_have_text("You said: Yes")

    # Changing one's mind changes the answer rather than adding one. The page that thanked
    # the reader must have finished loading: under load, CI once saw this click send nothing.
    reader.wait_for_load_state("load")
    feedback.get_by_role("button", name="No").click()
    expect(
        reader.get_by_role("region", name="Was this article helpful?").get_by_test_id(
            "helpful-counts"
        )
    ).to_have_text("0 yes · 1 no")

    writer.reload()
    expect(writer.get_by_role("region", name="Feedback comments (staff only)")).to_contain_text(
        "Exactly what I needed"
    )
