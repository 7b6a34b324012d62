"""Roadmap pages through the HTTP client: board, idea page, forms, changelog, impact, admin."""

from __future__ import annotations

from decimal import Decimal
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select

from portal.core.identity import Role
from portal.roadmap import service
from portal.roadmap.models import Idea, IdeaVote
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.factories import OrganizationFactory, staff
from tests.roadmap_factories import Roadmap, member, product_manager


@pytest.fixture
def rm(app, session) -> Roadmap:
    return Roadmap(app, session)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_board_counts_are_singular_for_one(rm, client):
    idea = rm.idea(title="Schedule PDF exports")
    rm.vote(member(), idea)
    rm(service.comment, member(), idea.id, "We need this for the board meeting.")
    page = text(client.get("/roadmap/", headers={"Accept-Language": "en"}))
    row = page[page.index(f'data-idea-id="{idea.id}"') :]
    row = row[: row.index("</li>")]
    assert "<div>vote</div>" in row and "· 1 comment</span>" in row, row
    rm.vote(member(), idea)
    page = text(client.get("/roadmap/", headers={"Accept-Language": "en"}))
    assert "<div>votes</div>" in page[page.index(f'data-idea-id="{idea.id}"') :]


def test_the_board_lists_sorts_filters_and_paginates(rm, client):
    old = rm.idea(title="Export dashboards to Excel", product_area="reports", tags="excel")
    hot = rm.idea(title="Single sign-on with Okta", product_area="sso")
    for _ in range(3):
        rm.vote(member(), hot)
    page = text(client.get("/roadmap/?sort=top"))
    assert page.index("Single sign-on with Okta") < page.index("Export dashboards to Excel")
    page = text(client.get("/roadmap/?sort=new"))
    assert page.index("Single sign-on with Okta") < page.index("Export dashboards to Excel")
    assert "Single sign-on" in text(client.get("/roadmap/?sort=trending"))
    only = text(client.get("/roadmap/?area=reports"))
    assert "Export dashboards" in only and "Okta" not in only
    tagged = text(client.get("/roadmap/?tag=excel"))
    assert "Export dashboards" in tagged and "Okta" not in tagged
    rm(service.change_status, product_manager(), old.id, "planned", "")
    planned = text(client.get("/roadmap/?status=planned"))
    assert "Export dashboards" in planned and "Okta" not in planned
    paged = text(client.get("/roadmap/?per_page=1&page=2&sort=top"))
    assert "Export dashboards" in paged and "Okta" not in paged
    for bad in ("sort=best", "status=someday", "area=nowhere"):
        assert client.get(f"/roadmap/?{bad}").status_code == 400


def test_my_votes_shows_only_what_i_voted_for(rm, client):
    me = member()
    mine = rm.idea(title="Idea I voted for today")
    rm.idea(title="Idea someone else wants")
    rm.vote(me, mine, 3)
    assert client.get("/roadmap/?sort=mine").status_code == 302
    login(client, me)
    page = text(client.get("/roadmap/?sort=mine"))
    assert "Idea I voted for today" in page and "someone else" not in page
    assert "You voted" in page


def test_the_board_runs_a_constant_number_of_statements(rm, client, connection):
    viewer = member()

    def queries(n: int) -> int:
        for _ in range(n):
            idea = rm.idea(tags=["a1", "b2"])
            rm.vote(viewer, idea)
        login(client, viewer)
        client.get("/roadmap/")  # the layout's once-a-session work (the NPS prompt) aside
        return count_statements(client, connection, "/roadmap/?per_page=50&sort=trending")

    few, many = queries(2), queries(12)
    assert few == many
    assert many <= 8


def test_submitting_an_idea_through_the_form(client, session):
    author = member()
    login(client, author)
    form = text(client.get("/roadmap/new"))
    assert "data-similar-ideas" in form and "roadmap.js" in form
    bad = client.post("/roadmap/new", data={"title": "abc", "description": "x"})
    assert bad.status_code == 422 and "5 to 200" in text(bad)
    response = client.post(
        "/roadmap/new",
        data={
            "title": "Let us schedule report exports",
            "description": "Every Monday **by hand**.",
            "product_area": "reports",
            "tags": "exports",
        },
    )
    assert response.status_code == 302
    idea = session.scalars(select(Idea)).one()
    page = text(client.get(response.headers["Location"], follow_redirects=True))
    assert "<strong>by hand</strong>" in page and idea.title in page


