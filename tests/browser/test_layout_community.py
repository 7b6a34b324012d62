"""How the community pages are laid out, where only a browser can tell: at phone width (390 px)
and at a desktop's (1366 px), in English and in Chinese, in a real Chromium against the live
server."""

from __future__ import annotations

import io

import pytest
from flask import Flask, current_app
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from portal.core.db import db
from portal.core.identity import Role, User
from portal.core.notifications import notify
from portal.core.storage import storage_for
from portal.gallery import service as gallery_service
from portal.gallery import uploads
from portal.qa import service as qa_service
from portal.search import index as search_index
from tests.browser.helpers import make_org, make_user, sign_in
from tests.gallery_factories import manifest_bytes

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


def test_members_table_scrolls_instead_of_squeezing_on_a_phone(live_app: Flask, page: Page) -> None:
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


def ask_and_answer(app: Flask, org_id: int) -> int:
    """A published question with a published answer, by two trusted members of ``org_id``."""
    asker_id = make_user(app, org_id, "ann@acme.example", "Ann Asker")
    helper_id = make_user(app, org_id, "hal@acme.example", "Hal Helper")
    with app.app_context():
        asker, helper = db.session.get(User, asker_id), db.session.get(User, helper_id)
        assert asker is not None and helper is not None
        asker.trust_level = helper.trust_level = 3  # published at once, no review
        question = qa_service.ask(
            db.session, asker, "How do I share a dashboard with finance?",
            "We need a read-only link for the finance team.", tags=["dashboards"],
        )  # fmt: skip
        qa_service.answer(db.session, helper, question.id, "Use the share menu, then Viewer.")
        db.session.commit()
        return question.id


def test_the_flag_form_stays_on_a_phone_screen(live_app: Flask, page: Page) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    question_id = ask_and_answer(live_app, org_id)
    make_user(live_app, org_id, "bob@acme.example", "Bob Builder")
    page.set_viewport_size(PHONE)
    sign_in(page, "bob@acme.example")
    page.goto(f"/questions/{question_id}")
    controls = page.get_by_test_id("flag-control")
    expect(controls).to_have_count(2)  # the question's and the answer's
    for control in controls.all():
        control.locator("summary").click()
        form = control.locator("form")
        expect(form.get_by_role("button", name="Flag", exact=True)).to_be_visible()
        # The 18rem form hung from its link halfway across the screen and stuck out past
        # its right edge: the page scrolled sideways and the form was cut off.
        box = form.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert page_width(page) <= PHONE["width"]
        control.locator("summary").click()


def test_suggestions_under_the_ask_form_look_like_a_list_of_links(
    live_app: Flask, page: Page
) -> None:
    ask_and_answer(live_app, make_org(live_app, "Acme Analytics", "acme"))
    with live_app.app_context():
        search_index.reindex(db.session)
    org_id = make_org(live_app, "华信科技", "huaxin")
    make_user(live_app, org_id, "wang@huaxin.example", "王芳", locale="zh_CN")
    page.set_viewport_size(PHONE)
    sign_in(page, "wang@huaxin.example")
    page.goto("/questions/ask")
    page.get_by_label("标题").press_sequentially("share a dashboard")
    box = page.locator('[data-suggest-for="title"]')
    suggestion = box.locator('a[data-search-kind="question"]')
    expect(suggestion).to_have_text("How do I share a dashboard with finance?")
    expect(suggestion).to_be_visible()
    # They were bare lines of text, glued to the field, with nothing saying they are links:
    # now framed items, as under the search page's box, named in the page's language.
    style = suggestion.evaluate(
        "a => { const s = getComputedStyle(a); "
        "return [parseFloat(s.paddingLeft), parseFloat(s.borderTopWidth)]; }"
    )
    assert style[0] >= 8 and style[1] >= 1, style
    expect(box).to_have_attribute("aria-label", "搜索建议")


