from tests.conftest import login
from tests.factories import UserFactory


def test_home_page_renders_for_anonymous_and_signed_in(client, session):
    assert client.get("/").status_code == 200
    user = UserFactory(display_name="Ada")
    login(client, user)
    response = client.get("/")
    assert response.status_code == 200
    assert "Ada" in response.get_data(as_text=True)
