"""How pages are laid out, where only a browser can tell: at phone width (390 px) and at a
desktop's (1366 px), in a real Chromium against the live server."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from cs_metrics import playbooks
from cs_metrics.models import AccountProfile, AlertRule, CsTask, HealthAlert, ImportJob, TaskKind
from portal.accounts import service
from portal.core.db import db
from portal.core.identity import Role, User
from tests.browser.helpers import make_org, make_user, make_vendor_org, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def chinese_csm(app: Flask) -> int:
    """Casey, a CSM of the vendor who reads the portal in Chinese."""
    return make_user(
        app, make_vendor_org(app), "casey@cocreate.example", "Casey", Role.CSM, locale="zh_CN"
    )


def chinese_csm_account(app: Flask, name: str, slug: str, **profile: Any) -> tuple[int, int]:
    """Casey and one account of hers (``profile``: more of its CS profile); their ids."""
    csm_id = chinese_csm(app)
    org_id = make_org(app, name, slug)
    with app.app_context():
        db.session.add(AccountProfile(organization_id=org_id, csm_id=csm_id, **profile))
        db.session.commit()
    return csm_id, org_id


def lines_per_cell(table: Locator, cells: str) -> list[list[Any]]:
    """Each matching cell's text and how many lines of the table's text it takes."""
    return table.evaluate(
        """(t, cells) => {
          const line = parseFloat(getComputedStyle(t.querySelector('td')).lineHeight);
          const height = c => { const r = document.createRange(); r.selectNodeContents(c);
                                return r.getBoundingClientRect().height; };
          return [...t.querySelectorAll(cells)]
            .map(c => [c.textContent.trim(), Math.round(height(c) / line)]);
        }""",
        cells,
    )


def test_charts_keep_readable_labels_on_a_phone(live_app: Flask, page: Page) -> None:
    make_user(live_app, make_vendor_org(live_app), "casey@cocreate.example", "Casey CSM", Role.CSM)
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


def test_reject_button_sits_beside_its_reason_in_the_review_queue(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    author_id = make_user(live_app, org_id, "nora@acme.example", "Nora New")
    make_user(
        live_app, make_vendor_org(live_app), "mona@cocreate.example", "Mona M", Role.MODERATOR
    )
    with live_app.app_context():
        author = db.session.get(User, author_id)
        assert author is not None
        saved = service.update_about(db.session, author, "I build sales dashboards.")
        assert saved == service.AboutSaved.AWAITING_REVIEW
        db.session.commit()
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        if viewport is DESKTOP:
            sign_in(page, "mona@cocreate.example")
        page.goto("/moderation/queue")
        form = page.locator("article.mod-item form.mod-reject")
        expect(form.get_by_role("button", name="Reject")).to_be_visible()
        # one row: the button's top is the field's, not below it
        reason_top, button_top = form.evaluate(
            "f => [f.querySelector('.mod-reason'), f.querySelector('button')]"
            ".map(e => e.getBoundingClientRect().top)"
        )
        assert abs(reason_top - button_top) < 2
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_profile_labels_are_not_broken_mid_word_on_a_phone(live_app: Flask, page: Page) -> None:
    make_user(live_app, make_org(live_app, "Acme Analytics", "acme"), "nora@acme.example", "Nora")
    page.set_viewport_size(PHONE)
    sign_in(page, "nora@acme.example")
    page.goto("/profile")
    heights = page.locator("main dl dt").evaluate_all(
        "ts => ts.map(t => [t.textContent, t.getBoundingClientRect().height])"
    )
    one_line = min(height for _label, height in heights)
    assert ["Organization", one_line] in [[label, height] for label, height in heights]
    assert all(height == one_line for _label, height in heights), heights


def test_task_list_words_do_not_break_letter_by_letter_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    csm_id, org_id = chinese_csm_account(live_app, "Globex Retail", "globex")
    with live_app.app_context():
        db.session.add(
            CsTask(organization_id=org_id, assignee_id=csm_id, kind=TaskKind.CLOSE_THE_LOOP,
                   title="Close the loop: NPS 3", details={"score": 3},
                   due_on=date.today() - timedelta(days=3))
        )  # fmt: skip
        db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/tasks")
    table = page.get_by_test_id("tasks")
    expect(table.locator("tbody tr")).to_have_count(1)
    lines = lines_per_cell(
        table,
        "thead th, tbody td:nth-child(2), tbody td:nth-child(6), tbody td:nth-child(5) span",
    )
    assert [label for label, n in lines if n > 1] == [], lines  # "状态", "闭环回访", the due day
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def usage_down_alert(app: Flask, org_id: int, csm_id: int, metrics: dict[str, bool]) -> int:
    """The account in the CSM's book, with the shipped "usage or purchases down" rule's alert
    open on it; the rule's id."""
    with app.app_context():
        playbooks.ensure_default_rules(db.session)
        rule = db.session.scalar(
            select(AlertRule).where(AlertRule.key == "usage_or_purchases_down")
        )
        assert rule is not None
        db.session.add(AccountProfile(organization_id=org_id, csm_id=csm_id))
        db.session.add(
            HealthAlert(organization_id=org_id, kind=playbooks.rule_kind(rule.id),
                        rule_id=rule.id, day=date.today(), severity="warning",
                        details={"metrics": metrics})
        )  # fmt: skip
        db.session.commit()
        return rule.id


def test_alert_rule_names_keep_a_readable_width_on_a_phone(live_app: Flask, page: Page) -> None:
    csm_id = chinese_csm(live_app)
    org_id = make_org(live_app, "Initech Finance", "initech")
    metrics = {"purchases_down_two_months": False, "usage_down_two_months": True}
    usage_down_alert(live_app, org_id, csm_id, metrics)
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/alerts")
    link = page.locator("tr.cs-alert td a").first
    expect(link).to_have_text("使用量或购买连续两个月下降")
    box = link.bounding_box()
    assert box is not None and box["width"] >= 120  # a few words a line, not one character
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_import_list_words_do_not_break_letter_by_letter_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    csm_id = chinese_csm(live_app)
    with live_app.app_context():
        db.session.add(
            ImportJob(kind="usage", filename="usage.csv", status="done", rows_total=520,
                      rows_valid=520, rows_done=520, created_by_id=csm_id)
        )  # fmt: skip
        db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/imports")
    table = page.locator("#jobs")
    expect(table.locator("tbody tr")).to_have_count(1)
    lines = lines_per_cell(table, "thead th, tbody td")
    assert [label for label, n in lines if n > 1] == [], lines  # "使用事件", "已完成", "行数"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_dates_and_figures_stay_on_one_line_in_account_tables_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    chinese_csm_account(live_app, "Globex Retail", "globex", arr=1_336_000,
                        renewal_date=date.today() + timedelta(days=40))  # fmt: skip
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/accounts")
    table = page.locator("table.cs-accounts-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    renewal = (date.today() + timedelta(days=40)).isoformat()
    lines = dict(lines_per_cell(table, "tbody td"))
    assert lines[renewal] == 1 and lines["1,336,000"] == 1, lines  # not "2027-" / "02-12"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_scorecard_explanations_keep_a_readable_width_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    chinese_csm(live_app)
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/scorecard")
    notes = page.locator("td.cs-prose")
    expect(notes.first).to_be_visible()
    # Squeezed to the width of the phone, a KPI's note took a line per word and its row a
    # screen's height; it keeps about thirty characters a line and the table scrolls instead.
    widths = [box["width"] for box in (n.bounding_box() for n in notes.all()) if box]
    assert widths and min(widths) >= 200, widths
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
