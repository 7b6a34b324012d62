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
