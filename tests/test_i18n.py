"""English and Simplified Chinese: every string translated, the right language chosen."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.conftest import login
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
MAPPING = [("**.py", "python"), ("**.html", "jinja2"), ("**.txt", "jinja2")]
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
}


@cache
def source_messages() -> frozenset[str]:
    found = set()
    for folder in ("portal", "moderation", "cs_metrics", "templates"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, MAPPING, keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return frozenset(found)


def catalog_ids() -> set[str]:
    with open(ROOT / "portal/translations/zh_CN/LC_MESSAGES/messages.po", "rb") as po:
        catalog = read_po(po, locale="zh_CN")
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def test_every_user_facing_string_has_a_chinese_translation():
    with open(ROOT / "portal/translations/zh_CN/LC_MESSAGES/messages.po", "rb") as po:
        catalog = read_po(po, locale="zh_CN")
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]  # plural entries: (singular, plural)
        for m in catalog
        if m.id and m.string and all(m.string) and not m.fuzzy
    }
    missing = sorted(source_messages() - translated)
    assert missing == [], f"{len(missing)} strings lack a zh_CN translation: {missing[:10]}"


def test_the_catalog_keeps_no_translation_the_code_no_longer_uses():
    # A reworded message leaves its old entry behind; translators then keep words up to date
    # that nobody sees, and a later identical wording silently picks up the stale text.
    stale = sorted(catalog_ids() - source_messages())
    assert stale == [], f"{len(stale)} zh_CN entries are no longer in the code: {stale[:10]}"


def test_language_follows_accept_language_then_switcher_then_profile(client, session):
    chinese = client.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(
        as_text=True
    )
    assert '<html lang="zh-CN">' in chinese and "登录" in chinese
    english = client.get("/sign-in", headers={"Accept-Language": "en-US"}).get_data(as_text=True)
    assert '<html lang="en">' in english

    client.post("/locale", data={"locale": "zh_CN", "next": "/sign-in"})
    assert '<html lang="zh-CN">' in client.get(
        "/sign-in", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)

    user = UserFactory(locale="en")
    login(client, user)
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)  # the profile wins


def test_switcher_saves_the_choice_on_the_profile_and_rejects_unknown_locales(client, session):
    from portal.core.identity import User

    user = UserFactory(locale="en")
    login(client, user)
    assert (
        client.post("/locale", data={"locale": "zh_CN", "next": "//evil.example"}).headers[
            "Location"
        ]
        == "/"
    )
    session.expire_all()
    assert session.get(User, user.id).locale == "zh_CN"
    assert client.post("/locale", data={"locale": "klingon"}).status_code == 400


def test_mail_is_written_in_the_recipients_language(client, session, outbox):
    UserFactory(email="li@example.com", locale="zh_CN")
    client.post(
        "/forgot-password", data={"email": "li@example.com"}, headers={"Accept-Language": "en"}
    )
    [mail] = outbox("li@example.com")
    assert "密码" in mail.subject


def test_times_are_shown_to_the_minute_in_the_readers_zone_and_order(client, session):
    from datetime import UTC, datetime

    from portal.core.notifications import Notification, notify

    for locale, timezone, shown in (
        ("en", "America/New_York", "Nov 27, 2026, 2:23\u202fPM"),  # CLDR's narrow space
        ("zh_CN", "Asia/Shanghai", "2026年11月28日 03:23"),
    ):
        user = UserFactory(locale=locale, timezone=timezone)
        notification: Notification = notify(session, user, "test", "Your export is ready.")
        notification.created_at = datetime(2026, 11, 27, 19, 23, 36, tzinfo=UTC)
        session.commit()
        login(client, user)
        page = client.get("/notifications").get_data(as_text=True)
        assert shown in page and ":36" not in page  # no seconds
