"""Data governance: people download their data, accounts are erased with counts kept exact,
organizations are exported and deleted, and nobody touches what is not theirs."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from cs_metrics.models import NpsResponse, NpsSurveyState
from portal.core.activity import Activity
from portal.core.consent import Consent
from portal.core.db import db, utcnow
from portal.core.identity import Organization, Role, User
from portal.core.notifications import Notification, notify
from portal.gallery import service as gallery
from portal.gallery.models import Template
from portal.kb import service as kb
from portal.privacy import service as privacy
from portal.privacy.models import DataExport, ExportStatus
from portal.qa import service as qa_service
from portal.qa.models import Answer, Question
from portal.roadmap import service as roadmap
from portal.roadmap.models import Idea, IdeaVote
from portal.search import query
from tests.conftest import login
from tests.factories import PASSWORD, OrganizationFactory, UserFactory, staff
from tests.gallery_factories import Gallery
from tests.qa_factories import QA
from tests.qa_factories import member as trusted_member
from tests.roadmap_factories import Roadmap


@pytest.fixture
def qa(app, session):
    return QA(app, session)


@pytest.fixture
def ideas(app, session):
    return Roadmap(app, session)


@pytest.fixture
def templates(app, session):
    return Gallery(app, session)


def member(**kwargs):
    """Trust level 4: these tests post a lot within one minute."""
    return trusted_member(trust_level=4, **kwargs)


def org_admin(**kwargs):
    return UserFactory(roles=[Role.ORG_ADMIN], trust_level=4, **kwargs)


def archive_of(response) -> dict:
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.mimetype == "application/zip"
    body = response.data
    response.close()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["data.json"]
        raw = archive.read("data.json").decode("utf-8")
    assert "\\u" not in raw  # UTF-8 text, not escapes: readable as it is
    return json.loads(raw)


def ready_link(session, user) -> str:
    """The download link the export's notification carries."""
    session.expire_all()
    note = session.scalar(
        select(Notification)
        .where(Notification.user_id == user.id, Notification.kind == "data_export")
        .order_by(Notification.id.desc())
    )
    assert note is not None, "no notification that the export is ready"
    return note.link


def gone(session, obj) -> bool:
    """Whether ``obj``'s row is gone (read without loading the expired object)."""
    mapper = inspect(obj).mapper
    key = inspect(obj).identity
    where = [column == value for column, value in zip(mapper.primary_key, key, strict=True)]
    return session.scalar(select(func.count()).select_from(mapper.local_table).where(*where)) == 0


def search_titles(app, session, user, text: str) -> list[str]:
    with app.app_context():
        return [hit.title for hit in query.search(db.session, user, text).hits]


def everything_of(app, session, qa, ideas, templates, person, other, tag: str) -> dict:
    """One of each kind of data for ``person``, on ``other``'s content where needed."""
    theirs = qa.question(other, title=f"Other question {tag}", body="Their body.")
    their_answer = qa.answer(theirs, other, f"Their answer {tag} body text.")
    question = qa.question(person, title=f"Question by {tag}", body=f"Body of {tag}.")
    answer = qa.answer(theirs, person, f"Answer written by {tag} here.")
    qa(qa_service.comment, person, f"Comment by {tag}", question_id=theirs.id)
    qa(qa_service.vote, person, 1, question_id=theirs.id)
    qa(qa_service.mark_helpful, person, their_answer.id)
    idea = ideas.idea(person, title=f"Idea by {tag}")
    their_idea = ideas.idea(other, title=f"Other idea {tag}")
    ideas.vote(person, their_idea)
    ideas(roadmap.comment, person, their_idea.id, f"Idea comment by {tag}")
    template = templates.template(person, title=f"Template by {tag}")
    their_template = templates.template(other, title=f"Other template {tag}")
    templates(gallery.rate, person, their_template.id, 4)
    templates(gallery.review, person, their_template.id, f"Review by {tag}, very useful.")
    session.add(
        NpsResponse(
            organization_id=person.organization_id,
            user_id=person.id,
            score=9,
            comment=f"NPS comment by {tag}",
            responded_at=utcnow(),
            source="in_app",
        )
    )
    session.add(NpsSurveyState(user_id=person.id, last_answered_at=utcnow()))
    session.add(Consent(user_id=person.id, purpose="marketing_email", granted=True))
    with app.app_context():
        notify(session, person, "test", f"Notification for {tag}")
    session.add(
        Activity(
            actor_id=person.id,
            organization_id=person.organization_id,
            verb="search.performed",
            data={"query": f"secret search {tag}", "results": 3, "source": "page"},
        )
    )
    session.flush()
    return {
        "question": question,
        "answer": answer,
        "idea": idea,
        "template": template,
        "their_question": theirs,
        "their_answer": their_answer,
        "their_idea": their_idea,
        "their_template": their_template,
    }


