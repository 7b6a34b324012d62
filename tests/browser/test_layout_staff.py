"""How the staff pages (moderation, search insights, customer success) are laid out, where only a
browser can tell: at phone width (390 px) and at a desktop's (1366 px), in a real Chromium
against the live server."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from cs_metrics import playbooks
from cs_metrics.models import (
    AccountProfile,
    AlertFiring,
    AlertRule,
    CsTask,
    HealthAlert,
    HealthSnapshot,
    ImprovementItem,
    NpsResponse,
    Referral,
    TaskKind,
)
from moderation.models import ModerationItem
from portal.accounts import service
from portal.core.activity import Activity
from portal.core.db import db, utcnow
from portal.core.identity import Role, User
from tests.browser.helpers import make_org, make_user, make_vendor_org, sign_in
from tests.browser.test_layout import (
    DESKTOP,
    PHONE,
    chinese_csm,
    chinese_csm_account,
    lines_per_cell,
    usage_down_alert,
)

pytestmark = pytest.mark.browser


def lines_of(element: Locator) -> list[list[Any]]:
    """Each matching element's text and how many lines it is laid out on."""
    return element.evaluate_all(
        """es => es.map(e => { const r = document.createRange(); r.selectNodeContents(e);
             const tops = new Set([...r.getClientRects()].filter(b => b.width > 0)
                                  .map(b => Math.round(b.top)));
             return [e.textContent.trim(), tops.size]; })"""
    )


def test_improvement_list_does_not_scroll_the_page_sideways_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    csm_id, org_id = chinese_csm_account(live_app, "晨光制造", "chenguang")
    with live_app.app_context():
        db.session.add(
            ImprovementItem(organization_id=org_id, department="support", csm_id=csm_id,
                            title="Recovery plan for 晨光制造",
                            opened_at=utcnow() - timedelta(days=3))
        )  # fmt: skip
        db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/improvements")
    table = page.get_by_test_id("improvements")
    expect(table.locator("tbody tr")).to_have_count(1)
    # The table scrolls inside its box; the status menu's hidden label (for screen readers,
    # absolutely positioned) used to stay where the unscrolled table put it, far to the right,
    # and the whole page scrolled sideways to reach it.
    assert table.evaluate("t => t.parentElement.scrollWidth > t.parentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_improvement_titles_and_buttons_are_not_broken_a_character_a_line(
    live_app: Flask, page: Page
) -> None:
    csm_id, org_id = chinese_csm_account(live_app, "Globex Retail", "globex")
    with live_app.app_context():
        db.session.add(
            ImprovementItem(organization_id=org_id, department="engineering", csm_id=csm_id,
                            title="Recovery plan for Globex Retail", status="closed",
                            opened_at=utcnow() - timedelta(days=22),
                            closed_at=utcnow() - timedelta(days=2))
        )  # fmt: skip
        db.session.commit()
    sign_in(page, "casey@cocreate.example")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        page.goto("/cs/improvements")
        table = page.get_by_test_id("improvements")
        expect(table.locator("tbody tr")).to_have_count(1)
        # "更改" (Change) beside the status menu took two lines, even on a desktop
        assert lines_per_cell(table, "tbody form button") == [["更改", 1]]
    # on a phone the title kept a word a line: "Recovery / plan / for / Globex / Retail"
    box = table.locator("tbody td").first.bounding_box()
    assert box is not None and box["width"] >= 150, box


