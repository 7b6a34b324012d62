"""The moderation journeys, in a real Chromium against a live server: a new member's profile
text waits for review; a moderator approves or rejects it with the keyboard alone; three new
members' flags hide a published text until a moderator restores it; and a member watches
themselves reach trust level 1.

Users, organizations and settings are written through the services; everything a person
does after that goes through the browser. The about texts are plain words, so nothing here
depends on how Markdown is rendered."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Locator, Page, expect

from moderation.models import ModerationSetting
from portal.core.db import db
from portal.core.identity import Role, User
from tests.browser.helpers import load_user, make_org, make_user, make_vendor_org, sign_in

pytestmark = pytest.mark.browser

NewContext = Callable[[], BrowserContext]

# --- test data ----------------------------------------------------------------------------


def make_moderator(app: Flask) -> int:
    return make_user(
        app, make_vendor_org(app), "mona@cocreate.example", "Mona Moderator", Role.MODERATOR
    )


def set_trust_level(app: Flask, user_id: int, level: int) -> None:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        user.trust_level = level
        db.session.commit()


# --- what a person does -------------------------------------------------------------------


def signed_in(new_context: NewContext, email: str) -> Page:
    """A browser of the person's own, signed in."""
    page = new_context().new_page()
    sign_in(page, email)
    return page


def flash(page: Page) -> Locator:
    return page.locator(".flash-messages")


def write_about(page: Page, display_name: str, text: str) -> None:
    """From anywhere: the name in the navigation leads to /profile, where the text is saved."""
    page.get_by_role("navigation").get_by_role("link", name=display_name).click()
    expect(page).to_have_url(re.compile(r"/profile$"))
    page.get_by_role("textbox", name="About you").fill(text)
    page.get_by_role("button", name="Save about text").click()
    expect(page).to_have_url(re.compile(r"/profile$"))


def open_queue(page: Page, expected_count: int) -> Locator:
    """Through the navigation's Manage menu and its Review queue link, whose badge counts what
    waits.

    The menu and the queue's keys are Bootstrap's and app.js's, loaded at the end of the body:
    a click or key press that comes before them does nothing, so each page is waited for until
    loaded. On a busy machine the navigation's markup is there well before its scripts ran."""
    nav = page.get_by_role("navigation")
    page.wait_for_load_state("load")
    nav.get_by_role("button", name="Manage").click()
    expect(nav.get_by_test_id("queue-count")).to_have_text(str(expected_count))
    nav.get_by_role("link", name="Review queue").click()
    expect(page).to_have_url(re.compile(r"/moderation/queue$"))
    expect(page.get_by_test_id("queue-total")).to_have_text(str(expected_count))
    page.wait_for_load_state("load")
    return page.locator("article.mod-item")


def open_notifications(page: Page, unread: int) -> None:
    bell = page.get_by_role("navigation").get_by_test_id("bell")
    expect(bell.get_by_label(f"{unread} unread")).to_have_text(str(unread))
    bell.click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()


# --- the journeys -------------------------------------------------------------------------