# --- export ------------------------------------------------------------------------------


def test_export_holds_every_category_of_mine_and_nothing_of_anyone_else(
    app, session, client, qa, ideas, templates
):
    alice = member(display_name="Alice Liddell 爱丽丝")
    bob = member(display_name="Bob Builder")
    everything_of(app, session, qa, ideas, templates, alice, bob, "alice")
    everything_of(app, session, qa, ideas, templates, bob, member(), "bob")
    session.commit()

    login(client, alice)
    assert client.get("/privacy/").status_code == 200
    assert client.post("/privacy/exports").status_code == 302
    link = ready_link(session, alice)
    document = archive_of(client.get(link))
    data = document["data"]

    assert data["profile"]["email"] == alice.email
    assert data["profile"]["display_name"] == "Alice Liddell 爱丽丝"
    assert data["membership"]["roles"] == ["member"]
    assert [q["title"] for q in data["qa"]["questions"]] == ["Question by alice"]
    assert [a["body_source"] for a in data["qa"]["answers"]] == ["Answer written by alice here."]
    assert [c["body_source"] for c in data["qa"]["comments"]] == ["Comment by alice"]
    assert [v["value"] for v in data["qa"]["votes"]] == [1]
    assert len(data["qa"]["helpful_marks"]) == 1
    assert [i["title"] for i in data["roadmap"]["ideas"]] == ["Idea by alice"]
    assert [c["body_source"] for c in data["roadmap"]["idea_comments"]] == ["Idea comment by alice"]
    assert len(data["roadmap"]["idea_votes"]) == 1
    assert [t["title"] for t in data["gallery"]["templates"]] == ["Template by alice"]
    assert [r["stars"] for r in data["gallery"]["ratings"]] == [4]
    assert [r["body_source"] for r in data["gallery"]["reviews"]] == [
        "Review by alice, very useful."
    ]
    assert [(n["score"], n["comment"]) for n in data["cs_metrics"]["nps_answers"]] == [
        (9, "NPS comment by alice")
    ]
    assert data["cs_metrics"]["nps_survey_state"]["last_answered_at"]
    assert [(c["purpose"], c["granted"]) for c in data["core"]["consents"]] == [
        ("marketing_email", True)
    ]
    assert "Notification for alice" in [n["message"] for n in data["core"]["notifications"]]
    verbs = {row["verb"] for row in data["core"]["activity"]}
    assert {"question.asked", "search.performed"} <= verbs
    assert "moderation" in data and "kb" in data and "accounts" in data

    # Nothing of Bob's: not his address, his name or anything he wrote.
    text = json.dumps(document, ensure_ascii=False)
    for trace in (bob.email, "Bob Builder", "by bob", "secret search bob", "NPS comment by bob"):
        assert trace not in text
    assert Path(app.config["UPLOAD_DIR"], "exports").is_dir()


def test_download_is_only_for_the_requester_and_expires(app, session, client):
    alice, bob = member(), member()
    session.commit()
    login(client, alice)
    client.post("/privacy/exports")
    link = ready_link(session, alice)
    export = session.scalar(select(DataExport).where(DataExport.user_id == alice.id))
    assert export.status == ExportStatus.READY
    assert export.expires_at - export.finished_at == timedelta(days=7)

    login(client, bob)
    assert client.get(link).status_code == 404
    assert client.get("/privacy/exports/999999/download").status_code == 404
    client.post("/sign-out")
    assert client.get(link).status_code in (302, 401)

    login(client, alice)
    archive_of(client.get(link))
    name = export.filename
    assert Path(app.config["UPLOAD_DIR"], "exports", name).is_file()
    export.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert client.get(link).status_code == 404
    with app.app_context():
        assert privacy.expire_exports(session, app.config["UPLOAD_DIR"]) == 1
    session.commit()
    assert export.status == ExportStatus.EXPIRED
    assert export.filename is None
    assert not Path(app.config["UPLOAD_DIR"], "exports", name).exists()


