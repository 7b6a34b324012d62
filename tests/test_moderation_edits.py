"""A moderator's "edit and approve" meets the rules the author's text met, for every kind; and
the new-user image and link holds look at what readers will see, not at raw source text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from moderation import service as moderation
from moderation.models import AuditEntry, ModerationItem
from moderation.registry import kinds
from portal.accounts import service as accounts
from portal.core.activity import Activity
from portal.core.errors import DomainError
from portal.core.identity import Role
from portal.gallery import service as gallery_service
from portal.qa import service as qa_service
from portal.qa.models import Question
from portal.roadmap import service as roadmap_service
from portal.roadmap.models import Idea
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.gallery_factories import Gallery
from tests.qa_factories import QA
from tests.roadmap_factories import Roadmap


@pytest.fixture
def moderator(session):
    return staff(Role.MODERATOR, display_name="Mona Moderator")


def newcomer(**kwargs: Any):
    return UserFactory(trust_level=0, **kwargs)


def item_of(session, kind: str, object_id: int) -> ModerationItem:
    session.expire_all()
    return session.scalar(
        select(ModerationItem).where(
            ModerationItem.kind == kind, ModerationItem.object_id == object_id
        )
    )


def log_sizes(session) -> tuple[int, int]:
    """(audit entries, activity entries): a refused edit adds to neither."""
    session.expire_all()
    return (
        session.scalar(select(func.count()).select_from(AuditEntry)),
        session.scalar(select(func.count()).select_from(Activity)),
    )


TOO_LONG_QUESTION = "T" * 500 + "\n\n" + "body " * 30_000


# --- the queue page --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "Title: Write a title of 10 to 200 characters."),
        ("A perfectly long title", "Body: This field is required."),
        ("A perfectly long title\n\n" + "b" * 30_001, "Body: Use at most 30000 characters."),
        (TOO_LONG_QUESTION, "Title: Write a title of 10 to 200 characters."),
    ],
)
def test_an_edit_that_breaks_the_askers_rules_is_refused_and_changes_nothing(
    app, client, session, moderator, text, message
):
    question = QA(app, session).question(author=newcomer())
    item = item_of(session, "question", question.id)
    assert item.state == "pending"
    before = (question.title, question.body_source, item.source)
    logs = log_sizes(session)

    login(client, moderator)
    response = client.post(
        f"/moderation/items/{item.id}/approve", data={"text": text, "next": "/moderation/queue"}
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'aria-invalid="true"' in page
    assert text[:200] in page  # the moderator's text is kept to correct it
    item = item_of(session, "question", question.id)
    question = session.get(Question, question.id)
    assert item.state == "pending" and item.needs_review
    assert (question.title, question.body_source, item.source) == before
    assert not question.published
    assert log_sizes(session) == logs


def test_a_valid_edit_is_stored_as_the_author_would_have_it_and_published(
    app, client, session, moderator
):
    question = QA(app, session).question(author=newcomer())
    item = item_of(session, "question", question.id)
    login(client, moderator)
    response = client.post(
        f"/moderation/items/{item.id}/approve",
        data={"text": "  How do I share   a dashboard?\n\nWith the **share** menu.  \n"},
    )
    assert response.status_code == 302
    item = item_of(session, "question", question.id)
    question = session.get(Question, question.id)
    assert item.state == "published" and question.published
    assert question.title == "How do I share a dashboard?"
    assert question.body_source == "With the **share** menu."
    assert item.source == "How do I share a dashboard?\n\nWith the **share** menu."
    edit = session.scalar(select(AuditEntry).where(AuditEntry.action == "edited"))
    assert edit.after_text == item.source


def test_the_refusal_names_the_part_of_the_text_for_every_kind_of_field(
    app, client, session, moderator
):
    kind, user_id = _about(app, session)
    item = item_of(session, kind, user_id)
    login(client, moderator)
    response = client.post(f"/moderation/items/{item.id}/approve", data={"text": "p" * 5_001})
    assert response.status_code == 422
    assert "About you: Use at most 5000 characters." in response.get_data(as_text=True)
    assert item_of(session, kind, user_id).state == "pending"


def test_the_api_refuses_a_bad_edit_naming_the_field(app, client, session, moderator):
    from tests.test_api import assert_error, bearer, make_token

    question = QA(app, session).question(author=newcomer())
    item = item_of(session, "question", question.id)
    logs = log_sizes(session)
    token = make_token(client, session, moderator, scope="write")
    error = assert_error(
        client.post(
            f"/api/v1/moderation/items/{item.id}/decision",
            json={"action": "edit", "text": "x"},
            headers=bearer(token),
        ),
        422,
        "validation_error",
    )
    assert error["fields"] == {"title": ["Write a title of 10 to 200 characters."]}
    assert item_of(session, "question", question.id).state == "pending"
    assert log_sizes(session)[0] == logs[0]  # signing in with the token logs no decision

    ok = client.post(
        f"/api/v1/moderation/items/{item.id}/decision",
        json={"action": "edit", "text": "A question title long enough\n\nAnd a body."},
        headers=bearer(token),
    )
    assert ok.status_code == 200 and ok.get_json()["state"] == "published"


# --- every kind ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    make: Callable[[Any, Any], tuple[str, int]]  # (app, session) -> (kind, object id) pending
    bad: str
    field: str
    message: str
    good: str
    stored: str  # the item's source after the good edit


def _question(app, session):
    return "question", QA(app, session).question(author=newcomer()).id


def _answer(app, session):
    qa = QA(app, session)
    return "answer", qa.answer(qa.question(), author=newcomer()).id


def _qa_comment(app, session):
    qa = QA(app, session)
    question = qa.question()
    return "qa_comment", qa(qa_service.comment, newcomer(), "Same here", question_id=question.id).id


def _idea(app, session):
    return "idea", Roadmap(app, session).idea(author=newcomer()).id


def _idea_comment(app, session):
    roadmap = Roadmap(app, session)
    idea = roadmap.idea()
    return "idea_comment", roadmap(roadmap_service.comment, newcomer(), idea.id, "Yes please").id


def _template(app, session):
    return "template", Gallery(app, session).template(author=newcomer()).id


def _version(app, session):
    gallery = Gallery(app, session)
    author = UserFactory(trust_level=3)
    template = gallery.template(author=author)
    author.trust_level = 2  # below the upload threshold: the new version waits
    return "template_version", gallery.version(template, "1.1.0", author=author).id


def _review(app, session):
    gallery = Gallery(app, session)
    template = gallery.template(author=UserFactory(trust_level=3))
    return "template_review", gallery(gallery_service.review, newcomer(), template.id, "Neat").id


def _about(app, session):
    user = newcomer()
    with app.app_context():
        accounts.update_about(session, user, "Hello")
        session.flush()
    return "profile_about", user.id


CASES = {
    "question": Case(
        _question,
        "Short\n\nBody",
        "title",
        "Write a title of 10 to 200 characters.",
        "A long enough title\n\nBody",
        "A long enough title\n\nBody",
    ),
    "answer": Case(
        _answer, "a" * 30_001, "body", "Use at most 30000 characters.", " Fixed. ", "Fixed."
    ),
    "qa_comment": Case(
        _qa_comment, "c" * 601, "body", "Use at most 600 characters.", "Me too", "Me too"
    ),
    "idea": Case(
        _idea,
        "Idea\n\nA description",
        "title",
        "Write a title of 5 to 200 characters.",
        "Export on a schedule\n\nEvery Monday.",
        "Export on a schedule\n\nEvery Monday.",
    ),
    "idea_comment": Case(
        _idea_comment, "c" * 2_001, "body", "Use at most 2000 characters.", "Yes", "Yes"
    ),
    "template": Case(
        _template,
        "Tiny\n\nDescription",
        "title",
        "Write a title of 5 to 200 characters.",
        "Churn by segment\n\n" + "d" * 100,
        "Churn by segment\n\n" + "d" * 100,
    ),
    "template_version": Case(
        _version,
        "Whatever\n\n   ",
        "changelog",
        "Say what changed in this version.",
        "Ignored heading\n\nFaster exports.",
        "",  # checked below: the heading stays the template's
    ),
    "template_review": Case(
        _review, "r" * 5_001, "body", "Use at most 5000 characters.", "Useful", "Useful"
    ),
    "profile_about": Case(
        _about, "p" * 5_001, "about", "Use at most 5000 characters.", "I build reports", ""
    ),
}


def test_every_registered_kind_checks_a_moderators_edit(app):
    assert {name for name, kind in kinds().items() if kind.validate_edit is None} == set()
    assert set(CASES) | {"kb_candidate"} == set(kinds())  # kb: tests/test_kb.py


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_kind_refuses_a_bad_edit_with_its_authors_message_and_takes_a_good_one(
    app, session, moderator, name
):
    case = CASES[name]
    kind, object_id = case.make(app, session)
    assert kind == name
    item = item_of(session, kind, object_id)
    assert item.state == "pending", item.held_reasons
    source, logs = item.source, log_sizes(session)

    with app.app_context(), pytest.raises(DomainError) as refused:
        moderation.approve(session, moderator, item.id, new_text=case.bad)
    assert (refused.value.field, refused.value.message) == (case.field, case.message)
    item = item_of(session, kind, object_id)
    assert (item.state, item.source, item.decided_by_id) == ("pending", source, None)
    assert log_sizes(session) == logs

    with app.app_context():
        moderation.approve(session, moderator, item.id, new_text=case.good)
        session.flush()
    item = item_of(session, kind, object_id)
    assert item.state == "published"
    if case.stored:
        assert item.source == case.stored
    if kind == "template_version":
        assert item.source.endswith(" 1.1.0\n\nFaster exports.")
        assert not item.source.startswith("Ignored heading")


def test_an_empty_edit_is_refused(app, session, moderator):
    kind, object_id = _answer(app, session)
    item = item_of(session, kind, object_id)
    with app.app_context(), pytest.raises(DomainError) as refused:
        moderation.approve(session, moderator, item.id, new_text="  \n ")
    assert refused.value.field == "text"
    assert item_of(session, kind, object_id).state == "pending"


def test_a_refused_edit_of_an_item_already_decided_says_so_in_the_queue(
    app, client, session, moderator
):
    question = QA(app, session).question(author=newcomer())
    item = item_of(session, "question", question.id)
    with app.app_context():
        moderation.approve(session, moderator, item.id)
        session.flush()
    login(client, moderator)
    response = client.post(
        f"/moderation/items/{item.id}/approve",
        data={"text": "A question title long enough\n\nA body"},
        follow_redirects=True,
    )
    assert "Already decided by Mona Moderator" in response.get_data(as_text=True)


# --- what readers see: images and links -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["<img src=x onerror=alert(1)>", '<img src="/uploads/a.png">', "<a href=x>click</a>"],
)
def test_raw_html_shown_as_text_is_held_only_as_a_new_users_post(
    app, client, session, moderator, text
):
    roadmap = Roadmap(app, session)
    idea = roadmap.idea(author=newcomer(), description=text)
    item = item_of(session, "idea", idea.id)
    assert item.held_reasons == ["new_user"]
    assert "<img" not in session.get(Idea, idea.id).description_html
    login(client, moderator)
    queue = client.get("/moderation/queue").get_data(as_text=True)
    assert '<span class="badge text-bg-light border">New user</span>' in queue
    for label in ("Image by a new user", "Link by a new user"):
        assert f'<span class="badge text-bg-light border">{label}</span>' not in queue


def _posts_with(text: str) -> dict[str, Callable[[Any, Any], int]]:
    """A new user's post of each kind whose text contains ``text``: kind -> maker of its id."""

    def answer(app, session):
        qa = QA(app, session)
        return qa.answer(qa.question(), author=newcomer(), body=f"Answer {text}").id

    def comment(app, session):
        qa = QA(app, session)
        return qa(qa_service.comment, newcomer(), f"Hm {text}", question_id=qa.question().id).id

    def idea_comment(app, session):
        roadmap = Roadmap(app, session)
        return roadmap(roadmap_service.comment, newcomer(), roadmap.idea().id, f"Hm {text}").id

    def review(app, session):
        gallery = Gallery(app, session)
        template = gallery.template(author=UserFactory(trust_level=3))
        return gallery(gallery_service.review, newcomer(), template.id, f"Nice {text}").id

    def about(app, session):
        user = newcomer()
        with app.app_context():
            accounts.update_about(session, user, f"Hi {text}")
            session.flush()
        return user.id

    return {
        "question": lambda app, session: (
            QA(app, session).question(author=newcomer(), body=f"Body {text}").id
        ),
        "answer": answer,
        "qa_comment": comment,
        "idea": lambda app, session: (
            Roadmap(app, session).idea(author=newcomer(), description=f"Idea {text}").id
        ),
        "idea_comment": idea_comment,
        "template": lambda app, session: (
            Gallery(app, session).template(author=newcomer(), description=f"T {text}").id
        ),
        "template_review": review,
        "profile_about": about,
    }


@pytest.mark.parametrize("kind", sorted(_posts_with("")))
def test_no_kind_holds_image_markup_shown_as_text_as_an_image(app, session, kind):
    object_id = _posts_with("<img src=/uploads/a.png onerror=alert(1)>")[kind](app, session)
    item = item_of(session, kind, object_id)
    assert "<img" in item.source and "<img" not in item.preview_html
    assert "new_user" in item.held_reasons and "image_by_new_user" not in item.held_reasons


def test_a_new_users_link_is_still_held(app, session):
    idea = Roadmap(app, session).idea(
        author=newcomer(), description="Cheap at <a href=https://cheap-pills.example/buy>here</a>"
    )
    assert item_of(session, "idea", idea.id).held_reasons == ["new_user", "link_by_new_user"]
