"""How pages are laid out, where only a browser can tell: at phone width (390 px) and at a
desktop's (1366 px), in a real Chromium against the live server."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role
from tests.browser.helpers import make_user, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def _vendor(app: Flask) -> int:
    with app.app_context():
        org = Organization(name="Cocreate Staff", slug="staff", kind=OrgKind.VENDOR)
        db.session.add(org)
        db.session.commit()
        return org.id


def test_charts_keep_readable_labels_on_a_phone(live_app: Flask, page: Page) -> None:
    make_user(live_app, _vendor(live_app), "casey@cocreate.example", "Casey CSM", Role.CSM)
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/")
    chart = page.locator("figure.cs-chart-bar")
    label = chart.locator("svg text").first
    expect(label).to_be_visible()
    box = label.bounding_box()
    assert box is not None and box["height"] >= 11  # the 12-unit font, not shrunk to ~7 px
    # the chart scrolls inside its figure; the page itself does not scroll sideways
    assert chart.evaluate("f => f.scrollWidth > f.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
