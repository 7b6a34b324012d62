import pytest

from portal.core.identity import Role
from tests.conftest import login
from tests.factories import UserFactory, staff


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
    from sqlalchemy import select

    from portal.qa.models import Question
    from portal.roadmap.models import Idea
    from tests.security.world import build

    world = build(app, session)
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