def test_voting_from_the_idea_page_twice_says_so(rm, client, session):
    idea, voter = rm.idea(), member()
    login(client, voter)
    page = client.post(
        f"/roadmap/ideas/{idea.id}/vote", data={"importance": "3"}, follow_redirects=True
    )
    assert "Thank you for your vote" in text(page) and "You voted: Critical" in text(page)
    again = client.post(
        f"/roadmap/ideas/{idea.id}/vote", data={"importance": "3"}, follow_redirects=True
    )
    assert "already counted" in text(again)
    assert session.scalar(select(func.count()).select_from(IdeaVote)) == 1
    bad = client.post(
        f"/roadmap/ideas/{idea.id}/vote", data={"importance": "9"}, follow_redirects=True
    )
    assert bad.status_code == 200 and "nice to have, important or critical" in text(bad)
    gone = client.post(f"/roadmap/ideas/{idea.id}/unvote", follow_redirects=True)
    assert "Your vote was removed" in text(gone)
    assert client.post("/roadmap/ideas/999999/vote", data={"importance": "2"}).status_code == 404


def test_a_merged_idea_redirects_to_its_target(rm, client):
    pm = product_manager()
    source, target = rm.idea(), rm.idea()
    rm(service.merge, pm, source.id, target.id)
    response = client.get(f"/roadmap/ideas/{source.id}")
    assert response.status_code == 302
    assert f"/roadmap/ideas/{target.id}" in response.headers["Location"]
    assert client.get(f"/roadmap/ideas/{source.id}?original=1").status_code == 200


def test_staff_forms_change_status_and_merge_but_customers_get_403(rm, client, session):
    pm = product_manager()
    idea, other = rm.idea(), rm.idea()
    login(client, member())
    page = text(client.get(f"/roadmap/ideas/{idea.id}"))
    assert "Change status" not in page and "Impact (staff only)" not in page
    assert (
        client.post(f"/roadmap/ideas/{idea.id}/status", data={"status": "planned"}).status_code
        == 403
    )
    assert (
        client.post(f"/roadmap/ideas/{idea.id}/merge", data={"target_id": other.id}).status_code
        == 403
    )
    login(client, pm)
    page = text(client.get(f"/roadmap/ideas/{idea.id}"))
    assert "Change status" in page and "Impact (staff only)" in page
    response = client.post(
        f"/roadmap/ideas/{idea.id}/status",
        data={"status": "planned", "response": "We will build it in Q3."},
        follow_redirects=True,
    )
    assert "We will build it in Q3." in text(response)
    bad = client.post(f"/roadmap/ideas/{idea.id}/status", data={"status": "someday"})
    assert bad.status_code == 422
    self_merge = client.post(f"/roadmap/ideas/{idea.id}/merge", data={"target_id": idea.id})
    assert self_merge.status_code == 422 and "into itself" in text(self_merge)
    merged = client.post(f"/roadmap/ideas/{other.id}/merge", data={"target_id": idea.id})
    assert merged.status_code == 302
    undone = client.post(f"/roadmap/ideas/{other.id}/unmerge", follow_redirects=True)
    assert "The merge was undone" in text(undone)


def test_changelog_and_atom_feed_list_shipped_ideas(rm, client):
    pm = product_manager()
    shipped, planned = rm.idea(title="Scheduled exports <b>now</b>"), rm.idea()
    rm(service.change_status, pm, shipped.id, "shipped", "", "Exports run **on schedule**.")
    rm(service.change_status, pm, planned.id, "planned", "")
    page = text(client.get("/roadmap/changelog"))
    assert "<strong>on schedule</strong>" in page and planned.title not in page
    assert "Scheduled exports &lt;b&gt;now&lt;/b&gt;" in page
    day = shipped.shipped_at.date()  # a reader in UTC; the board says the day it was posted
    assert f">{day:%b} {day.day}, {day.year}</time>" in page
    posted = shipped.created_at.date()
    board = text(client.get("/roadmap/", headers={"Accept-Language": "zh-CN"}))
    assert f">{posted.year}年{posted.month}月{posted.day}日</time>" in board
    feed = client.get("/roadmap/changelog.atom")
    assert feed.mimetype == "application/atom+xml"
    root = ElementTree.fromstring(feed.get_data())  # noqa: S314 - our own feed
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = root.findall("a:entry", ns)
    assert len(entries) == 1
    assert entries[0].find("a:title", ns).text == "Scheduled exports <b>now</b>"
    assert "<strong>on schedule</strong>" in entries[0].find("a:content", ns).text