def test_alert_and_referral_lists_keep_words_whole_on_a_phone(live_app: Flask, page: Page) -> None:
    csm_id = chinese_csm(live_app)
    org_id = make_org(live_app, "Initech Finance", "initech")
    rule_id = usage_down_alert(live_app, org_id, csm_id, {"usage_down_two_months": True})
    with live_app.app_context():
        db.session.add(
            AlertFiring(rule_id=rule_id, organization_id=org_id,
                        metrics={"usage_down_two_months": True}, actions=[{"type": "task"}])
        )  # fmt: skip
        db.session.add(
            Referral(organization_id=org_id, csm_id=csm_id, referrer_email="hui@initech.example",
                     referred_company="Referred by Initech", status="converted",
                     asked_at=utcnow() - timedelta(days=30), received_at=utcnow())
        )  # fmt: skip
        db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto("/cs/alerts")
    table = page.locator("table:has(tr.cs-alert)")
    expect(table.locator("tbody tr")).to_have_count(1)
    assert lines_per_cell(table, "tbody button") == [["关闭", 1]]  # not 关 / 闭

    page.goto("/cs/referrals")
    table = page.locator("main table")
    expect(table.locator("tbody tr")).to_have_count(1)
    assert lines_per_cell(table, "tbody td:nth-child(4)") == [["已转化", 1]]  # not 已转 / 化

    # The rules: a rule's name took four characters a line, "已启用" (enabled) and the time it
    # last fired broke in two, even on a desktop
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        page.goto("/cs/rules")
        table = page.locator("table:has(tr.cs-rule)")
        expect(table.locator("tr.cs-rule")).to_have_count(len(playbooks.DEFAULT_RULES))
        lines = lines_per_cell(table, "tr.cs-rule td:nth-child(n+3):nth-child(-n+6)")
        assert [cell for cell in lines if cell[1] > 1] == [], lines
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.set_viewport_size(PHONE)
    name = page.locator("tr.cs-rule td.cs-alert-rule a").first
    box = name.bounding_box()
    assert box is not None and box["width"] >= 120, box


def test_account_page_keeps_names_dates_and_quarters_whole_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    csm_id, org_id = chinese_csm_account(live_app, "Globex Retail", "globex")
    today = date.today()
    component = {"weight": 10, "configured_share": 0.1, "share": 0.1, "missing": False}
    with live_app.app_context():
        db.session.add(
            HealthSnapshot(organization_id=org_id, day=today, score=59.2, band="red",
                           effective_score=59.2, effective_band="red", complete=True,
                           model_version="default-1", components=[
                {**component, "name": "community_engagement", "raw": 15.5, "score": 100.0,
                 "contribution": 10.0},
                {**component, "name": "purchase_frequency", "raw": 8.0, "score": 100.0,
                 "contribution": 10.0},
                {**component, "name": "usage_trend", "raw": -28.1, "score": 36.4,
                 "contribution": 3.6},
            ])
        )  # fmt: skip
        playbooks.ensure_default_rules(db.session)
        rule = db.session.scalar(
            select(AlertRule).where(AlertRule.key == "usage_or_purchases_down")
        )
        assert rule is not None
        db.session.add(
            HealthAlert(organization_id=org_id, kind=playbooks.rule_kind(rule.id),
                        rule_id=rule.id, day=today, severity="warning", details={})
        )  # fmt: skip
        db.session.add(
            ImprovementItem(organization_id=org_id, department="engineering", csm_id=csm_id,
                            title="Recovery plan for Globex Retail", status="closed",
                            closed_at=utcnow())
        )  # fmt: skip
        for score in (3, 6):
            db.session.add(
                NpsResponse(organization_id=org_id, score=score,
                            responded_at=utcnow() - timedelta(days=2))
            )  # fmt: skip
        db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto(f"/cs/accounts/{org_id}")
    components = page.locator("#components")
    expect(components.locator("tbody tr")).to_have_count(3)
    # "每位活跃用户的社区参与度" took four lines of three characters, "使用趋势（%）" three
    lines = lines_per_cell(components, "tbody th")
    assert [name for name, n in lines if n > 2] == [], lines
    # at the end of a line, the open alert's day read 2026-11- / 27 and the improvement's status
    # 已关 / 闭 (closed)
    assert [text for text, n in lines_of(page.locator("#alerts li span.small")) if n > 1] == []
    assert lines_of(page.locator("#improvements li span.small")) == [["已关闭", 1]]
    # the NPS quarter read 2026- / Q4
    quarters = page.locator("#nps table")
    lines = lines_per_cell(quarters, "tbody td")
    assert [text for text, n in lines if n > 1] == [], lines
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_task_page_keeps_when_a_question_was_asked_on_one_line_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    csm_id = chinese_csm(live_app)
    org_id = make_org(live_app, "晨光制造", "chenguang")
    questions = (
        "报表导出 PDF 时中文乱码怎么解决？",
        "客户健康度评分可以自定义权重吗？",
        "大型企业里客户成功看板应该怎么命名和管理？",
        "大型企业里数据权限应该怎么命名和管理？",
        "数据权限可以在不同工作区之间复制吗？",
        "大型企业里定时报表应该怎么命名和管理？",
    )
    ideas = ("本地账号支持两步验证", "Embed dashboards in our intranet", "告警合并为每日摘要",
             "SCIM user provisioning", "报表模板市场", "Webhooks for alert rules")  # fmt: skip
    with live_app.app_context():
        db.session.add(AccountProfile(organization_id=org_id, csm_id=csm_id))
        task = CsTask(organization_id=org_id, assignee_id=csm_id, kind=TaskKind.ALERT,
                      title="Check in with 晨光制造", details={})  # fmt: skip
        db.session.add(task)
        for n, title in enumerate(questions):
            db.session.add(
                Activity(organization_id=org_id, verb="question.asked", subject_type="question",
                         subject_id=1000 + n, data={"title": title},
                         occurred_at=utcnow() - timedelta(days=3 + 17 * n, minutes=37 * n))
            )  # fmt: skip
        for n, title in enumerate(ideas):
            db.session.add(
                Activity(organization_id=org_id, verb="idea.voted", subject_type="idea",
                         subject_id=2000 + n, actor_id=csm_id, data={"title": title},
                         occurred_at=utcnow() - timedelta(days=1 + 9 * n, minutes=53 * n))
            )  # fmt: skip
        db.session.commit()
        task_id = task.id
    page.set_viewport_size(PHONE)
    sign_in(page, "casey@cocreate.example")
    page.goto(f"/cs/tasks/{task_id}")
    asked = page.get_by_test_id("open-questions").locator("li span.small")
    expect(asked).to_have_count(len(questions))
    # at the end of a line "· 提问于 2026/11/5 17:52" wrapped, often inside 提问于 (asked) or
    # between the day and the time
    broken = [text for text, n in lines_of(asked) if n > 1]
    voted = page.get_by_test_id("ideas-voted").locator("li span.small")
    broken += [text for text, n in lines_of(voted) if n > 1]  # "· 1 位投票人 · 2026/11/27 / 19:18"
    assert broken == []