def test_a_second_request_while_one_is_pending_is_not_doubled(app, session):
    alice = member()
    with app.app_context():
        first = privacy._request(session, alice, user_id=alice.id)
        second = privacy._request(session, alice, user_id=alice.id)
        session.rollback()  # nothing is sent: the task never runs
    assert first.id == second.id


# --- erasure -----------------------------------------------------------------------------


def test_self_erasure_needs_the_password_and_keeps_counts_and_content(
    app, session, client, qa, ideas, templates
):
    alice = member(display_name="Alice Liddell")
    bob = member(display_name="Bob Builder")
    made = everything_of(app, session, qa, ideas, templates, alice, bob, "alice")
    session.commit()
    email = alice.email
    nps_before = session.scalar(select(func.count()).select_from(NpsResponse))

    login(client, alice)
    wrong = client.post("/privacy/erase", data={"password": "not my password", "content": "keep"})
    assert wrong.status_code == 422
    assert "password is not correct" in wrong.get_data(as_text=True)
    session.expire_all()
    assert session.get(User, alice.id).erased_at is None

    done = client.post("/privacy/erase", data={"password": PASSWORD, "content": "keep"})
    assert done.status_code == 302
    session.expire_all()
    erased = session.get(User, alice.id)
    assert erased.email == f"erased-{alice.id}@invalid.example"
    assert erased.display_name == "Deleted user"
    assert erased.active is False and erased.erased_at is not None
    assert erased.roles == frozenset()

    # Signed out for good: the old session is refused and the password no longer works.
    assert client.get("/privacy/").status_code == 302
    refused = client.post("/sign-in", data={"email": email, "password": PASSWORD})
    assert refused.status_code == 401

    # The content stays, under the erased row; every count is what it was.
    assert session.get(Question, made["question"].id).author_id == alice.id
    assert session.get(Answer, made["answer"].id) is not None
    assert session.get(Question, made["their_question"].id).score == 1
    assert session.get(Answer, made["their_answer"].id).helpful_count == 1
    assert session.get(Idea, made["their_idea"].id).vote_count == 1
    assert session.get(Template, made["their_template"].id).rating_count == 1
    assert session.scalar(select(func.count()).select_from(NpsResponse)) == nps_before
    assert session.scalar(select(NpsResponse.score).where(NpsResponse.user_id == alice.id)) == 9

    # Personal data is gone.
    for model in (Notification, Consent):
        assert not session.scalars(select(model).where(model.user_id == alice.id)).all()
    assert not session.scalars(
        select(NpsSurveyState).where(NpsSurveyState.user_id == alice.id)
    ).all()
    searched = session.scalar(
        select(Activity).where(Activity.actor_id == alice.id, Activity.verb == "search.performed")
    )
    assert searched.data == {"results": 3, "source": "page"}
    record = session.scalar(select(Activity).where(Activity.verb == "account.erased"))
    assert record.subject_id == alice.id
    assert email not in json.dumps(record.data) and "Alice" not in json.dumps(record.data)
    assert "Alice Liddell" not in client.get(f"/questions/{made['question'].id}").get_data(
        as_text=True
    )


def test_admin_erasure_can_remove_the_content_and_the_index_forgets_it(
    app, session, client, qa, ideas
):
    admin = org_admin()
    zeb = member(organization=admin.organization, display_name="Zebulon Quixote")
    other = member()
    own = qa.question(zeb, title="Zebulon Quixote asks about exports", body="Exports please.")
    theirs = qa.question(other, title="Scheduling reports weekly", body="How?")
    qa.answer(theirs, zeb, "Zebulon Quixote says: use the scheduler.")
    idea = ideas.idea(zeb, title="Zebulon Quixote wants dark mode")
    their_idea = ideas.idea(other, title="Weekly digest of dashboards")
    ideas.vote(zeb, their_idea)
    qa(qa_service.vote, zeb, 1, question_id=theirs.id)
    with app.app_context():
        session.commit()
    assert "Zebulon Quixote asks about exports" in search_titles(app, session, other, "Zebulon")
    assert session.get(Question, theirs.id).answer_count == 1

    login(client, admin)
    page = client.get(f"/privacy/users/{zeb.id}/erase")
    assert page.status_code == 200 and "Zebulon Quixote" in page.get_data(as_text=True)
    response = client.post(f"/privacy/users/{zeb.id}/erase", data={"content": "remove"})
    assert response.status_code == 302
    session.expire_all()

    assert gone(session, own)
    assert gone(session, idea)
    assert session.get(Question, theirs.id).answer_count == 0
    assert session.get(Question, theirs.id).score == 1  # the vote stays counted
    assert session.get(Idea, their_idea.id).vote_count == 1
    assert session.get(User, zeb.id).erased_at is not None
    assert search_titles(app, session, other, "Zebulon") == []
    assert search_titles(app, session, other, "Quixote") == []
    assert "Scheduling reports weekly" in search_titles(app, session, other, "scheduling")