def test_impact_is_for_staff_sortable_and_exported(rm, client, session):
    cs_factories.bind(session)
    big, small = OrganizationFactory(name="Big Bank"), OrganizationFactory(name="Small Shop")
    cs_factories.AccountFactory(organization_id=big.id, arr=Decimal("900000"))
    cs_factories.AccountFactory(organization_id=small.id, arr=Decimal("1000"))
    cs_factories.SnapshotFactory(organization_id=small.id, band="red", effective_band="red")
    rich = rm.idea(title="Idea the big bank wants")
    risky = rm.idea(title="Idea the red account wants")
    rm.vote(member(organization=big), rich)
    rm.vote(member(organization=small), risky)
    assert client.get("/roadmap/impact").status_code == 302
    login(client, member())
    assert client.get("/roadmap/impact").status_code == 403
    assert client.get("/roadmap/impact.csv").status_code == 403
    login(client, staff(Role.MODERATOR))
    assert client.get("/roadmap/impact").status_code == 403
    assert 'href="/roadmap/impact"' not in text(client.get("/roadmap/"))  # no link to a 403
    login(client, staff(Role.CSM))
    assert 'href="/roadmap/impact"' in text(client.get("/roadmap/"))
    by_risk = text(client.get("/roadmap/impact?sort=arr_at_risk"))
    assert by_risk.index("red account") < by_risk.index("big bank")
    by_revenue = text(client.get("/roadmap/impact?sort=revenue"))
    assert by_revenue.index("big bank") < by_revenue.index("red account")
    assert client.get("/roadmap/impact?sort=nonsense").status_code == 400
    csv = client.get("/roadmap/impact.csv?sort=revenue")
    assert csv.mimetype == "text/csv" and "attachment" in csv.headers["Content-Disposition"]
    lines = csv.get_data(as_text=True).splitlines()
    assert "Big Bank" in lines[1] and "900000" in lines[1]


def test_admin_edits_labels_colors_and_budget(rm, client, session):
    login(client, product_manager())
    assert client.get("/roadmap/admin").status_code == 403
    login(client, staff(Role.VENDOR_ADMIN))
    assert client.get("/roadmap/admin").status_code == 200
    response = client.post(
        "/roadmap/admin",
        data={"label-planned": "Coming soon", "color-planned": "#112233", "budget": "5"},
    )
    assert response.status_code == 302
    idea = rm.idea()
    rm(service.change_status, product_manager(), idea.id, "planned", "")
    page = text(client.get(f"/roadmap/ideas/{idea.id}"))
    assert "Coming soon" in page and 'data-status-color="#112233"' in page
    assert rm(service.vote_budget) == 5
    bad = client.post("/roadmap/admin", data={"color-planned": "blue", "label-planned": "X"})
    assert bad.status_code == 422
    assert rm(service.status_labels)["planned"].label == "Coming soon"


@pytest.mark.parametrize("app_config", [{"ROADMAP_BOARD_CACHE_SECONDS": 60}])
def test_the_board_cache_is_cleared_by_committed_votes_and_unvotes(rm, client):
    from portal.roadmap import listcache

    listcache.clear()
    idea = rm.idea(title="Cached idea on the board")

    def shown_count() -> str:
        html = text(client.get("/roadmap/"))
        return html.split("data-vote-count>")[1].split("<")[0]

    assert shown_count() == "0"
    voter = member()
    login(client, voter)
    client.post(f"/roadmap/ideas/{idea.id}/vote", data={"importance": "2"})
    client.post("/sign-out")
    assert shown_count() == "1"
    login(client, voter)
    client.post(f"/roadmap/ideas/{idea.id}/unvote")  # a bulk DELETE, not an ORM object
    client.post("/sign-out")
    assert shown_count() == "0"
    listcache.clear()


def test_a_csm_records_a_vote_for_a_customer_from_the_idea_page(rm, client, session):
    idea, contact = rm.idea(), member(display_name="Carla Contact")
    csm = staff(Role.CSM)
    login(client, csm)
    page = text(client.get(f"/roadmap/ideas/{idea.id}"))
    assert "On behalf of a customer contact" in page and "Carla Contact" in page
    response = client.post(
        f"/roadmap/ideas/{idea.id}/vote",
        data={"importance": "3", "on_behalf_of": str(contact.id)},
        follow_redirects=True,
    )
    assert "Thank you for your vote" in text(response)
    row = session.scalars(select(IdeaVote)).one()
    assert (row.user_id, row.on_behalf_by_id, row.importance) == (contact.id, csm.id, 3)
    login(client, member())
    assert "On behalf of" not in text(client.get(f"/roadmap/ideas/{idea.id}"))


def test_the_idea_page_runs_a_constant_number_of_statements(rm, client, connection):
    from portal.roadmap import service as roadmap

    idea = rm.idea()
    pm = product_manager()

    def queries(n: int) -> int:
        for k in range(n):
            rm(roadmap.comment, member(), idea.id, f"Comment number {k}")
            rm.vote(member(organization=OrganizationFactory()), idea)
        login(client, pm)
        client.get(f"/roadmap/ideas/{idea.id}")
        return count_statements(client, connection, f"/roadmap/ideas/{idea.id}")

    assert queries(2) == queries(8)


def test_taking_back_a_vote_one_does_not_have_says_so(rm, client, session):
    idea = rm.idea()
    login(client, member())
    client.post(f"/roadmap/ideas/{idea.id}/vote", data={"importance": "2"})
    removed = client.post(f"/roadmap/ideas/{idea.id}/unvote", follow_redirects=True)
    assert "Your vote was removed." in text(removed)
    again = client.post(f"/roadmap/ideas/{idea.id}/unvote", follow_redirects=True)
    assert "You had not voted." in text(again) and "Your vote was removed." not in text(again)
