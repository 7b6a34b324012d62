"""The account journeys a person takes, in a real Chromium against a live server: join by
invitation, sign up on a verified domain, switch to Chinese, reset a password, and be kept out
of another organization's admin pages; and the navigation bar fitting every screen."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect

from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role
from tests.browser.helpers import ARTIFACTS, load_user, mailed_link, make_org, make_user, sign_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "copper-meadow-signal-93"


def test_join_by_invitation(
    page: Page, live_app: Flask, new_context: Callable[[], BrowserContext]
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    make_user(live_app, org_id, "alice@acme.example", "Alice Admin", Role.ORG_ADMIN)

    # The admin invites someone from the Members page.
    sign_in(page, "alice@acme.example")
    page.get_by_role("navigation").get_by_role("link", name="Members").click()
    expect(page).to_have_url(re.compile(rf"/orgs/{org_id}/members$"))
    invite = page.locator("form", has=page.get_by_role("button", name="Send invitation"))
    invite.get_by_label("Email").fill("Carol@Acme.example")
    invite.get_by_label("Role").select_option("member")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to Carol@Acme.example")
    open_invitations = page.locator(".list-group-item")
    expect(open_invitations.filter(has_text="carol@acme.example")).to_have_count(1)

    # The invitee, in a browser of her own, follows the mailed link and joins.
    guest = new_context().new_page()
    link = mailed_link(guest, "carol@acme.example", "/invitations/")
    guest.goto(link)
    expect(guest.get_by_role("heading", name="Join Acme Analytics")).to_be_visible()
    guest.get_by_label("Your name").fill("Carol Member")
    guest.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    guest.get_by_label("Repeat password").fill(NEW_PASSWORD)
    guest.get_by_role("button", name="Join").click()

    expect(guest.get_by_role("status")).to_contain_text("Welcome to Acme Analytics!")
    expect(guest.get_by_role("heading", name="Welcome back, Carol Member")).to_be_visible()
    expect(guest.get_by_role("button", name="Sign out")).to_be_visible()
    # A member, not an admin: no Members link in the navigation.
    expect(guest.get_by_role("navigation").get_by_role("link", name="Members")).to_have_count(0)

    # The admin now sees her among the members, and the invitation is no longer open.
    page.reload()
    expect(page.locator('tr[data-member="carol@acme.example"]')).to_contain_text("Carol Member")
    expect(open_invitations).to_have_count(0)


def test_sign_up_on_verified_domain_and_confirm(page: Page, live_app: Flask) -> None:
    make_org(live_app, "Globex Retail", "globex", domain="globex.example")

    page.goto("/")
    page.get_by_role("navigation").get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill("dana@globex.example")
    page.get_by_label("Your name").fill("Dana Doe")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("dana@globex.example")

    page.goto(mailed_link(page, "dana@globex.example", "/confirm/"))
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    expect(page.get_by_role("status")).to_contain_text(
        "Thank you, your email address is confirmed."
    )

    sign_in(page, "dana@globex.example", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome back, Dana Doe")).to_be_visible()
    expect(page.get_by_text("Globex Retail on Cocreate")).to_be_visible()
    expect(page.get_by_text("Please confirm your email address")).to_have_count(0)


def _switch_to_chinese(page: Page, live_app: Flask) -> int:
    org_id = make_org(live_app, "Huaxin Tech", "huaxin")
    user_id = make_user(live_app, org_id, "li@huaxin.example", "Li Na")
    sign_in(page, "li@huaxin.example")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.locator(".locale-switcher").get_by_role("button", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    return user_id


def test_switch_to_chinese(page: Page, live_app: Flask) -> None:
    user_id = _switch_to_chinese(page, live_app)

    switcher = page.locator(".locale-switcher")
    chinese = switcher.get_by_role("button", name="简体中文")
    english = switcher.get_by_role("button", name="English")
    expect(chinese).to_have_attribute("aria-current", "true")
    expect(chinese).to_have_class(re.compile(r"\bbtn-light\b"))
    expect(english).not_to_have_attribute("aria-current", "true")
    expect(english).to_have_class(re.compile(r"\bbtn-outline-light\b"))

    # The choice is the profile's language: it holds on the next page and in the database.
    page.goto("/profile")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert load_user(live_app, user_id).locale == "zh_CN"

    # And back.
    page.locator(".locale-switcher").get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_url(re.compile(r"/profile$"))


def test_chinese_strings_shown(page: Page, live_app: Flask) -> None:
    """Needs the zh_CN catalog (portal/translations/zh_CN/LC_MESSAGES/messages.po)."""
    _switch_to_chinese(page, live_app)
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()


def test_language_chosen_before_signing_up_is_kept(page: Page, live_app: Flask) -> None:
    """A visitor who picks 简体中文 and then signs up gets a Chinese profile. Fields are found
    by id, so this test does not depend on the Chinese catalog."""
    make_org(live_app, "Huaxin Tech", "huaxin", domain="huaxin.example")

    page.goto("/sign-up")
    page.locator(".locale-switcher").get_by_role("button", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page).to_have_url(re.compile(r"/sign-up\??$"))
    page.locator("#email").fill("wang@huaxin.example")
    page.locator("#display_name").fill("王伟")
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#confirm").fill(NEW_PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.goto(mailed_link(page, "wang@huaxin.example", "/confirm/"))

    assert load_user(live_app, email="wang@huaxin.example").locale == "zh_CN"
    sign_in(page, "wang@huaxin.example", NEW_PASSWORD)
    page.goto("/profile")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#locale")).to_have_value("zh_CN")  # what saving the profile keeps


def test_reset_password(page: Page, live_app: Flask) -> None:
    org_id = make_org(live_app, "Initech Finance", "initech")
    make_user(live_app, org_id, "peter@initech.example", "Peter Gibbons")

    page.goto("/sign-in")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("peter@initech.example")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    link = mailed_link(page, "peter@initech.example", "/reset-password/")
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    expect(page.get_by_role("status")).to_contain_text("Your password was changed.")

    sign_in(page, "peter@initech.example", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome back, Peter Gibbons")).to_be_visible()

    # The link worked once: the password it was for is gone.
    response = page.goto(link)
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_contain_text(
        "This link has already been used or is no longer valid."
    )


def test_other_organizations_admin_page_is_not_found(page: Page, live_app: Flask) -> None:
    own_id = make_org(live_app, "Acme Analytics", "acme")
    other_id = make_org(live_app, "Globex Retail", "globex")
    make_user(live_app, own_id, "alice@acme.example", "Alice Admin", Role.ORG_ADMIN)
    make_user(live_app, other_id, "gina@globex.example", "Gina Admin", Role.ORG_ADMIN)

    sign_in(page, "alice@acme.example")
    response = page.goto(f"/orgs/{own_id}/members")
    assert response is not None and response.status == 200

    response = page.goto(f"/orgs/{other_id}/members")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_text("Globex")).to_have_count(0)
    expect(page.get_by_text("gina@globex.example")).to_have_count(0)


def test_pages_load_everything_they_ask_for(page: Page, live_app: Flask) -> None:
    """No request of a page's fails, the icon the browser asks for by itself included: each
    failure is a console error in the reader's browser (and was a full 404 page rendered)."""
    org_id = make_org(live_app, "Acme Analytics", "acme")
    make_user(live_app, org_id, "alice@acme.example", "Alice Admin", Role.ORG_ADMIN)
    failed: list[str] = []
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    page.on(
        "response", lambda r: failed.append(f"{r.url}: {r.status}") if r.status >= 400 else None
    )
    # A request the test's own next navigation cut short (the icon, fetched after the page
    # loaded) is ERR_ABORTED: not a failure a reader would see.
    page.on(
        "requestfailed",
        lambda r: (
            failed.append(f"{r.url}: {r.failure}") if r.failure != "net::ERR_ABORTED" else None
        ),
    )

    sign_in(page, "alice@acme.example")
    for path in ["/", "/questions/", "/roadmap/", f"/orgs/{org_id}/members"]:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)  # the icon is fetched after the page has loaded
    assert failed == []


