import pytest
from sqlalchemy import func, select

from portal.core.identity import Role
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.security.world import build as build_world


def test_home_page_renders_for_anonymous_and_signed_in(client, session):
    assert client.get("/").status_code == 200
    user = UserFactory(display_name="Ada")
    login(client, user)
    response = client.get("/")
    assert response.status_code == 200
    assert "Ada" in response.get_data(as_text=True)


LISTS = [
    "/questions/",
    "/questions/tagged/sso",
    "/roadmap/",
    "/gallery/",
    "/kb/",
    "/notifications",
    "/moderation/queue",
]


@pytest.mark.parametrize("page", ["99999999999999999999", "9223372036854775807", "-5", "x"])
def test_every_list_answers_a_page_number_out_of_range(client, session, page):
    """Past the last page a list is empty, not an error, however large the number."""
    login(client, staff(Role.MODERATOR))
    for path in LISTS:
        response = client.get(f"{path}?page={page}")
        assert response.status_code == 200, path
    huge = "99999999999999999999"
    filtered = client.get(f"/moderation/queue?org={huge}&older_than={huge}&page={page}")
    assert filtered.status_code == 200


def test_a_form_naming_a_row_past_what_the_database_holds_is_not_found_not_500(app, session):
    """A number typed (or tampered) into a form that names a row: the same "not found" as any
    wrong number, nothing changed. These overflowed inside the query before (found by the
    form fuzzing sweep)."""
    from portal.qa.models import Question
    from portal.roadmap.models import Idea

    world = build_world(app, session)
    huge = "9" * 40
    forms = [
        ("member_a", f"/questions/{world.a.question_id}/accept", {"answer_id": huge},
         "Choose a published answer to this question."),
        ("moderator", f"/questions/{world.a.question_id}/duplicate", {"target": huge},
         "Enter the number of a published question you can see."),
        ("pm", f"/roadmap/ideas/{world.a.idea_id}/merge", {"target_id": huge},
         "Enter the number of a published idea you can see."),
        ("vendor_admin", f"/roadmap/ideas/{world.a.idea_id}/vote", {"on_behalf_of": huge},
         "Choose a customer contact."),
        ("csm", "/cs/referrals", {"org_id": huge}, "No such account."),
        ("vendor_admin", f"/kb/articles/{world.article_id}/edit",
         {"category_id": huge, "title": "Setup", "body": "Steps.", "language": "en"},
         "Choose an existing category."),
        ("vendor_admin", "/cs/rules/new",
         {"preview_account": huge, "expression": "nps < 0", "preview": "1"}, "No such account."),
    ]  # fmt: skip
    for role, path, data, message in forms:
        client = login(app.test_client(), world.users()[role])
        response = client.post(path, data=data, follow_redirects=True)
        assert response.status_code in (200, 400, 404, 422), path
        assert message in response.get_data(as_text=True), path
    session.expire_all()
    question = session.get(Question, world.a.question_id)
    assert question.accepted_answer_id is None and question.duplicate_of_id is None
    assert session.scalar(select(Idea.merged_into_id).where(Idea.id == world.a.idea_id)) is None


def test_a_number_past_the_database_in_a_link_or_hidden_field_is_not_a_500(app, session):
    """The same for numbers a page puts in a link or a hidden field, and the search page's
    click beacon: a version to download, a notification to mark read, the queue's bulk
    selection. These overflowed inside the query before."""
    from portal.core.notifications import Notification, notify

    world = build_world(app, session)
    huge = "9" * 40
    member = login(app.test_client(), world.a.member)
    moderator = login(app.test_client(), world.moderator)
    notify(session, world.a.member, "test", "Hello")
    session.flush()
    template = f"/gallery/templates/{world.a.template_id}/download?version={huge}"
    assert member.get(template).status_code == 404
    assert member.post("/notifications/read", data={"id": huge}).status_code == 302
    unread = select(func.count()).where(
        Notification.user_id == world.a.member.id, Notification.read_at.is_(None)
    )
    assert session.scalar(unread) == 1  # no such notification: not "mark every one read"
    bulk = moderator.post("/moderation/bulk", data={"ids": huge, "action": "approve"})
    assert bulk.status_code == 302
    with moderator.session_transaction() as flask_session:
        assert ("warning", "Select items and an action.") in flask_session["_flashes"]
    click = member.post("/search/click", json={"log_id": huge, "id": huge, "kind": "question"})
    assert click.status_code == 404


def test_a_nul_anywhere_in_a_request_is_not_a_500(app, session):
    """PostgreSQL refuses NUL in text: one in a filter, a form field or a path segment was a
    500 wherever a view passed it to a query (found by the form fuzzing sweep on PostgreSQL).
    Parameters arrive without it; a path segment holding one matches no route."""
    from portal.accounts.models import ApiToken

    world = build_world(app, session)
    anonymous = app.test_client()
    admin = login(app.test_client(), world.vendor_admin)
    for client, url, status in [
        (anonymous, "/questions/?tag=sso%00", 200),
        (anonymous, "/roadmap/?tag=%00", 200),
        (anonymous, "/gallery/?tag=a%00b", 200),
        (admin, "/cs/accounts?q=%00", 200),
        (admin, "/cs/alerts?channel=%00", 200),
        (anonymous, "/questions/tagged/a%00b", 404),
        (anonymous, "/kb/categories/a%00b", 404),
    ]:
        assert client.get(url).status_code == status, url
    member = login(app.test_client(), world.a.member)
    assert (
        member.post("/profile/tokens", data={"name": "CI\x00 bot", "scope": "read"}).status_code
        == 200
    )
    names = session.scalars(select(ApiToken.name).where(ApiToken.user_id == world.a.member.id))
    assert "CI bot" in list(names)
