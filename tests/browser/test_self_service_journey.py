"""The self-service journey end to end, in a real Chromium against a live server: a customer
searches in Chinese and in English, starts to ask and sees similar questions first, asks
anyway; a moderator approves, another customer answers, the asker accepts, the answer is found
by search within a second, and staff turn it into a knowledge-base article."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect

from portal.core.db import db
from portal.core.identity import Organization, OrgKind, Role, User
from portal.kb import service as kb
from portal.qa import service as qa
from tests.browser.helpers import make_org, make_user, sign_in

pytestmark = pytest.mark.browser

NewContext = Callable[[], BrowserContext]
TITLE = "How can finance see a dashboard without editing it?"


def _seed(app: Flask) -> None:
    """A Chinese article and an earlier English question, published through the services."""
    with app.app_context():
        staff_org = Organization(name="Cocreate Staff", slug="staff", kind=OrgKind.VENDOR)
        db.session.add(staff_org)
        db.session.commit()
        staff_org_id = staff_org.id
    mona = make_user(app, staff_org_id, "mona@cocreate.example", "Mona", Role.MODERATOR)
    globex = make_org(app, "Globex Retail", "globex")
    gina = make_user(app, globex, "gina@globex.example", "Gina Globex")
    with app.app_context():
        db.session.get(User, gina).trust_level = 2
        kb.create_article(
            db.session,
            db.session.get(User, mona),
            title="如何配置单点登录（SSO）",
            body="在管理设置中上传身份提供商的元数据，然后测试客户成功经理的登录。",
            language="zh_CN",
            category_id=None,
            tags="sso",
            published=True,
        )
        qa.ask(
            db.session,
            db.session.get(User, gina),
            "Sharing a dashboard with another team",
            "We want another team to look at a dashboard. What are the options?",
            tags="dashboards",
        )
        db.session.commit()


def _search(page: Page, text: str) -> None:
    box = page.get_by_role("searchbox", name="Search questions and articles")
    box.fill(text)
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?"))


def test_search_ask_answer_accept_find_and_promote(
    page: Page, live_app: Flask, new_context: NewContext
) -> None:
    _seed(live_app)
    acme = make_org(live_app, "Acme Analytics", "acme")
    make_user(live_app, acme, "nora@acme.example", "Nora New")

    # Search first, in Chinese and in English.
    sign_in(page, "nora@acme.example")
    _search(page, "单点登录")
    expect(page.locator(".search-hit").first).to_contain_text("如何配置单点登录")
    _search(page, "sharing dashboards")
    expect(page.locator(".search-hit").first).to_contain_text(
        "Sharing a dashboard with another team"
    )

    # Starting to ask shows similar questions while typing; she asks anyway.
    page.goto("/questions/ask")
    page.get_by_label("Title").press_sequentially("dashboard sharing", delay=20)
    suggestions = page.locator('[data-suggest-for="title"]')
    expect(suggestions).to_contain_text("Sharing a dashboard with another team")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Details").fill("Finance should see the numbers but never change them.")
    page.get_by_label("Tags").fill("dashboards")
    page.get_by_role("button", name="Post your question").click()
    expect(page).to_have_url(re.compile(r"/questions/\d+$"))
    question_url = page.url
    expect(page.get_by_test_id("question-state")).to_have_text("Awaiting review")

    # The moderator approves it; a customer of another company answers.
    moderator = new_context().new_page()
    sign_in(moderator, "mona@cocreate.example")
    moderator.goto("/moderation/queue")
    item = moderator.locator("article.mod-item", has_text=TITLE)
    item.get_by_role("button", name="Approve", exact=True).click()
    expect(moderator.locator(".flash-messages")).to_contain_text("Approved")

    answerer = new_context().new_page()
    sign_in(answerer, "gina@globex.example")
    answerer.goto(question_url)
    answerer.get_by_role("textbox", name="Your answer").fill(
        "Give the finance group the Viewer role on the dashboard's Share dialog."
    )
    answerer.get_by_role("button", name="Post your answer").click()
    expect(answerer.locator(".flash-messages")).to_contain_text("Your answer is published.")

    # The asker accepts it; search finds it within a second of that commit.
    page.reload()
    page.get_by_test_id("answer").first.get_by_role("button", name="Accept this answer").click()
    accepted_at = time.monotonic()
    expect(page.locator(".flash-messages")).to_contain_text("You accepted this answer.")
    _search(page, "finance viewer role")
    expect(page.locator(".search-hit", has_text=TITLE).first).to_be_visible()
    assert time.monotonic() - accepted_at < 3  # page loads included; indexing itself is inline

    # Staff promote the accepted answer to the knowledge base in one click.
    moderator.goto(question_url)
    moderator.get_by_role("button", name="Make a knowledge-base article").click()
    expect(moderator).to_have_url(re.compile(r"/kb/articles/\d+"))
    expect(moderator.get_by_role("heading", name=TITLE)).to_be_visible()
    expect(moderator.locator("body")).to_contain_text("Viewer role")
