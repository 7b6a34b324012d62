"""Each process keeps the signed-in person for a few seconds (``USER_CACHE_SECONDS``) instead
of reading them on every page: what changes through this process shows on the next page,
what another process changed within those seconds, and the kept person behaves like one
read from the database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from portal.core import pagecache
from portal.core.identity import Role, User
from portal.core.notifications import Notification, notify
from tests.conftest import login, statements_of
from tests.factories import UserFactory


@pytest.fixture
def app_config(request):
    return getattr(request, "param", {"USER_CACHE_SECONDS": 60})


def reads_user(client, connection, url: str) -> bool:
    """Whether a GET of ``url`` read the users table (and answered 200)."""
    return any("FROM users" in sql for sql in statements_of(client, connection, url))


def test_a_signed_in_page_reads_the_person_once(client, session, connection):
    login(client, UserFactory())
    assert reads_user(client, connection, "/notifications")
    assert not reads_user(client, connection, "/notifications")
    assert not reads_user(client, connection, "/notifications")


@pytest.mark.parametrize("app_config", [{"USER_CACHE_SECONDS": 0}], indirect=True)
def test_turned_off_every_page_reads_the_person(client, session, connection):
    login(client, UserFactory())
    assert reads_user(client, connection, "/notifications")
    assert reads_user(client, connection, "/notifications")


def test_changes_made_through_the_portal_show_on_the_next_page(app, client, session, connection):
    admin = UserFactory(roles=[Role.ORG_ADMIN])
    member = UserFactory(organization=admin.organization, display_name="Mei")
    admin_client = login(app.test_client(), admin)
    login(client, member)
    members_page = f"/orgs/{admin.organization_id}/members"
    assert client.get("/profile").status_code == 200
    assert client.get(members_page).status_code == 403
    assert "unread" not in client.get("/profile").get_data(as_text=True)

    # Their own change: the layout shows the new name at once.
    client.post("/profile", data={"display_name": "Mei Lin", "locale": "en", "timezone": "UTC"})
    assert "Mei Lin" in client.get("/profile").get_data(as_text=True)

    # An administrator's: a new role opens the members page, deactivation signs them out.
    base = f"/orgs/{admin.organization_id}/members/{member.id}"
    admin_client.post(f"{base}/role", data={"role": "org_admin"})
    assert client.get(members_page).status_code == 200
    admin_client.post(f"{base}/active", data={"active": "0"})
    assert client.get("/profile").status_code == 302
    admin_client.post(f"{base}/active", data={"active": "1"})
    assert client.get("/profile").status_code == 200

    # A notification stored in this process (here by the test's own session): the bell counts
    # it on the next page.
    def bell() -> int:
        return session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == member.id, Notification.read_at.is_(None))
        )

    before = bell()
    assert f'aria-label="{before} unread"' in client.get("/profile").get_data(as_text=True)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as other:
        notify(other, other.get(User, member.id), "test", "Someone answered")
        other.commit()
    assert f'aria-label="{before + 1} unread"' in client.get("/profile").get_data(as_text=True)


def test_a_change_made_by_another_process_shows_within_the_configured_seconds(
    client, session, connection, monkeypatch
):
    member = UserFactory()
    login(client, member)
    assert client.get("/profile").status_code == 200
    # Another process deactivates the account: nothing in this one hears of it.
    connection.execute(
        text("UPDATE users SET active = :no WHERE id = :id"), {"no": False, "id": member.id}
    )
    assert client.get("/profile").status_code == 200  # still within the 60 seconds
    later = time.monotonic() + 61
    monkeypatch.setattr(pagecache.time, "monotonic", lambda: later)
    assert client.get("/profile").status_code == 302


def test_the_kept_person_is_saved_like_one_read_from_the_database(client, session):
    member = UserFactory(display_name="Before")
    login(client, member)
    assert client.get("/profile").status_code == 200  # kept from here on
    response = client.post(
        "/profile", data={"display_name": "After", "locale": "zh_CN", "timezone": "Asia/Shanghai"}
    )
    assert response.status_code == 302
    session.expire_all()
    saved = session.get(User, member.id)
    assert (saved.display_name, saved.locale, saved.timezone) == ("After", "zh_CN", "Asia/Shanghai")
    assert saved.roles == {Role.MEMBER}  # the kept roles were not written back or lost
    assert saved.organization_id == member.organization_id
