"""The customer-success journey in a real Chromium against a live server: a CSM imports the
CRM's CSV files in the browser and watches each import finish, recomputes the scores from the
last import's page and watches that finish, reads the portfolio, opens a
red account and sees why it is red (its components), overrides the score with a reason and an
expiry and sees it shown as an override, then works the detractor's close-the-loop task and
reads their KPI scorecard against its targets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import update

from cs_metrics.models import ImportJob
from portal.core.db import db, utcnow
from portal.core.identity import Organization, OrgKind, Role
from tests.browser.helpers import make_user, sign_in

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[1] / "data" / "cs_import"


def _seed(app: Flask) -> None:
    """The vendor's CSMs, whose emails the accounts file names."""
    with app.app_context():
        vendor = Organization(name="Cocreate Staff", slug="staff", kind=OrgKind.VENDOR)
        db.session.add(vendor)
        db.session.commit()
        vendor_id = vendor.id
    make_user(app, vendor_id, "li.lei@example.com", "Li Lei", Role.CSM)
    make_user(app, vendor_id, "han.meimei@example.com", "Han Meimei", Role.CSM)


def _files(tmp_path: Path) -> dict[str, Path]:
    """Tickets, invoices and NPS answers that make CN-0001 red and CN-0002 green."""
    now = utcnow()
    opened = (now - timedelta(days=5)).strftime("%Y-%m-%d %H:%M")
    old = (now.date() - timedelta(days=120)).isoformat()
    due = (now.date() - timedelta(days=90)).isoformat()
    recent = (now - timedelta(days=10)).strftime("%Y-%m-%d")
    texts = {
        "tickets": "external_id,account_external_id,opened_at,severity\n"
        + "".join(f"T-{i},CN-0001,{opened},1\n" for i in range(5)),
        "invoices": "external_id,account_external_id,amount,order_date,due_date,paid_date\n"
        f"I-1,CN-0001,50000,{old},{due},\n"
        f"I-2,CN-0002,80000,{old},{due},{due}\n",
        "nps_responses": "external_id,account_external_id,score,responded_at,comment\n"
        f"N-1,CN-0001,2,{recent},Too many outages\n"
        f"N-2,CN-0001,3,{recent},\n"
        f"N-3,CN-0002,10,{recent},Great support\n",
    }
    paths = {}
    for kind, text in texts.items():
        paths[kind] = tmp_path / f"{kind}.csv"
        paths[kind].write_text(text, encoding="utf-8")
    return paths


def _import(page: Page, kind: str, path: Path) -> None:
    page.goto("/cs/imports")
    page.locator("#kind").select_option(kind)
    page.locator("#file").set_input_files(str(path))
    page.locator("#import-form button[type=submit]").click()
    expect(page.locator("#import-status")).to_have_attribute("data-status", "done")
    expect(page.locator("#import-bar")).to_have_attribute("value", "100")
    expect(page.get_by_text("All rows were imported.")).to_be_visible()