def test_admin_erasure_keeping_content_shows_it_anonymously(app, session, client, qa):
    vendor_admin = staff(Role.VENDOR_ADMIN)
    zeb = member(display_name="Zebulon Quixote")
    own = qa.question(zeb, title="How do I rotate API keys safely?", body="Rotation plan.")
    with app.app_context():
        session.commit()
    login(client, vendor_admin)
    response = client.post(f"/privacy/users/{zeb.id}/erase", data={"content": "keep"})
    assert response.status_code == 302
    page = client.get(f"/questions/{own.id}").get_data(as_text=True)
    assert "How do I rotate API keys safely?" in page
    assert "Zebulon" not in page and "Deleted user" in page
    assert search_titles(app, session, zeb, "rotate") == ["How do I rotate API keys safely?"]
    assert search_titles(app, session, vendor_admin, "Zebulon") == []


def test_an_erased_authors_name_is_shown_in_the_readers_language(app, session, client, qa):
    vendor_admin = staff(Role.VENDOR_ADMIN)
    zeb = member(display_name="Zebulon Quixote")
    own = qa.question(zeb, title="How do I rotate API keys safely?", body="Rotation plan.")
    qa.answer(own, zeb, body="Rotate them monthly.")
    with app.app_context():
        session.commit()
    login(client, vendor_admin)
    client.post(f"/privacy/users/{zeb.id}/erase", data={"content": "keep"})
    client.post("/locale", data={"locale": "zh_CN", "next": "/"})
    question_page = client.get(f"/questions/{own.id}").get_data(as_text=True)
    assert question_page.count("已注销用户") >= 2  # the question's byline and the answer's
    list_page = client.get("/questions/").get_data(as_text=True)
    for page in (question_page, list_page):
        assert "已注销用户" in page and "Deleted user" not in page and "Zebulon" not in page


def test_customers_cannot_erase_others(app, session, client):
    acme = OrganizationFactory()
    alice = member(organization=acme)
    colleague = member(organization=acme)
    stranger = member()
    other_admin = org_admin()
    session.commit()

    login(client, alice)
    assert (
        client.post(f"/privacy/users/{colleague.id}/erase", data={"content": "keep"}).status_code
        == 403
    )
    assert (
        client.post(f"/privacy/users/{stranger.id}/erase", data={"content": "keep"}).status_code
        == 404
    )
    assert client.get(f"/privacy/users/{colleague.id}/erase").status_code == 403
    login(client, other_admin)
    assert (
        client.post(f"/privacy/users/{alice.id}/erase", data={"content": "remove"}).status_code
        == 404
    )
    bad = client.post(f"/privacy/users/{other_admin.id}/erase", data={"content": "nonsense"})
    assert bad.status_code == 422
    session.expire_all()
    assert all(
        session.get(User, u.id).erased_at is None for u in (alice, colleague, stranger, other_admin)
    )


# --- organizations -----------------------------------------------------------------------


def test_org_export_holds_that_organization_only(app, session, client, qa):
    acme = OrganizationFactory(name="Acme Corp")
    admin = org_admin(organization=acme, display_name="Ada Admin")
    carol = member(organization=acme, display_name="Carol Acme")
    dave = member(display_name="Dave Elsewhere")
    qa.question(carol, title="Acme question about SSO", body="Okta.")
    qa.question(dave, title="Globex question about billing", body="Invoices.")
    session.commit()

    login(client, carol)
    assert client.post("/privacy/org-exports").status_code == 403

    login(client, admin)
    assert client.post("/privacy/org-exports").status_code == 302
    document = archive_of(client.get(ready_link(session, admin)))
    assert document["scope"] == "organization"
    data = document["data"]
    assert data["organization"]["name"] == "Acme Corp"
    names = sorted(m["profile"]["display_name"] for m in data["members"])
    assert names == ["Ada Admin", "Carol Acme"]
    text = json.dumps(document, ensure_ascii=False)
    assert "Acme question about SSO" in text
    assert "Globex" not in text and "Dave Elsewhere" not in text and dave.email not in text

    login(client, carol)
    assert client.get(ready_link(session, admin)).status_code == 404


