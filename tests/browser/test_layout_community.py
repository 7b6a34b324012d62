"""How the community pages are laid out, where only a browser can tell: at phone width (390 px)
and at a desktop's (1366 px), in English and in Chinese, in a real Chromium against the live
server."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect

from portal.core.identity import Role
from tests.browser.helpers import make_org, make_user, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def lines_of(element: Locator) -> int:
    """How many lines the element's text takes."""
    return element.evaluate(
        """e => { const r = document.createRange(); r.selectNodeContents(e);
                  const rects = [...r.getClientRects()].filter(b => b.width > 0);
                  return new Set(rects.map(b => Math.round(b.top))).size; }"""
    )


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_members_table_scrolls_instead_of_squeezing_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "华信科技", "huaxin")
    make_user(live_app, org_id, "wang@huaxin.example", "王芳", Role.ORG_ADMIN, locale="zh_CN")
    make_user(live_app, org_id, "li@huaxin.example", "李雷", locale="zh_CN")
    page.set_viewport_size(PHONE)
    sign_in(page, "wang@huaxin.example")
    page.goto(f"/orgs/{org_id}/members")
    row = page.locator('tr[data-member="li@huaxin.example"]')
    expect(row.get_by_role("button", name="停用")).to_be_visible()
    # The role menu showed no role at all, squeezed to its arrow...
    box = row.get_by_label("角色").bounding_box()
    assert box is not None and box["width"] >= 120
    # ...and "停用", "删除账户", "更改" and "已启用" took a line per character.
    for name in ("停用", "更改"):
        assert lines_of(row.get_by_role("button", name=name)) == 1, name
    assert lines_of(row.get_by_role("link", name="删除账户")) == 1
    assert lines_of(row.get_by_role("cell", name="已启用")) == 1
    # The table scrolls inside its box; the page itself does not scroll sideways (the
    # visually hidden "Actions" header used to stick out of it).
    assert page.locator(".table-responsive").evaluate("t => t.scrollWidth > t.clientWidth")
    assert page_width(page) <= PHONE["width"]


def test_an_english_members_page_does_not_scroll_sideways_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    make_user(live_app, org_id, "alice@acme.example", "Alice Admin", Role.ORG_ADMIN)
    make_user(live_app, org_id, "bob@acme.example", "Bob Builder")
    page.set_viewport_size(PHONE)
    sign_in(page, "alice@acme.example")
    page.goto(f"/orgs/{org_id}/members")
    expect(page.get_by_role("button", name="Deactivate")).to_be_attached()
    assert page_width(page) <= PHONE["width"]
