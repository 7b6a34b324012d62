"""Alert rules in a real Chromium: a vendor admin writes a rule with a typo and sees the error
beside the condition, tests it against an account, saves it; a recompute started from the
rule's page opens an alert, which shows in its channel and is closed from the alert list."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from cs_metrics import playbooks
from cs_metrics.models import AccountProfile
from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role
from tests.browser.helpers import make_user, sign_in

pytestmark = pytest.mark.browser


def _seed(app: Flask) -> None:
    with app.app_context():
        vendor = Organization(name="Cocreate Staff", slug="staff", kind=OrgKind.VENDOR)
        big = Organization(name="Big Buyer", slug="big-buyer")
        db.session.add_all([vendor, big])
        db.session.flush()
        db.session.add(AccountProfile(organization_id=big.id, arr=Decimal("750000")))
        playbooks.ensure_default_rules(db.session)
        db.session.commit()
        vendor_id = vendor.id
    make_user(app, vendor_id, "admin@example.com", "Ada Admin", Role.VENDOR_ADMIN)


def test_admin_writes_tests_and_saves_a_rule_then_closes_its_alert(live_app: Flask, page: Page):
    _seed(live_app)
    sign_in(page, "admin@example.com")

    page.goto("/cs/rules")
    expect(page.get_by_text("Health band change or a 15-point drop")).to_be_visible()
    page.get_by_role("link", name="New rule").click()
    expect(page.locator(".cs-metric-catalog")).to_contain_text("days_to_renewal")

    page.locator("#name").fill("Big ARR")
    page.locator("#expression").fill("ar > 500000")
    page.locator("#channel").fill("key-accounts")
    page.locator("button[name=save]").click()
    expect(page.locator("#expression-errors")).to_contain_text('Unknown metric "ar"')

    page.locator("#expression").fill("arr > 500000")
    page.locator("#preview_account").select_option(label="Big Buyer")
    page.locator("button[name=preview]").click()
    expect(page.locator("#rule-preview")).to_contain_text("The rule fires for this account")
    page.locator("button[name=save]").click()
    expect(page.get_by_role("heading", name="Big ARR")).to_be_visible()
    expect(page.get_by_text("This rule has not fired yet.")).to_be_visible()

    # the rule runs now, not at night: the recompute the rule's page offers
    page.locator("#recompute-now").click()
    expect(page.locator("#recompute-state")).to_have_attribute("data-status", "done")
    expect(page.locator("#recompute-summary")).to_contain_text("1 new alert.")

    page.goto("/cs/alerts")
    page.get_by_role("link", name="key-accounts").first.click()
    row = page.locator("tr.cs-alert", has_text="Big Buyer")
    expect(row).to_contain_text("Big ARR")
    row.get_by_role("button", name="Close").click()
    expect(page.get_by_text("The alert is closed.")).to_be_visible()
    expect(page.locator("tr.cs-alert")).to_have_count(0)
