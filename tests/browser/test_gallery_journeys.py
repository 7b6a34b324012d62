"""The gallery journey in a real Chromium against a live server: a customer uploads a template
with a manifest (held for review), a moderator previews and approves it, someone from another
organization finds it by filters and by search, downloads and rates it, and the author
publishes version 1.1 with a changelog.

Users, organizations and the CS product version are written directly; everything after that
is done in the browser through the real forms (CSRF on)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect

from cs_metrics.models import AccountProfile
from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role, User
from tests.browser.helpers import make_org, make_user, sign_in

pytestmark = pytest.mark.browser

NewContext = Callable[[], BrowserContext]
TITLE = "Retail store performance dashboard"


def manifest(version: str) -> dict:
    return {
        "name": TITLE,
        "version": version,
        "requires": {"product": ">=5.2, <6"},
        "data_sources": [{"name": "pos_sales", "type": "postgres"}],
        "parameters": [{"name": "region", "type": "string", "label": "Region"}],
        "template": {"panels": [{"title": "Sales per m2"}]},
    }


def make_moderator(app: Flask) -> int:
    with app.app_context():
        org = Organization(name="Cocreate Staff", slug="cocreate-staff", kind=OrgKind.VENDOR)
        db.session.add(org)
        db.session.commit()
        org_id = org.id
    return make_user(app, org_id, "mona@cocreate.example", "Mona Moderator", Role.MODERATOR)


def signed_in(new_context: NewContext, email: str) -> Page:
    page = new_context().new_page()
    sign_in(page, email)
    return page


def test_upload_review_find_download_rate_and_new_version(
    page: Page, live_app: Flask, new_context: NewContext, tmp_path: Path
) -> None:
    acme = make_org(live_app, "Acme Analytics", "acme")
    globex = make_org(live_app, "Globex Retail", "globex")
    nora = make_user(live_app, acme, "nora@acme.example", "Nora New")
    hank = make_user(live_app, globex, "hank@globex.example", "Hank Hill")
    make_moderator(live_app)
    with live_app.app_context():
        db.session.add(AccountProfile(organization_id=globex, product_version="5.4.2"))
        db.session.get(User, hank).trust_level = 1
        # Trusted enough to post twice a minute, not enough to skip review of uploads.
        db.session.get(User, nora).trust_level = 2
        db.session.commit()
    first = tmp_path / "retail.json"
    first.write_text(json.dumps(manifest("1.0.0")))
    second = tmp_path / "retail-1.1.json"
    second.write_text(json.dumps(manifest("1.1")))

    # A customer uploads a template with a manifest: it waits for review.
    sign_in(page, "nora@acme.example")
    page.goto("/gallery/")
    page.get_by_role("link", name="Share a template").click()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Description (Markdown)").fill("Sales per **square metre** by store.")
    page.get_by_label("Category").select_option("dashboard")
    page.get_by_label("Industry").select_option("retail")
    page.get_by_label("Tags").fill("stores kpi")
    page.locator("#file").set_input_files(str(first))
    page.get_by_label("Changelog").fill("First release.")
    page.get_by_role("button", name="Share").click()
    expect(page).to_have_url(re.compile(r"/gallery/templates/\d+$"))
    template_url = page.url
    expect(page.locator(".flash-messages")).to_contain_text("once a moderator approves it")

    finder = signed_in(new_context, "hank@globex.example")
    assert finder.goto(template_url).status == 404

    # The moderator previews the manifest and approves.
    moderator = signed_in(new_context, "mona@cocreate.example")
    moderator.goto("/moderation/queue")
    item = moderator.locator("article.mod-item").first
    expect(item).to_contain_text(TITLE)
    summary = item.get_by_test_id("manifest-summary")
    expect(summary).to_contain_text(">=5.2, <6")
    expect(summary).to_contain_text("pos_sales (postgres)")
    expect(item.get_by_test_id("preview-table")).to_contain_text("region: string")
    item.get_by_role("button", name="Approve", exact=True).click()
    expect(moderator.locator(".flash-messages")).to_contain_text("Approved")

    # Someone from another organization finds it by filters...
    finder.goto("/gallery/")
    finder.get_by_label("Industry").select_option("retail")
    finder.get_by_label("Compatible with my product version").check()
    finder.get_by_role("button", name="Filter").click()
    expect(finder.get_by_test_id("gallery-list")).to_contain_text(TITLE)
    finder.get_by_label("Industry").select_option("finance")
    finder.get_by_role("button", name="Filter").click()
    expect(finder.get_by_test_id("gallery-empty")).to_be_visible()
    # ...and by search.
    finder.goto("/search?q=retail+store+performance")
    finder.get_by_role("link", name=TITLE).first.click()
    expect(finder).to_have_url(template_url)
    expect(finder.get_by_test_id("compatibility")).to_contain_text(
        "Compatible with your version 5.4.2"
    )

    # Downloads it (an attachment) and rates it.
    with finder.expect_download() as download_info:
        finder.get_by_test_id("download").click()
    download = download_info.value
    assert download.suggested_filename == "retail.json"
    assert json.loads(Path(download.path()).read_text())["version"] == "1.0.0"
    finder.reload()
    expect(finder.get_by_test_id("used-by")).to_have_text("Used by 1 organization")
    finder.get_by_label("Your rating").select_option("4")
    finder.get_by_role("button", name="Rate").click()
    expect(finder.locator(".flash-messages")).to_contain_text("Thanks for rating.")
    expect(finder.get_by_test_id("rating-summary")).to_contain_text("4.0 out of 5 from 1 ratings")

    # The author publishes 1.1 with a changelog; the moderator approves; everyone sees it.
    page.goto(template_url)
    page.get_by_role("link", name="Publish a new version").click()
    page.locator("#file").set_input_files(str(second))
    page.get_by_label("Changelog").fill("Adds a **region** parameter.")
    page.get_by_role("button", name="Publish version").click()
    expect(page.locator(".flash-messages")).to_contain_text("Version 1.1.0 will appear")
    moderator.goto("/moderation/queue")
    item = moderator.locator("article.mod-item").first
    expect(item).to_contain_text("1.1.0")
    item.get_by_role("button", name="Approve", exact=True).click()
    expect(moderator.locator(".flash-messages")).to_contain_text("Approved")
    finder.goto(template_url)
    expect(finder.get_by_test_id("download")).to_have_text("Download 1.1.0")
    expect(finder.get_by_test_id("versions")).to_contain_text("Adds a region parameter.")
