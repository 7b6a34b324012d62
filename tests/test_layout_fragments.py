"""The navigation bars are kept rendered between requests: what they show must still be
right for whoever asks, and their forms must still carry the asker's own CSRF token."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.core.identity import Role
from portal.core.notifications import (
    UNREAD_COUNT_CAP,
    Notification,
    mark_read,
    notify,
    unread_count,
)
from tests.conftest import login
from tests.factories import UserFactory, staff


def bar(client, path: str = "/") -> str:
    html = client.get(path).get_data(as_text=True)
    return html[html.index("<header>") : html.index("</header>")]


def test_the_bar_shows_the_user_asking_and_follows_their_changes(client, session):
    ann = UserFactory(display_name="Ann Example")
    ben = UserFactory(display_name="Ben Example")
    login(client, ann)
    assert "Ann Example" in bar(client) and 'data-testid="bell"' in bar(client)
    login(client, ben)
    assert "Ben Example" in bar(client) and "Ann Example" not in bar(client)

    notify(session, ben, "test", "A reply to your question")
    notify(session, ben, "test", "Another reply")
    session.flush()
    assert re.search(r'aria-label="2 unread">2</span>', bar(client))
    ben.display_name = "Benjamin Example"
    session.flush()
    assert "Benjamin Example" in bar(client)
    ben.locale = "zh_CN"
    session.flush()
    assert "退出" in bar(client) or "登出" in bar(client)


def test_the_bell_counts_a_long_backlog_as_99_plus(client, session):
    """A CSM's alerts pile up: past 99 the bell says 99+, and reading some brings the number
    back."""
    reader = UserFactory()
    login(client, reader)
    for i in range(UNREAD_COUNT_CAP + 20):
        notify(session, reader, "test", f"Alert {i}")
    session.flush()
    assert re.search(r'aria-label="99\+ unread">99\+</span>', bar(client))
    assert unread_count(session, reader) == UNREAD_COUNT_CAP
    oldest = session.scalars(
        select(Notification.id).where(Notification.user_id == reader.id).order_by(Notification.id)
    ).all()
    for notification_id in oldest[:30]:
        mark_read(session, reader, notification_id)
    session.flush()
    assert re.search(r'aria-label="90 unread">90</span>', bar(client))
    assert unread_count(session, reader) == 90


def test_staff_entries_follow_roles(client, session):
    moderator = staff(Role.MODERATOR)
    customer = UserFactory()
    login(client, moderator)
    assert 'data-testid="queue-count"' in bar(client)
    login(client, customer)
    shown = bar(client)
    assert 'data-testid="queue-count"' not in shown and "/moderation/queue" not in shown


def test_the_language_switcher_returns_to_this_page_escaped(client, session):
    login(client, UserFactory())
    shown = bar(client, '/questions/?tag=a"b&sort=votes')
    assert 'name="next" value="/questions/?tag=a&#34;b&amp;sort=votes"' in shown
    assert 'name="next" value="/?"' in bar(client, "/")


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_each_session_signs_out_with_its_own_token(app, session, app_config):
    users = [UserFactory(display_name="Same Page"), UserFactory(display_name="Same Page")]
    clients = [login(app.test_client(), user) for user in users]
    tokens = []
    for client in clients:
        shown = bar(client)
        tokens.append(re.search(r'name="csrf_token" value="([^"]+)"', shown).group(1))
    assert tokens[0] != tokens[1]  # the same bar, each with its session's token
    assert clients[0].post("/sign-out", data={"csrf_token": tokens[1]}).status_code == 400
    for client, token in zip(clients, tokens, strict=True):
        assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
        assert 'href="/sign-in"' in bar(client)


def test_the_cs_pages_list_what_the_user_may_open_and_mark_the_current_one(client, session):
    def cs_nav(path: str) -> str:
        html = client.get(path).get_data(as_text=True)
        return html[html.index('class="nav nav-pills') : html.index("</nav>", html.index("cs-nav"))]

    login(client, staff(Role.VENDOR_ADMIN))
    admin_nav = cs_nav("/cs/")
    login(client, staff(Role.PRODUCT_MANAGER))
    reader_nav = cs_nav("/cs/")
    assert admin_nav.count("nav-link") > reader_nav.count("nav-link") > 0
    assert re.search(r'class="nav-link active" href="/cs/"', reader_nav)
    accounts = cs_nav("/cs/accounts")
    assert re.search(r'class="nav-link active" href="/cs/accounts"', accounts)
    assert not re.search(r'class="nav-link active" href="/cs/"', accounts)