def test_question_counts_keep_their_lines_and_titles_line_up_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "华信科技", "huaxin")
    ask_and_answer(live_app, org_id)
    with live_app.app_context():
        asker = db.session.scalar(select(User).where(User.email == "ann@acme.example"))
        assert asker is not None
        qa_service.ask(
            db.session, asker, "Why is my dashboard slow after the upgrade?",
            "It takes twenty seconds to open since 5.2.", tags=["dashboards"],
        )  # fmt: skip
        db.session.commit()
    make_user(live_app, org_id, "wang@huaxin.example", "王芳", locale="zh_CN")
    page.set_viewport_size(PHONE)
    sign_in(page, "wang@huaxin.example")
    page.goto("/questions/")
    rows = page.locator(".qa-list > li")
    expect(rows).to_have_count(2)
    # "0 个回答" broke as "0 个回 / 答" and "0 次浏览" as "0 次 / 浏览"...
    counts = rows.locator(".qa-stats > div")
    assert [lines_of(c) for c in counts.all()] == [1] * 6, counts.all_inner_texts()
    # ...and the column's width followed its words, so the titles did not line up.
    lefts = {round(box["x"]) for box in (t.bounding_box() for t in rows.locator("h2").all()) if box}
    assert len(lefts) == 1, lefts


def test_the_recently_active_sort_is_not_called_enabled_in_chinese(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "华信科技", "huaxin")
    make_user(live_app, org_id, "wang@huaxin.example", "王芳", locale="zh_CN")
    sign_in(page, "wang@huaxin.example")
    page.goto("/questions/")
    tabs = page.get_by_role("list", name="问题排序").get_by_role("link")
    # The tab shared its word with a member's status, "Active": it read "已启用" (enabled).
    expect(tabs).to_have_text(["最新", "最近活跃", "票数", "未回答"])


def test_mark_as_read_stays_on_one_line_on_a_phone(live_app: Flask, page: Page) -> None:
    org_id = make_org(live_app, "华信科技", "huaxin")
    user_id = make_user(live_app, org_id, "wang@huaxin.example", "王芳", locale="zh_CN")
    with live_app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        notify(db.session, user, "roadmap", "“仪表板支持定时邮件推送”现在的状态是：已计划", "/")
        db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "wang@huaxin.example")
    page.goto("/notifications")
    button = page.locator("main li").get_by_role("button", name="标为已读")
    expect(button).to_be_visible()
    assert lines_of(button) == 1  # it was "标为已 / 读", or a character a line


def share_template(app: Flask, author_id: int, title: str) -> int:
    """A published template of ``author_id``'s, as the upload form would share it."""
    with app.app_context():
        author = db.session.get(User, author_id)
        assert author is not None
        author.trust_level = 3  # published at once
        upload = uploads.receive(
            io.BytesIO(manifest_bytes()), "template.json",
            storage_for(current_app.config["UPLOAD_DIR"], "gallery"),
        )  # fmt: skip
        template = gallery_service.share(
            db.session, author, title=title, description="Churn by month.",
            category="dashboard", industry="saas", tags="churn", license="CC-BY-4.0",
            visibility="public", upload=upload, version=None,
        )  # fmt: skip
        db.session.commit()
        return template.id


def test_gallery_headings_keep_the_width_of_the_page_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    author_id = make_user(live_app, org_id, "alice@acme.example", "Alice Admin")
    template_id = share_template(live_app, author_id, "Monthly churn dashboard")
    page.set_viewport_size(PHONE)
    sign_in(page, "alice@acme.example")
    # Beside two buttons, "Template gallery" and the template's title were squeezed into a
    # third of the screen, the buttons stacked in a narrow column beside them.
    for path, title, buttons in (
        ("/gallery/", "Template gallery", ("My templates", "Share a template")),
        (f"/gallery/templates/{template_id}", "Monthly churn dashboard",
         ("Download 1.0.0", "Publish a new version")),
    ):  # fmt: skip
        page.goto(path)
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_have_text(title)
        assert lines_of(heading) == 1, path
        boxes = [page.get_by_role("link", name=name).bounding_box() for name in buttons]
        tops = {round(box["y"]) for box in boxes if box}
        assert len(tops) == 1, (path, tops)  # side by side, not stacked
        assert page_width(page) <= PHONE["width"]


