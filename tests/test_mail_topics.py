"""Email choices: community mail belongs to a topic each person can turn off on their profile
or with the one-click link at the end of each such mail; in-app notifications stay, and
account mail (password reset) is always sent."""

from __future__ import annotations

import re

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from moderation import service as moderation
from portal.core import mail, personal_data
from portal.core.identity import Role
from portal.core.notifications import Notification
from portal.qa import service
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.qa_factories import QA, member

QA_TOPIC = service.NEW_ANSWER_MAIL


@pytest.fixture
def app_config(request):
    return getattr(request, "param", {})


@pytest.fixture
def qa(app, session) -> QA:
    return QA(app, session, commit=True)  # followers are told after the commit


def unsubscribe_path(message) -> str:
    match = re.search(r"https?://[^/\s]+(/mail/unsubscribe/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def followed_question(qa, fan):
    question = qa.question(member(), title="Where do I set the fiscal year start?")
    qa(service.follow, fan, question.id)
    return question


def notifications(session, user) -> int:
    return session.scalar(
        select(func.count()).select_from(Notification).where(Notification.user_id == user.id)
    )


def test_a_topic_mail_says_how_to_stop_it(qa, session, outbox):
    fan = member()
    question = followed_question(qa, fan)
    qa.answer(question, body="Admin settings, then Calendar.")
    (message,) = outbox(fan.email)
    assert "New answers to questions I follow" in message.body
    path = unsubscribe_path(message)
    assert message.list_unsubscribe.endswith(path)
    assert "/profile#mail-heading" in message.body


def test_turned_off_on_the_profile_the_mail_stops_but_the_notification_stays(
    qa, client, session, outbox
):
    fan = member()
    question = followed_question(qa, fan)
    login(client, fan)
    page = client.get("/profile").get_data(as_text=True)
    assert f'value="{QA_TOPIC}" id="mail-{QA_TOPIC}" checked' in page

    others = [t.name for t in mail.topics() if t.name != QA_TOPIC]
    saved = client.post("/profile/mail", data={"topic": others})
    assert saved.status_code == 302
    page = client.get("/profile").get_data(as_text=True)
    assert "Your email choices were saved." in page
    assert f'value="{QA_TOPIC}" id="mail-{QA_TOPIC}">' in page  # unchecked

    qa.answer(question, body="Admin settings, then Calendar.")
    assert outbox(fan.email) == [] and notifications(session, fan) == 1

    client.post("/profile/mail", data={"topic": [t.name for t in mail.topics()]})
    qa.answer(question, body="Or ask your CSM.")
    assert len(outbox(fan.email)) == 1 and notifications(session, fan) == 2


def test_an_unknown_topic_is_refused_and_nothing_changes(client, session):
    user = UserFactory()
    login(client, user)
    response = client.post("/profile/mail", data={"topic": ["qa_new_answer", "spam"]})
    assert response.status_code == 422
    assert "Unknown email topic: spam" in response.get_data(as_text=True)
    assert mail.topics_off(session, user.id) == set()


def test_the_link_asks_first_then_stops_that_topic_only(qa, client, session, outbox):
    fan = member()
    question = followed_question(qa, fan)
    qa.answer(question)
    path = unsubscribe_path(outbox(fan.email)[0])

    asked = client.get(path)  # a mail scanner opening the link changes nothing
    assert asked.status_code == 200 and "Stop these emails" in asked.get_data(as_text=True)
    assert mail.topics_off(session, fan.id) == set()

    done = client.post(path)
    assert "You will no longer get emails about" in done.get_data(as_text=True)
    assert mail.topics_off(session, fan.id) == {QA_TOPIC}
    assert client.post(path).status_code == 200  # twice is the same
    assert mail.topics_off(session, fan.id) == {QA_TOPIC}

    qa.answer(question)
    assert len(outbox(fan.email)) == 1


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_mail_providers_one_click_post_needs_no_page(qa, client, session, outbox):
    fan = member()
    qa.answer(followed_question(qa, fan))
    path = unsubscribe_path(outbox(fan.email)[0])
    response = client.post(
        path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert mail.topics_off(session, fan.id) == {QA_TOPIC}


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        lambda app: mail.unsubscribe_token(1, "no_such_topic"),
        lambda app: mail.unsubscribe_token(999_999, QA_TOPIC),
    ],
)
def test_a_bad_link_is_not_found(app, client, session, token):
    if callable(token):
        with app.test_request_context():
            token = token(app)
    assert client.get(f"/mail/unsubscribe/{token}").status_code == 404
    assert client.post(f"/mail/unsubscribe/{token}").status_code == 404


def test_a_link_signed_with_another_key_changes_nobody(client, session):
    victim = member()
    forged = URLSafeSerializer("not-the-portal-key", salt="mail-unsubscribe").dumps(
        [victim.id, QA_TOPIC]
    )
    assert client.post(f"/mail/unsubscribe/{forged}").status_code == 404
    assert mail.topics_off(session, victim.id) == set()


def test_account_mail_is_always_sent(client, session, outbox):
    user = UserFactory(email="ann@example.com")
    login(client, user)
    client.post("/profile/mail", data={})  # every topic off
    assert mail.topics_off(session, user.id) == {t.name for t in mail.topics()}
    client.get("/sign-out")
    client.post("/forgot-password", data={"email": "ann@example.com"})
    (message,) = outbox("ann@example.com")
    assert "/reset-password/" in message.body and message.list_unsubscribe is None


def test_moderation_decisions_follow_the_authors_choice(client, session, outbox):
    author = UserFactory(trust_level=0)
    login(client, author)
    client.post("/profile/mail", data={})
    client.post("/profile/about", data={"about": "Buy cheap watches"})
    item_id = moderation.item_id(session, "profile_about", author.id)
    login(client, staff(Role.MODERATOR))
    client.post(f"/moderation/items/{item_id}/reject", data={"reason": "Advertising."})
    assert outbox(author.email) == [] and notifications(session, author) == 1


def test_the_mail_sent_carries_the_one_click_headers(qa, app, session, outbox, monkeypatch):
    sent = []

    class FakeSMTP:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def send_message(self, message):
            sent.append(message)

    monkeypatch.setattr(mail.smtplib, "SMTP", FakeSMTP)
    app.config["MAIL_BACKEND"] = "smtp"
    fan = member()
    qa.answer(followed_question(qa, fan))
    (message,) = outbox(fan.email)  # sent once the answer was committed
    (email,) = [sent_mail for sent_mail in sent if sent_mail["To"] == fan.email]
    assert email["List-Unsubscribe"] == f"<{message.list_unsubscribe}>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_choices_are_personal_data(client, session):
    user = UserFactory()
    login(client, user)
    client.post("/profile/mail", data={"topic": [QA_TOPIC]})
    exported = personal_data.export_all(session, user)["accounts"]["email_topics_turned_off"]
    assert QA_TOPIC not in exported and len(exported) == len(mail.topics()) - 1
    personal_data.erase_all(session, user, personal_data.KEEP)
    assert mail.topics_off(session, user.id) == set()


def test_the_link_speaks_the_language_the_mail_was_written_in(qa, client, session, outbox):
    fan = member(locale="zh_CN")
    qa.answer(followed_question(qa, fan))
    page = client.get(unsubscribe_path(outbox(fan.email)[0])).get_data(as_text=True)
    assert "不再接收此类邮件" in page and 'lang="zh-CN"' in page