def test_csm_imports_reads_a_red_account_and_overrides_it(live_app: Flask, page: Page, tmp_path):
    _seed(live_app)
    sign_in(page, "li.lei@example.com")

    # a file with a bad row imports nothing and says where the error is
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,name,arr\nX-1,Bad Co,lots\n", encoding="utf-8")
    page.goto("/cs/imports")
    page.locator("#file").set_input_files(str(bad))
    page.locator("#import-form button[type=submit]").click()
    expect(page.locator("#import-status")).to_have_attribute("data-status", "failed")
    expect(page.locator("#import-error-table")).to_contain_text("arr")
    expect(page.locator("#errors-download")).to_be_visible()

    _import(page, "accounts", DATA / "accounts_gbk.csv")  # GBK, Chinese headers
    for kind, path in _files(tmp_path).items():
        _import(page, kind, path)

    # fresh scores without waiting for the nightly run, from the last import's page
    page.locator("#recompute-now").click()
    expect(page.locator("#recompute-state")).to_have_attribute("data-status", "done")
    expect(page.locator("#recompute-bar")).to_have_attribute("value", "100")
    expect(page.locator("#recompute-summary")).to_contain_text("accounts recomputed")
    page.get_by_role("link", name="Go to the portfolio").click()
    expect(page.locator("#recompute-last")).to_contain_text("Health scores computed")
    red_tile = page.locator('.cs-band-tile[data-band="red"]')
    expect(red_tile).to_contain_text("1")
    expect(page.locator('.cs-band-tile[data-band="green"]')).to_contain_text("1")
    expect(page.locator("figure.cs-chart svg[role=img]")).to_be_visible()
    red_tile.click()
    page.get_by_role("link", name="北京星辰科技有限公司").click()

    health = page.locator("#health-score")
    expect(health.locator("[data-band]")).to_have_attribute("data-band", "red")
    components = page.locator("#components")
    expect(components.locator('[data-component="severe_tickets"]')).to_contain_text("0.0")
    expect(components.locator('[data-component="nps"]')).to_contain_text("-100.0")
    expect(components.locator('[data-component="payment_days_overdue"]')).to_be_visible()

    page.locator("#override-details summary").click()
    page.locator("#score").fill("80")
    page.locator("#reason").fill("Outages fixed; the sponsor renewed verbally.")
    page.locator("#expires_at").fill((utcnow().date() + timedelta(days=30)).isoformat())
    page.locator("#override-form button[type=submit]").click()

    expect(page.locator("#override-badge")).to_be_visible()
    expect(page.locator("#override-reason")).to_have_text(
        "Outages fixed; the sponsor renewed verbally."
    )
    expect(health.locator("[data-band]")).to_have_attribute("data-band", "yellow")
    expect(page.locator("#override")).to_contain_text("Li Lei")

    # the detractors' answers opened close-the-loop tasks for the account's CSM
    page.get_by_role("navigation", name="Customer success").get_by_role(
        "link", name="Tasks"
    ).click()
    tasks = page.get_by_test_id("tasks")
    expect(tasks.locator("tbody tr")).to_have_count(2)
    expect(tasks).to_contain_text("北京星辰科技有限公司")
    tasks.locator("tbody tr").filter(has_text="2").first.locator("a").first.click()
    expect(page.get_by_test_id("nps-score")).to_have_text("2")
    expect(page.get_by_test_id("nps-comment")).to_contain_text("Too many outages")
    page.locator("#done-outcome").fill("Called the sponsor; outage review booked.")
    page.get_by_role("button", name="Mark done").click()
    expect(page.get_by_test_id("task-outcome")).to_have_text(
        "Called the sponsor; outage review booked."
    )

    # and the KPI scorecard: their card first, each tier against its target
    page.get_by_role("navigation", name="Customer success").get_by_role(
        "link", name="KPI scorecard"
    ).click()
    mine = page.locator("section.card").first
    expect(mine.get_by_role("heading")).to_contain_text("Li Lei")
    expect(mine.get_by_role("heading")).to_contain_text("You")
    expect(mine.locator("tbody tr")).to_have_count(4)
    expect(mine).to_contain_text("80%")  # the default base-tier target


def test_job_page_follows_a_running_import_until_it_finishes(live_app: Flask, page: Page):
    """With a real worker the import runs after the upload: the page polls and updates."""
    _seed(live_app)
    with live_app.app_context():
        job = ImportJob(kind="accounts", filename="big.csv", status="importing",
                        rows_total=10, rows_valid=10, rows_done=4, report={})  # fmt: skip
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    sign_in(page, "li.lei@example.com")
    page.goto(f"/cs/imports/{job_id}")
    expect(page.locator("#import-status")).to_have_attribute("data-status", "importing")
    expect(page.locator("#import-bar")).to_have_attribute("value", "40")
    with live_app.app_context():
        db.session.execute(
            update(ImportJob).where(ImportJob.id == job_id).values(rows_done=10, status="done")
        )
        db.session.commit()
    expect(page.locator("#import-status")).to_have_attribute("data-status", "done")
    expect(page.get_by_text("All rows were imported.")).to_be_visible()