def test_sign_in_page_at_phone_and_desktop_width(page: Page, live_app: Flask) -> None:
    """Screenshots saved for people to look at (test-artifacts/), not compared to anything."""
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width, height in [("phone", 390, 844), ("desktop", 1280, 800)]:
        page.set_viewport_size({"width": width, "height": height})
        page.goto("/sign-in")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        path = ARTIFACTS / f"sign-in-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    # On a phone the navigation folds behind the toggler, and Bootstrap's script (served
    # from our own origin under the CSP) opens it.
    page.set_viewport_size({"width": 390, "height": 844})
    switcher = page.locator(".locale-switcher").get_by_role("button", name="简体中文")
    expect(switcher).to_be_hidden()
    page.get_by_role("button", name="Toggle navigation").click()
    expect(switcher).to_be_visible()


def test_navigation_fits_from_phone_to_wide_screen_in_both_languages(
    page: Page, live_app: Flask
) -> None:
    """The vendor admin has the most entries. At no width does the bar make the page wider
    than the window or wrap a label onto a second line, and Sign out is on screen: on the bar
    from xl (1200px) up, behind the toggler below."""
    with live_app.app_context():
        vendor = Organization(name="Cocreate Software", slug="vendor", kind=OrgKind.VENDOR)
        db.session.add(vendor)
        db.session.commit()
        vendor_id = vendor.id
    make_user(live_app, vendor_id, "vera@vendor.example", "Vera Admin", Role.VENDOR_ADMIN)
    sign_in(page, "vera@vendor.example")
    nav = page.get_by_role("navigation", name=re.compile("Main navigation|主导航"))
    toggler = nav.locator(".navbar-toggler")
    for language, lang, sign_out in [
        ("English", "en", "Sign out"),
        ("简体中文", "zh-CN", "退出登录"),
    ]:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.locator(".locale-switcher").get_by_role("button", name=language).click()
        expect(page.locator("html")).to_have_attribute("lang", lang)
        # Measure the laid-out page: its stylesheets and fonts, not the HTML as it arrives.
        page.wait_for_load_state("load")
        page.evaluate("document.fonts.ready.then(() => true)")
        for width in (1920, 1440, 1200, 1024, 360):  # widest first: the toggler opens once
            page.set_viewport_size({"width": width, "height": 800})
            page_width, window_width = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert page_width <= window_width, (language, width, page_width)
            if width == 1024:
                toggler.click()
            elif width >= 1200:
                bar = nav.bounding_box()
                assert bar and bar["height"] < 70, (language, width, bar)  # one row, no wrapping
            button = nav.get_by_role("button", name=sign_out)
            expect(button).to_be_visible()
            box = button.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (language, width)
    # The staff entries wait in one menu.
    nav.get_by_role("button", name="管理").click()
    expect(nav.get_by_role("link", name="审核队列")).to_be_in_viewport()
