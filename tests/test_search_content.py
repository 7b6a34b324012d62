"""Real content through the real index: questions, answers and articles written by the features
are found with the visibility they have, and leave the index when moderation hides them."""

from __future__ import annotations

from portal.core.db import db
from portal.core.identity import Role
from portal.kb import service as kb
from portal.qa.models import Question
from portal.search import query
from tests.conftest import login
from tests.factories import OrganizationFactory, staff
from tests.qa_factories import QA, member

PUBLIC = "Quarterly churn forecast template"
PRIVATE = "Quarterly churn forecast for our board"


def _titles(client, path: str) -> str:
    return client.get(path).get_data(as_text=True)


def test_questions_and_articles_are_found_with_their_visibility(app, session, client):
    qa = QA(app, session)
    acme, globex = OrganizationFactory(), OrganizationFactory()
    alice, carol = member(organization=acme), member(organization=acme)
    bob = member(organization=globex)
    moderator = staff(Role.MODERATOR)
    public = qa.question(alice, title=PUBLIC, body="Which template predicts churn?")
    private = qa.question(alice, title=PRIVATE, body="Numbers for the board.", private=True)
    qa.answer(public, bob, "Use the cohort retention template and its forecast tab.")
    qa(
        kb.create_article,
        moderator,
        title="预测客户流失的季度报表",
        body="使用留存报表模板预测客户流失。",
        language="zh_CN",
        category_id=None,
        tags="churn",
        published=True,
    )
    with app.app_context():
        session.commit()  # the index follows the commit

    # Another organization finds the public question (and the answer), never the private one:
    # on the page, in as-you-type suggestions and through the API.
    login(client, bob)
    page = _titles(client, "/search?q=quarterly+churn+forecast")
    assert PUBLIC in page and PRIVATE not in page
    suggested = client.get("/search/suggest?q=quarterly").get_json()["results"]
    assert PUBLIC in [s["title"] for s in suggested]
    assert PRIVATE not in [s["title"] for s in suggested]
    api = client.get("/api/v1/search?q=churn+forecast").get_json()
    assert {(i["kind"], i["title"]) for i in api["items"]} >= {("question", PUBLIC)}
    assert PRIVATE not in {i["title"] for i in api["items"]}
    assert "cohort retention" in _titles(client, "/search?q=cohort+retention")
    assert "预测客户流失" in _titles(client, "/search?q=客户流失")

    # The asker's colleague sees both; staff see everything.
    login(client, carol)
    assert PRIVATE in _titles(client, "/search?q=quarterly+churn+forecast")
    login(client, moderator)
    assert PRIVATE in _titles(client, "/search?q=board")

    # Hidden by a moderator: out of the index for everyone.
    from moderation import service as moderation

    with app.app_context():
        moderation.hide(
            session, moderator, moderation.item_id(session, "question", private.id), "Off-topic"
        )
        session.commit()
        assert session.get(Question, private.id).published is False
        assert [h.id for h in query.search(db.session, carol, "board").hits] == []
    login(client, carol)
    assert PRIVATE not in _titles(client, "/search?q=quarterly+churn+forecast")


def test_a_template_is_found_by_its_industry_whose_name_stays_out_of_the_snippet(
    app, session, client
):
    from tests.gallery_factories import Gallery

    template = Gallery(app, session).template(
        title="Ward occupancy board",
        description="Beds in use per ward, by day.",
        category="dashboard",
        industry="healthcare",
    )
    with app.app_context():
        session.commit()  # the index follows the commit
    login(client, member())
    page = _titles(client, "/search?q=healthcare")
    assert template.title in page  # found by the industry's name and code...
    hit = page.split(template.title)[1].split("</p>")[0]
    assert "Beds in use per ward" in hit
    assert "Healthcare" not in hit and "healthcare" not in hit  # ...which the snippet leaves out