def test_new_members_about_text_awaits_review(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    author_id = make_user(live_app, org_id, "nora@acme.example", "Nora New")
    make_user(live_app, org_id, "omar@acme.example", "Omar Other")
    assert load_user(live_app, author_id).trust_level == 0

    sign_in(page, "nora@acme.example")
    write_about(page, "Nora New", "I build sales dashboards for the whole region.")
    expect(flash(page)).to_contain_text("Your profile text is awaiting review by a moderator.")
    expect(page.get_by_test_id("about-state")).to_have_text("Awaiting review")
    expect(page.get_by_role("textbox", name="About you")).to_have_value(
        "I build sales dashboards for the whole region."
    )

    # Her own public profile shows the text with a notice that only she can see it.
    page.get_by_role("link", name="View your profile").click()
    expect(page).to_have_url(re.compile(rf"/users/{author_id}$"))
    notice = page.locator(".alert-info")
    expect(notice).to_contain_text("Awaiting review")
    expect(notice).to_contain_text("Only you can see this until a moderator approves it.")
    expect(page.locator(".about-text")).to_contain_text("I build sales dashboards")
    expect(page.get_by_text("Flag this text")).to_have_count(0)  # not one's own

    # A colleague opening the same page sees her name, but neither the text nor the notice.
    colleague = signed_in(new_context, "omar@acme.example")
    colleague.goto(f"/users/{author_id}")
    expect(colleague.get_by_role("heading", name="Nora New")).to_be_visible()
    expect(colleague.get_by_text("sales dashboards")).to_have_count(0)
    expect(colleague.locator(".about-text")).to_have_count(0)
    expect(colleague.get_by_text("Awaiting review")).to_have_count(0)
    expect(colleague.get_by_text("Flag this text")).to_have_count(0)


def test_moderator_approves_with_the_keyboard(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    author_id = make_user(live_app, org_id, "nora@acme.example", "Nora New")
    make_user(live_app, org_id, "omar@acme.example", "Omar Other")
    make_moderator(live_app)

    author = signed_in(new_context, "nora@acme.example")
    write_about(author, "Nora New", "I build sales dashboards for the whole region.")
    colleague = signed_in(new_context, "omar@acme.example")
    colleague.goto(f"/users/{author_id}")
    expect(colleague.get_by_text("sales dashboards")).to_have_count(0)

    sign_in(page, "mona@cocreate.example")
    items = open_queue(page, 1)
    expect(items).to_have_count(1)
    item = items.first
    expect(item).to_contain_text("Awaiting review")
    expect(item).to_contain_text("New user")  # why it was held
    expect(item).to_contain_text("Nora New · Acme Analytics · trust level 0")
    expect(item.locator(".mod-preview")).to_contain_text("I build sales dashboards")

    # Keyboard only: j focuses the first item, a approves it.
    page.keyboard.press("j")
    expect(item).to_be_focused()
    page.keyboard.press("a")
    expect(flash(page)).to_contain_text("Approved.")
    expect(page).to_have_url(re.compile(r"/moderation/queue\??$"))
    expect(page.get_by_text("The queue is empty. Nice work!")).to_be_visible()
    expect(page.locator("article.mod-item")).to_have_count(0)
    expect(page.get_by_role("navigation").get_by_test_id("queue-count")).to_have_text("0")

    # The colleague now reads the text.
    colleague.reload()
    expect(colleague.locator(".about-text")).to_contain_text(
        "I build sales dashboards for the whole region."
    )
    expect(colleague.get_by_text("Flag this text")).to_be_visible()

    # The author is told, and the notification links to her published profile.
    author.reload()
    expect(author.get_by_test_id("about-state")).to_have_text("Published")
    open_notifications(author, 1)
    note = author.get_by_role("link", name="Your profile text was approved and is now visible.")
    expect(note).to_be_visible()
    note.click()
    expect(author).to_have_url(re.compile(rf"/users/{author_id}$"))
    expect(author.locator(".about-text")).to_contain_text("I build sales dashboards")
    expect(author.locator(".alert-info")).to_have_count(0)  # no longer awaiting review


def test_moderator_rejects_with_the_keyboard(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    author_id = make_user(live_app, org_id, "sam@acme.example", "Sam Seller")
    make_moderator(live_app)
    reason = "Advertising is not allowed in profiles."

    author = signed_in(new_context, "sam@acme.example")
    write_about(author, "Sam Seller", "Buy cheap watches at my shop today")

    sign_in(page, "mona@cocreate.example")
    item = open_queue(page, 1).first
    expect(item).to_be_focused()  # the queue puts the first item under the keyboard
    page.keyboard.press("r")
    reason_field = item.get_by_label("Reason", exact=True)
    expect(reason_field).to_be_focused()
    expect(reason_field).to_have_value("")  # the r itself is not typed
    page.keyboard.type(reason)
    page.keyboard.press("Enter")
    expect(flash(page)).to_contain_text("Rejected.")
    expect(page.get_by_text("The queue is empty. Nice work!")).to_be_visible()

    author.reload()
    expect(author.get_by_test_id("about-state")).to_have_text("Not published")
    open_notifications(author, 1)
    expect(author.locator(".list-group-item")).to_contain_text(
        f"Your profile text was not published: {reason}"
    )
    # Nobody else sees the rejected text, nor does its author on the public page.
    author.goto(f"/users/{author_id}")
    expect(author.get_by_text("cheap watches")).to_have_count(0)


def test_three_flags_hide_text_until_a_moderator_restores_it(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    other_id = make_org(live_app, "Globex Retail", "globex")
    author_id = make_user(live_app, org_id, "tara@acme.example", "Tara Trusted")
    set_trust_level(live_app, author_id, 2)
    flaggers = ["fay@acme.example", "finn@globex.example", "flo@globex.example"]
    for index, email in enumerate(flaggers):
        make_user(live_app, org_id if index == 0 else other_id, email, f"Flagger {index}")
    make_user(live_app, other_id, "vic@globex.example", "Vic Viewer")
    make_moderator(live_app)
    text = "We migrated our warehouse reports in a single weekend."

    author = signed_in(new_context, "tara@acme.example")
    write_about(author, "Tara Trusted", text)
    expect(flash(author)).to_contain_text("Your profile text is published.")
    expect(author.get_by_test_id("about-state")).to_have_text("Published")

    viewer = signed_in(new_context, "vic@globex.example")
    viewer.goto(f"/users/{author_id}")
    expect(viewer.locator(".about-text")).to_contain_text(text)

    for index, (email, reason) in enumerate(
        zip(flaggers, ["Spam", "Offensive", "Off-topic"], strict=True)
    ):
        flagger = signed_in(new_context, email)
        flagger.goto(f"/users/{author_id}")
        expect(flagger.locator(".about-text")).to_contain_text(text)
        flagger.get_by_text("Flag this text").click()  # opens the disclosure
        flagger.get_by_label(reason, exact=True).check()
        flagger.get_by_role("button", name="Flag", exact=True).click()
        expect(flash(flagger)).to_contain_text("Thank you. The moderators will look at it.")
        expect(flagger).to_have_url(re.compile(rf"/users/{author_id}$"))
        if index == 1:  # two new members' flags are not enough to hide it
            viewer.reload()
            expect(viewer.locator(".about-text")).to_contain_text(text)
    expect(flagger.get_by_text(text)).to_have_count(0)  # the third flag hid it at once

    viewer.reload()
    expect(viewer.get_by_role("heading", name="Tara Trusted")).to_be_visible()
    expect(viewer.get_by_text(text)).to_have_count(0)
    expect(viewer.get_by_text("Flag this text")).to_have_count(0)

    sign_in(page, "mona@cocreate.example")
    item = open_queue(page, 1).first
    expect(item.locator(".badge", has_text="Hidden by flags")).to_be_visible()
    expect(item.locator(".mod-preview")).to_contain_text(text)
    item.get_by_role("button", name="Restore").click()
    expect(flash(page)).to_contain_text("Restored.")
    expect(page.get_by_text("The queue is empty. Nice work!")).to_be_visible()

    viewer.reload()
    expect(viewer.locator(".about-text")).to_contain_text(text)


def test_member_watches_themselves_reach_trust_level_one(page: Page, live_app: Flask) -> None:
    with live_app.app_context():
        db.session.add(
            ModerationSetting(
                key="trust",
                value={"1": {"minutes_since_sign_up": 0, "items_read": 2, "days_visited": 1}},
            )
        )
        db.session.commit()
    org_id = make_org(live_app, "Acme Analytics", "acme")
    reader_id = make_user(live_app, org_id, "rita@acme.example", "Rita Reader")
    others = [make_user(live_app, org_id, f"member{n}@acme.example", f"Member {n}") for n in (1, 2)]

    sign_in(page, "rita@acme.example")  # today's visit, through the sign-in activity
    page.get_by_role("navigation").get_by_role("link", name="Rita Reader").click()
    expect(page.get_by_test_id("trust-level")).to_have_text("0")
    next_level = page.get_by_test_id("trust-next")
    expect(next_level).to_contain_text("To reach trust level 1:")
    expect(next_level.get_by_role("listitem")).to_have_text(["Posts and profiles read: 0 / 2"])

    for n, other_id in enumerate(others, start=1):
        page.goto(f"/users/{other_id}")
        expect(page.get_by_role("heading", name=f"Member {n}")).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name="Rita Reader").click()
    expect(page.get_by_test_id("trust-level")).to_have_text("1")
    expect(page.get_by_test_id("trust-next")).to_contain_text("To reach trust level 2:")
    assert load_user(live_app, reader_id).trust_level == 1

    # The promotion was kept: the public profile says so too.
    page.get_by_role("link", name="View your profile").click()
    expect(page.get_by_text("Acme Analytics · trust level 1")).to_be_visible()
