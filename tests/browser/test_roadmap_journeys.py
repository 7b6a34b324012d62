"""The roadmap journey in a real Chromium against a live server: a customer suggests an idea
and sees a similar one while typing, a moderator approves it, others vote, a product manager
moves it to planned with a response and then ships it, voters are notified, and a CSM sorts
ideas by ARR at risk.

Users, organizations, account data and one earlier idea are written through the services;
everything after that is done in the browser, through the real forms (CSRF on)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect

from cs_metrics.models import AccountProfile
from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role, User
from portal.roadmap import service
from tests.browser.helpers import make_org, make_user, sign_in

pytestmark = pytest.mark.browser

NewContext = Callable[[], BrowserContext]
TITLE = "Scheduled dashboard exports by email every week"


def vendor_user(app: Flask, email: str, name: str, role: Role) -> int:
    with app.app_context():
        org = db.session.query(Organization).filter_by(slug="vendor-rm").first()
        if org is None:
            org = Organization(name="Cocreate Staff", slug="vendor-rm", kind=OrgKind.VENDOR)
            db.session.add(org)
            db.session.commit()
        org_id = org.id
    return make_user(app, org_id, email, name, role)


def trusted(app: Flask, user_id: int, level: int = 3) -> None:
    with app.app_context():
        db.session.get(User, user_id).trust_level = level
        db.session.commit()


def account(app: Flask, org_id: int, arr: str, renewal_in_days: int | None = None) -> None:
    with app.app_context():
        db.session.add(
            AccountProfile(
                organization_id=org_id,
                arr=Decimal(arr),
                plan="enterprise",
                renewal_date=(date.today() + timedelta(days=renewal_in_days))
                if renewal_in_days is not None
                else None,
            )
        )
        db.session.commit()


def signed_in(new_context: NewContext, email: str) -> Page:
    page = new_context().new_page()
    sign_in(page, email)
    return page


def test_suggest_approve_vote_plan_ship_notify_and_sort_by_risk(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    acme = make_org(live_app, "Acme Analytics", "acme-rm")
    globex = make_org(live_app, "Globex Retail", "globex-rm")
    initech = make_org(live_app, "Initech", "initech-rm")
    make_user(live_app, acme, "nora@acme.example", "Nora New")
    gina = make_user(live_app, globex, "gina@globex.example", "Gina Globex")
    hank = make_user(live_app, initech, "hank@initech.example", "Hank Initech")
    trusted(live_app, gina)
    trusted(live_app, hank)
    vendor_user(live_app, "mona@cocreate.example", "Mona Moderator", Role.MODERATOR)
    vendor_user(live_app, "pat@cocreate.example", "Pat PM", Role.PRODUCT_MANAGER)
    vendor_user(live_app, "carl@cocreate.example", "Carl CSM", Role.CSM)
    account(live_app, globex, "500000")
    account(live_app, initech, "80000", renewal_in_days=30)  # renewing soon: at risk
    with live_app.app_context():
        earlier = service.submit_idea(
            db.session,
            db.session.get(User, gina),
            "Dashboard exports to PDF on a schedule",
            "We export by hand.",
            "dashboards",
        )
        db.session.commit()
        earlier_id = earlier.id

    # A new customer suggests an idea and sees the similar one while typing the title.
    sign_in(page, "nora@acme.example")
    page.goto("/roadmap/")
    page.get_by_role("link", name="Suggest an idea").click()
    page.wait_for_load_state("load")  # roadmap.js listens for typing once it has run
    page.get_by_label("Title").press_sequentially("Dashboard exports", delay=20)
    similar = page.locator("#similar-ideas")
    expect(similar).to_be_visible()
    expect(similar).to_contain_text("Dashboard exports to PDF on a schedule")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Describe the problem and what would help").fill(
        "Finance wants the **numbers** in their inbox."
    )
    page.get_by_label("Product area").select_option("dashboards")
    page.get_by_role("button", name="Submit your idea").click()
    expect(page).to_have_url(re.compile(r"/roadmap/ideas/\d+$"))
    idea_url = page.url
    expect(page.locator(".flash-messages")).to_contain_text("awaiting review")
    expect(page.get_by_test_id("idea-state")).to_have_text("Awaiting review")

    # The moderator approves it in the queue.
    moderator = signed_in(new_context, "mona@cocreate.example")
    moderator.goto("/moderation/queue")
    item = moderator.locator("article.mod-item", has_text=TITLE).first
    item.get_by_role("button", name="Approve", exact=True).click()
    expect(moderator.locator(".flash-messages")).to_contain_text("Approved")

    # Two other customers vote, one as critical.
    for email, level in (
        ("gina@globex.example", "Critical"),
        ("hank@initech.example", "Important"),
    ):
        voter = signed_in(new_context, email)
        voter.goto(idea_url)
        voter.get_by_label("Importance").select_option(label=level)
        voter.get_by_role("button", name="Vote", exact=True).click()
        expect(voter.locator(".flash-messages")).to_contain_text("Thank you for your vote")
        expect(voter.get_by_text(f"You voted: {level}")).to_be_visible()
    gina_page = voter  # the last voter (Hank) stays open; check counts
    expect(gina_page.get_by_test_id("vote-count")).to_have_text("2")

    # The product manager plans it with a response, then ships it with release notes.
    pm = signed_in(new_context, "pat@cocreate.example")
    pm.goto(idea_url)
    expect(pm.get_by_test_id("idea-impact")).to_contain_text("580000")
    pm.get_by_label("Status", exact=True).select_option("planned")
    pm.get_by_label("Public response").fill("Planned for **Q3**.")
    pm.get_by_role("button", name="Save status").click()
    expect(pm.locator(".flash-messages")).to_contain_text("subscribers were notified")
    pm.get_by_label("Status", exact=True).select_option("shipped")
    pm.get_by_label("Public response").fill("Shipped in 5.2.")
    pm.get_by_label("Release notes (when shipped)").fill("Exports now run **on schedule**.")
    pm.get_by_role("button", name="Save status").click()
    history = pm.get_by_test_id("status-history")
    expect(history).to_contain_text("Q3")
    expect(history).to_contain_text("Shipped in 5.2.")

    # Voters (and the author) are notified; the changelog lists it.
    gina_view = signed_in(new_context, "gina@globex.example")
    gina_view.goto("/notifications")
    expect(gina_view.locator("main")).to_contain_text(f"“{TITLE}” is now Shipped")
    expect(gina_view.locator("main")).to_contain_text(f"“{TITLE}” is now Planned")
    page.goto("/notifications")
    expect(page.locator("main")).to_contain_text(f"“{TITLE}” is now Shipped")
    page.goto("/roadmap/changelog")
    expect(page.locator("main")).to_contain_text("Exports now run on schedule")

    # A vote for the earlier idea by the big account only; staff sort by ARR at risk.
    gina_view.goto(f"/roadmap/ideas/{earlier_id}")
    gina_view.get_by_role("button", name="Vote", exact=True).click()
    csm = signed_in(new_context, "carl@cocreate.example")
    csm.goto("/roadmap/impact")
    csm.get_by_role("link", name="Revenue-weighted score").click()
    rows = csm.get_by_test_id("impact-table").locator("tbody tr")
    expect(rows.first).to_contain_text(TITLE)  # 580000 beats 500000
    csm.get_by_role("link", name="ARR at risk").click()
    expect(csm).to_have_url(re.compile(r"sort=arr_at_risk"))
    expect(rows.first).to_contain_text(TITLE)  # Initech renews within 90 days
    expect(rows.first.locator("td").nth(1)).to_have_text("80000")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("0")

    # A customer never reaches the impact view.
    assert page.goto("/roadmap/impact").status == 403