def test_health_model_editor_shows_whole_component_names_and_steps(
    live_app: Flask, page: Page
) -> None:
    chinese_csm(live_app)
    sign_in(page, "casey@cocreate.example")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        page.goto("/cs/health-model")
        table = page.locator("#model-components")
        names = table.locator('input[name="name[]"]')
        expect(names.first).to_have_value("usage_trend")
        # On a phone a name showed four letters ("usag") and its label three characters a
        # line; on a desktop "community_engagem" and "0:100, 1:80, 15:50, 31:2" were cut off.
        cut = table.locator('input[name="name[]"], input[name="steps[]"]').evaluate_all(
            "es => es.filter(e => e.scrollWidth > e.clientWidth).map(e => e.value)"
        )
        assert cut == [], (viewport, cut)
        labels = lines_per_cell(table, "td:first-child .form-text")
        assert [label for label, n in labels if n > 1] == [], labels
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_moderation_statistics_say_times_in_words(live_app: Flask, page: Page) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    author_id = make_user(live_app, org_id, "nora@acme.example", "Nora New")
    make_user(
        live_app, make_vendor_org(live_app), "mona@cocreate.example", "Mona M", Role.MODERATOR,
        locale="zh_CN",
    )  # fmt: skip
    with live_app.app_context():
        author = db.session.get(User, author_id)
        assert author is not None
        saved = service.update_about(db.session, author, "I build sales dashboards.")
        assert saved == service.AboutSaved.AWAITING_REVIEW
        item = db.session.scalars(select(ModerationItem)).one()
        item.submitted_at = utcnow() - timedelta(hours=161, minutes=18)
        db.session.commit()
    sign_in(page, "mona@cocreate.example")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        page.goto("/moderation/stats")
        # the oldest item had waited "161.3" (hours), the columns were headed p50 and p90
        oldest = page.locator(".card", has_text="最长等待").locator(".fs-3")
        expect(oldest).to_have_text("1周")  # a week, rounded as people say it
        headers = page.locator("section[aria-labelledby=ttd] thead th").all_inner_texts()
        assert headers == ["日期", "已处理", "中位数", "九成在此之内"], headers
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
