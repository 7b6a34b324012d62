"""The "Flag" action on every page that shows customer content: questions, answers and
comments, ideas and idea comments, templates, template versions and reviews, profile text.

One route (``/moderation/flags/<kind>/<object id>``) and one macro (``macros/flag.html``)
serve them all; moderation finds the item through the kind's registration."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from moderation.models import Flag, ModerationItem
from portal.core.identity import Role, User
from portal.gallery import service as gallery_service
from portal.qa import service as qa_service
from portal.roadmap import service as roadmap_service
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.gallery_factories import Gallery
from tests.qa_factories import QA, member
from tests.roadmap_factories import Roadmap

RECEIVED = "Thank you. The moderators will look at it."


@dataclass
class Post:
    kind: str
    object_id: int
    author: User
    page: str

    @property
    def action(self) -> str:
        return f"/moderation/flags/{self.kind}/{self.object_id}"


@pytest.fixture
def moderator(session):
    return staff(Role.MODERATOR, display_name="Mona Moderator")


def count_flags(session, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Flag).where(*where))


def item_state(session, post: Post) -> str:
    session.expire_all()
    return session.scalar(
        select(ModerationItem.state).where(
            ModerationItem.kind == post.kind, ModerationItem.object_id == post.object_id
        )
    )


def flag(client, post: Post, reason: str = "spam", note: str = ""):
    return client.post(
        post.action,
        data={"reason": reason, "note": note, "next": post.page},
        follow_redirects=True,
    )


def page(client, post: Post) -> str:
    response = client.get(post.page)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def control_shown(html: str, post: Post) -> bool:
    return f'action="{post.action}"' in html


# --- one published post of each kind, written through its feature's service ----------------


def question(app, session, client) -> Post:
    author = member()
    q = QA(app, session).question(author)
    return Post("question", q.id, author, f"/questions/{q.id}")


def answer(app, session, client) -> Post:
    qa = QA(app, session)
    q = qa.question()
    author = member(organization=q.author.organization)
    reply = qa.answer(q, author)
    return Post("answer", reply.id, author, f"/questions/{q.id}")


def qa_comment(app, session, client) -> Post:
    qa = QA(app, session)
    q = qa.question()
    author = member(organization=q.author.organization)
    note = qa(qa_service.comment, author, "Which version are you on?", question_id=q.id)
    return Post("qa_comment", note.id, author, f"/questions/{q.id}")


def idea(app, session, client) -> Post:
    author = member()
    row = Roadmap(app, session).idea(author)
    return Post("idea", row.id, author, f"/roadmap/ideas/{row.id}")


def idea_comment(app, session, client) -> Post:
    roadmap = Roadmap(app, session)
    row = roadmap.idea()
    author = member(organization=row.author.organization)
    note = roadmap(roadmap_service.comment, author, row.id, "We need this for the board too.")
    return Post("idea_comment", note.id, author, f"/roadmap/ideas/{row.id}")


def template(app, session, client) -> Post:
    author = member()
    row = Gallery(app, session).template(author)
    return Post("template", row.id, author, f"/gallery/templates/{row.id}")


def template_version(app, session, client) -> Post:
    gallery = Gallery(app, session)
    row = gallery.template(member())
    version = gallery.version(row, "1.1.0")
    return Post("template_version", version.id, row.author, f"/gallery/templates/{row.id}")


def template_review(app, session, client) -> Post:
    gallery = Gallery(app, session)
    row = gallery.template(member())
    author = member(organization=row.author.organization)
    review = gallery(gallery_service.review, author, row.id, "Saved us a day every month.")
    return Post("template_review", review.id, author, f"/gallery/templates/{row.id}")


def profile_about(app, session, client) -> Post:
    author = member()
    login(client, author)
    assert client.post("/profile/about", data={"about": "I build dashboards."}).status_code == 302
    return Post("profile_about", author.id, author, f"/users/{author.id}")


KINDS = [
    question,
    answer,
    qa_comment,
    idea,
    idea_comment,
    template,
    template_version,
    template_review,
    profile_about,
]


@pytest.fixture(params=KINDS, ids=[k.__name__ for k in KINDS])
def post(request, app, session, client) -> Post:
    made = request.param(app, session, client)
    assert item_state(session, made) == "published"
    return made


def test_a_colleague_sees_the_control_flags_once_and_is_told_it_was_received(client, session, post):
    reader = UserFactory(organization=post.author.organization)
    login(client, reader)
    html = page(client, post)
    assert control_shown(html, post)
    form = html[html.index(f'action="{post.action}"') :].split("</form>")[0]
    assert 'name="csrf_token"' in form and 'value="off_topic"' in form and 'name="note"' in form

    received = flag(client, post).get_data(as_text=True)
    assert RECEIVED in received
    assert count_flags(session, Flag.user_id == reader.id) == 1
    assert not control_shown(received, post)  # back on the page: no second form ...
    assert "You flagged this" in received  # ... but a note that it is done

    again = flag(client, post, "offensive")
    assert again.status_code == 200
    assert "You have already flagged this." in again.get_data(as_text=True)
    assert count_flags(session, Flag.user_id == reader.id) == 1


def test_no_control_on_ones_own_post_and_a_direct_post_is_refused(client, session, post):
    login(client, post.author)
    assert not control_shown(page(client, post), post)
    response = flag(client, post)
    assert response.status_code == 200
    assert "You cannot flag your own post." in response.get_data(as_text=True)
    assert count_flags(session) == 0


def test_signed_out_visitors_see_no_control_and_cannot_flag(client, session, post):
    with client.session_transaction() as flask_session:
        flask_session.clear()
    response = client.get(post.page)
    if response.status_code == 200:  # profiles are for members only
        assert not control_shown(response.get_data(as_text=True), post)
    refused = client.post(post.action, data={"reason": "spam"})
    assert refused.status_code == 302 and "/sign-in" in refused.headers["Location"]
    assert count_flags(session) == 0


def test_three_new_members_flagging_hide_a_question_until_a_moderator_restores_it(
    app, client, session, moderator
):
    post = question(app, session, client)
    flaggers = [UserFactory(organization=post.author.organization) for _ in range(3)]
    for flagger in flaggers[:2]:
        login(client, flagger)
        assert RECEIVED in flag(client, post).get_data(as_text=True)
    assert item_state(session, post) == "published"
    login(client, flaggers[2])
    flag(client, post, "offensive")
    assert item_state(session, post) == "hidden"

    reader = UserFactory(organization=post.author.organization)
    login(client, reader)
    assert client.get(post.page).status_code == 404
    assert client.post(post.action, data={"reason": "spam"}).status_code == 404  # hidden

    login(client, moderator)
    assert "Hidden by flags" in client.get("/moderation/queue").get_data(as_text=True)
    item_id = session.scalar(
        select(ModerationItem.id).where(
            ModerationItem.kind == "question", ModerationItem.object_id == post.object_id
        )
    )
    client.post(f"/moderation/items/{item_id}/restore")
    assert item_state(session, post) == "published"
    login(client, reader)
    assert control_shown(page(client, post), post)


def test_something_else_needs_a_note_which_the_moderators_get(app, client, session):
    post = answer(app, session, client)
    login(client, UserFactory(organization=post.author.organization))
    refused = flag(client, post, "other").get_data(as_text=True)
    assert "Tell the moderators what is wrong." in refused and count_flags(session) == 0
    assert "Choose a reason." in flag(client, post, "").get_data(as_text=True)
    assert RECEIVED in flag(client, post, "other", "Copied from our manual.").get_data(as_text=True)
    assert session.scalar(select(Flag.note)) == "Copied from our manual."


def test_another_organizations_private_content_cannot_be_flagged(app, client, session):
    qa = QA(app, session)
    private = qa.question(private=True)
    reply = qa.answer(private, member(organization=private.author.organization))
    outsider = UserFactory()
    login(client, outsider)
    assert client.get(f"/questions/{private.id}").status_code == 404
    for kind, object_id in (("question", private.id), ("answer", reply.id)):
        response = client.post(f"/moderation/flags/{kind}/{object_id}", data={"reason": "spam"})
        assert response.status_code == 404
    gallery = Gallery(app, session)
    org_only = gallery.template(member(), visibility="organization")
    response = client.post(f"/moderation/flags/template/{org_only.id}", data={"reason": "spam"})
    assert response.status_code == 404
    assert count_flags(session) == 0

    colleague = UserFactory(organization=private.author.organization)
    login(client, colleague)
    assert RECEIVED in flag(
        client, Post("question", private.id, private.author, f"/questions/{private.id}")
    ).get_data(as_text=True)


def test_pending_content_unknown_kinds_and_ids_are_not_found(app, client, session):
    newcomer = UserFactory(trust_level=0)
    held = QA(app, session).question(newcomer)  # a new member's first post waits for review
    post = Post("question", held.id, newcomer, f"/questions/{held.id}")
    assert item_state(session, post) == "pending"
    login(client, UserFactory(organization=newcomer.organization))
    for action in (
        post.action,
        "/moderation/flags/question/999999",
        "/moderation/flags/no_such_kind/1",
    ):
        assert client.post(action, data={"reason": "spam"}).status_code == 404
    assert count_flags(session) == 0


def test_an_unsafe_next_goes_home(app, client, session):
    post = idea(app, session, client)
    login(client, UserFactory())
    response = client.post(post.action, data={"reason": "spam", "next": "//evil.example/"})
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_the_form_carries_the_csrf_token_it_needs(app, client, session):
    post = question(app, session, client)
    login(client, UserFactory(organization=post.author.organization))
    html = page(client, post)
    form = html[html.index(f'action="{post.action}"') :].split("</form>")[0]
    token = re.search(r'name="csrf_token" value="([^"]*)"', form).group(1)
    assert client.post(post.action, data={"reason": "spam"}).status_code == 400
    assert count_flags(session) == 0
    sent = client.post(post.action, data={"reason": "spam", "csrf_token": token})
    assert sent.status_code == 302 and count_flags(session) == 1


def test_the_control_reads_in_chinese(app, client, session):
    post = question(app, session, client)
    login(client, UserFactory(organization=post.author.organization, locale="zh_CN"))
    html = page(client, post)
    assert "为什么需要审核员查看？" in html and "垃圾信息" in html and "你已举报" not in html
    flagged = flag(client, post).get_data(as_text=True)
    assert "谢谢，审核员会查看此内容。" in flagged and "你已举报" in flagged


def test_the_api_flags_by_kind_and_id_with_the_same_rules(app, client, session):
    from portal.accounts.service import create_api_token

    qa = QA(app, session)
    shared = qa.question()
    private = qa.question(private=True)
    colleague = UserFactory(organization=shared.author.organization)
    outsider = UserFactory()

    def token(user):
        with app.app_context():
            _token, raw = create_api_token(session, user, "script", "write")
            session.flush()
        return {"Authorization": f"Bearer {raw}"}

    mine, theirs, stranger = token(colleague), token(shared.author), token(outsider)
    body = {"kind": "question", "object_id": shared.id, "reason": "spam"}
    first = client.post("/api/v1/flags", json=body, headers=mine)
    assert first.status_code == 200 and first.get_json()["reason"] == "spam"
    assert client.post("/api/v1/flags", json=body, headers=mine).status_code == 409
    assert client.post("/api/v1/flags", json=body, headers=theirs).status_code in (400, 403)
    hidden = {"kind": "question", "object_id": private.id, "reason": "spam"}
    assert client.post("/api/v1/flags", json=hidden, headers=stranger).status_code == 404
    unknown = {"kind": "no_such_kind", "object_id": 1, "reason": "spam"}
    assert client.post("/api/v1/flags", json=unknown, headers=mine).status_code == 404
    bad = client.post("/api/v1/flags", json={"kind": "question", "object_id": 2**40}, headers=mine)
    assert bad.status_code == 422
    assert {"object_id", "reason"} <= set(bad.get_json()["error"]["fields"])
    assert count_flags(session) == 1
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "post" in spec["paths"]["/flags"]