def test_my_templates_table_scrolls_instead_of_squeezing_on_a_phone(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "华信科技", "huaxin")
    wang_id = make_user(live_app, org_id, "wang@huaxin.example", "王芳", locale="zh_CN")
    share_template(live_app, wang_id, "零售门店经营分析解决方案")
    page.set_viewport_size(PHONE)
    sign_in(page, "wang@huaxin.example")
    page.goto("/gallery/mine")
    table = page.locator("main table")
    expect(table.locator("tbody tr")).to_have_count(1)
    # Squeezed to the screen, its headers took a line per character ("组 / 织", "评 / 分") and
    # so did "已发 / 布"; the title keeps a few words a line and the table scrolls instead.
    for cell in table.locator("thead th, tbody td:not(:first-child)").all():
        assert lines_of(cell) == 1, cell.inner_text()
    box = table.get_by_role("link", name="零售门店经营分析解决方案").bounding_box()
    assert box is not None and box["width"] >= 120
    assert page_width(page) <= PHONE["width"]


def test_a_question_date_is_not_split_at_its_hyphen_on_a_phone(live_app: Flask, page: Page) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    # Whether the line breaks inside the date depends on how long the name before it is:
    # askers with names of every length from 6 to 17 letters catch each place it can fall.
    for n in range(6, 18):
        user_id = make_user(live_app, org_id, f"m{n}@acme.example", "Ann " + "x" * (n - 4))
        with live_app.app_context():
            asker = db.session.get(User, user_id)
            assert asker is not None
            asker.trust_level = 3
            qa_service.ask(db.session, asker, f"Question number {n} about dashboards", "Why?")
            db.session.commit()
    page.set_viewport_size(PHONE)
    sign_in(page, "m6@acme.example")
    page.goto("/questions/")
    days = page.locator(".qa-list time")
    expect(days).to_have_count(12)
    # One read "2026-" at the end of a line and "11-27" at the start of the next.
    assert [lines_of(day) for day in days.all()] == [1] * 12


def test_search_filters_fold_away_on_a_phone_and_stand_beside_results_on_a_desktop(
    live_app: Flask, page: Page
) -> None:
    org_id = make_org(live_app, "Acme Analytics", "acme")
    asker_id = make_user(live_app, org_id, "ann@acme.example", "Ann Asker")
    with live_app.app_context():
        asker = db.session.get(User, asker_id)
        assert asker is not None
        asker.trust_level = 3
        for n in range(4):
            qa_service.ask(
                db.session, asker, f"Dashboard question number {n}", "About dashboards.",
                tags=[f"topic-{n}-{t}" for t in range(5)],
            )  # fmt: skip
        db.session.commit()
        search_index.reindex(db.session)
    page.set_viewport_size(PHONE)
    sign_in(page, "ann@acme.example")
    page.goto("/search?q=dashboard")
    first = page.locator(".search-hit").first
    expect(first).to_be_visible()
    # The Type and Tags lists stood above the results and pushed the first one off the
    # first screen: they now fold under a "Refine" summary, closed.
    box = first.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    tag_link = page.get_by_role("link", name="topic-0-0")
    expect(tag_link).to_be_hidden()
    fold = page.locator("details.search-facets-fold")
    # A <details>: opened from the keyboard, no script needed; then its links are there.
    fold.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(tag_link).to_be_visible()
    expect(page.get_by_role("link", name="Questions", exact=True)).to_be_visible()
    tag_link.click()
    expect(page.locator(".search-hit")).to_have_count(1)
    expect(fold.locator("summary")).to_contain_text("1 filter on")
    # On a desktop nothing folds: the filters stand beside the results, as before.
    page.set_viewport_size(DESKTOP)
    page.goto("/search?q=dashboard")
    expect(fold).to_be_hidden()
    aside = page.get_by_role("complementary", name="Refine")
    expect(aside.get_by_role("link", name="topic-0-0")).to_be_visible()
    aside_box, hit_box = aside.bounding_box(), page.locator(".search-hit").first.bounding_box()
    assert aside_box is not None and hit_box is not None
    assert aside_box["x"] > hit_box["x"] + hit_box["width"] - 1
    assert abs(aside_box["y"] - hit_box["y"]) < 60