def test_vendor_admin_deletes_an_organization_with_everything_it_owns(
    app, session, client, qa, ideas, templates
):
    vendor_admin = staff(Role.VENDOR_ADMIN)
    acme = OrganizationFactory(name="Acme Corp")
    acme_id = acme.id
    carol = member(organization=acme, display_name="Carol Acme")
    admin = org_admin(organization=acme)
    dave = member(display_name="Dave Elsewhere")
    made = everything_of(app, session, qa, ideas, templates, carol, dave, "carol")
    with app.app_context():
        session.commit()
    assert "Question by carol" in search_titles(app, session, dave, "Question by carol")

    login(client, admin)
    assert (
        client.post(
            f"/privacy/orgs/{acme.id}/delete", data={"confirmation": "Acme Corp"}
        ).status_code
        == 403
    )
    login(client, dave)
    assert (
        client.post(
            f"/privacy/orgs/{acme.id}/delete", data={"confirmation": "Acme Corp"}
        ).status_code
        == 404
    )

    login(client, vendor_admin)
    vendor_org = vendor_admin.organization_id
    refused = client.post(f"/privacy/orgs/{vendor_org}/delete", data={"confirmation": "Vendor"})
    assert refused.status_code == 400
    assert client.get(f"/privacy/orgs/{acme.id}/delete").status_code == 200
    mistyped = client.post(f"/privacy/orgs/{acme.id}/delete", data={"confirmation": "Acme"})
    assert mistyped.status_code == 422
    session.expire_all()
    assert session.get(Organization, acme.id) is not None

    done = client.post(f"/privacy/orgs/{acme_id}/delete", data={"confirmation": "Acme Corp"})
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert "Acme Corp was deleted" in page and "2 member accounts" in page
    assert "questions" in page

    session.expire_all()
    assert gone(session, acme)
    assert gone(session, carol) and gone(session, admin)
    assert gone(session, made["question"])
    assert gone(session, made["idea"])
    assert gone(session, made["template"])
    assert not session.scalars(
        select(NpsResponse).where(NpsResponse.organization_id == acme_id)
    ).all()
    # What Carol's votes and ratings gave other organizations' content is given back.
    assert session.get(Question, made["their_question"].id).score == 0
    assert session.get(Answer, made["their_answer"].id).helpful_count == 0
    assert session.get(Idea, made["their_idea"].id).vote_count == 0
    assert session.scalar(select(func.count()).select_from(IdeaVote)) == 0
    assert session.get(Template, made["their_template"].id).rating_count == 0
    assert session.get(Question, made["their_question"].id) is not None
    assert "Question by carol" not in search_titles(app, session, dave, "Question by carol")
    assert (
        session.scalar(select(Activity).where(Activity.verb == "org.deleted")).data[
            "organization_id"
        ]
        == acme_id
    )


def test_kb_feedback_is_exported_and_its_comment_erased(app, session, qa):
    moderator = staff(Role.MODERATOR)
    alice = member()
    article = qa(
        kb.create_article,
        moderator,
        title="Rotate keys",
        body="Do it monthly.",
        language="en",
        category_id=None,
        tags="",
        published=True,
    )
    qa(kb.give_feedback, alice, article.id, False, "Missing the CLI steps, Alice")
    with app.app_context():
        data = privacy.user_data(session, alice)
        assert data["kb"]["article_feedback"][0]["comment"] == "Missing the CLI steps, Alice"
        privacy.erase_account(session, alice, alice.id, "keep", PASSWORD)
        session.flush()
    session.expire_all()
    assert session.get(type(article), article.id).helpful_no == 1
    with app.app_context():
        assert (
            privacy.user_data(session, session.get(User, alice.id))["kb"]["article_feedback"][0][
                "comment"
            ]
            is None
        )


def test_the_last_vendor_admin_cannot_erase_their_account(app, session, client):
    only = staff(Role.VENDOR_ADMIN)
    session.commit()
    login(client, only)

    refused = client.post("/privacy/erase", data={"password": PASSWORD, "content": "keep"})

    assert refused.status_code == 409
    assert "last vendor admin" in refused.get_data(as_text=True)
    session.expire_all()
    assert session.get(User, only.id).erased_at is None

    staff(Role.VENDOR_ADMIN)
    session.commit()
    done = client.post("/privacy/erase", data={"password": PASSWORD, "content": "keep"})
    assert done.status_code == 302
    session.expire_all()
    assert session.get(User, only.id).erased_at is not None
