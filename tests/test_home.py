"""The home page shows what the community is doing (latest questions, top ideas, popular
templates), each section registered by its feature, and only what the reader may see."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.roadmap import service as roadmap_service
from tests.conftest import login
from tests.factories import UserFactory
from tests.gallery_factories import Gallery
from tests.qa_factories import QA, member
from tests.roadmap_factories import Roadmap, product_manager


def section(html: str, name: str) -> list[str]:
    """The link texts of one home section, in order."""
    body = html.split(f'data-testid="home-{name}"')[1].split("</ul>")[0]
    return re.findall(r'<a class="text-break" href="[^"]+">([^<]+)</a>', body)


def test_home_shows_latest_questions_top_ideas_and_popular_templates(app, client, session):
    qa, roadmap, gallery = QA(app, session), Roadmap(app, session), Gallery(app, session)
    author = member()
    older = qa.question(author, title="How do I export a dashboard?")
    newer = qa.question(author, title="Can a dashboard refresh hourly?")
    private = qa.question(author, title="Our renewal pricing question", private=True)
    liked, other = roadmap.idea(title="Dark mode"), roadmap.idea(title="PDF exports")
    declined = roadmap.idea(title="Rewrite it in a spreadsheet")
    for _ in range(3):
        roadmap.vote(member(), declined)
    for _ in range(2):
        roadmap.vote(member(), liked)
    roadmap.vote(member(), other)
    roadmap(roadmap_service.change_status, product_manager(), declined.id, "declined", "No.")
    shared = gallery.template(author, title="Churn by segment")
    gallery.template(author, title="Board pack for our team", visibility="organization")

    outsider = UserFactory()
    login(client, outsider)
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert section(html, "questions")[:2] == [newer.title, older.title]
    assert private.title not in html
    assert section(html, "ideas")[:2] == ["Dark mode", "PDF exports"]  # open ones only
    assert declined.title not in html
    assert "2 votes" in html
    assert section(html, "templates") == [shared.title]
    assert 'action="/search"' in html and 'name="q"' in html

    colleague = UserFactory(organization=author.organization)
    login(client, colleague)
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert section(html, "questions")[0] == private.title
    assert "Board pack for our team" in section(html, "templates")


def test_visitors_see_the_public_community_and_chinese_readers_their_language(app, client, session):
    qa = QA(app, session)
    public = qa.question(title="Where are the API limits documented?")
    Roadmap(app, session).idea(title="Export to Excel")
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert public.title in section(html, "questions") and "Sign in" in html
    assert section(html, "ideas") == ["Export to Excel"]
    chinese = client.get("/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "最新问题" in chinese and "热门想法" in chinese and "热门模板" in chinese
    assert "还没有模板。" in chinese  # no template yet: said so, in Chinese


@pytest.mark.parametrize("app_config", [{"QA_LIST_CACHE_SECONDS": 60}])
def test_the_kept_home_section_shows_a_new_question_once_it_is_committed(app, client, session):
    from portal.qa import listcache

    listcache.clear()
    qa = QA(app, session)
    first = qa.question(title="The first question on the home page")
    assert section(client.get("/").get_data(as_text=True), "questions") == [first.title]
    later = qa.question(title="Flushed but not committed by a request")
    assert later.title not in client.get("/").get_data(as_text=True)  # kept
    login(client, member())
    client.post("/questions/ask", data={"title": "Committed through a request now", "body": "B"})
    client.post("/sign-out")
    shown = section(client.get("/").get_data(as_text=True), "questions")
    assert shown[0] == "Committed through a request now" and later.title in shown
    listcache.clear()


def test_a_moderators_home_opens_on_the_review_queue(app, client, session):
    from datetime import timedelta

    from moderation.models import ModerationItem
    from portal.core.identity import Role
    from tests.factories import staff

    qa = QA(app, session)
    held = qa.question(member(trust_level=0), title="A newcomer's first question")
    qa.question(member(trust_level=0), title="Another newcomer's question")
    item = session.query(ModerationItem).filter_by(kind="question", object_id=held.id).one()
    item.submitted_at -= timedelta(hours=3)
    session.flush()

    login(client, staff(Role.MODERATOR))
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    card = html.split('data-testid="home-review"')[1].split("</p>")[0]
    assert "2 items wait for review." in card and "The oldest has waited 3 hours." in card
    assert 'href="/moderation/queue"' in html

    login(client, member())
    assert 'data-testid="home-review"' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    "app_config", [{}, {"CS_PORTFOLIO_CACHE_SECONDS": 60}], ids=["read-each-time", "kept"]
)
def test_a_csms_home_shows_their_open_and_overdue_tasks(app, client, session, app_config):
    from datetime import date, timedelta

    from cs_metrics.models import AccountProfile, CsTask
    from portal.core.identity import Role
    from tests.factories import OrganizationFactory, staff

    csm = staff(Role.CSM)
    org = OrganizationFactory()
    session.add(AccountProfile(organization_id=org.id, csm_id=csm.id))
    late = date.today() - timedelta(days=2)
    session.add(CsTask(organization_id=org.id, assignee_id=csm.id, title="Call", due_on=late))
    session.add(CsTask(organization_id=org.id, assignee_id=csm.id, title="Write"))
    session.add(CsTask(organization_id=org.id, assignee_id=csm.id, title="Done", status="done"))
    session.flush()

    login(client, csm)
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    card = html.split('data-testid="home-cs"')[1].split("</p>")[0]
    assert "You have 2 open tasks. 1 is overdue." in card
    assert 'href="/cs/tasks?scope=mine"' in html
    # Completing the late one (a request of this process) shows on the next visit, kept or not.
    (call,) = session.scalars(select(CsTask).where(CsTask.title == "Call"))
    done = client.post(f"/cs/tasks/{call.id}/complete", data={"done-outcome": "Called them"})
    assert done.status_code == 302
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    card = html.split('data-testid="home-cs"')[1].split("</p>")[0]
    assert "You have 1 open task." in card and "overdue" not in card

    login(client, member())
    assert 'data-testid="home-cs"' not in client.get("/").get_data(as_text=True)


def test_pages_name_their_icon_and_the_classic_icon_address_leads_to_it(client, session):
    html = client.get("/sign-in").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert icon is not None
    with client.get(icon.group(1)) as served:
        assert served.status_code == 200
        assert served.mimetype == "image/svg+xml"
        assert b"<svg" in served.data

    classic = client.get("/favicon.ico")
    assert classic.status_code == 301
    assert classic.headers["Location"].endswith(icon.group(1))
