"""Accounts through the HTTP surface: sign-up, confirmation, sign-in, reset, profile."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.core.activity import Activity
from portal.core.identity import User
from tests.conftest import login
from tests.factories import PASSWORD, DomainFactory, UserFactory

NEW_PASSWORD = "a-much-better-passphrase-7"


def link_in(message, path_prefix: str) -> str:
    match = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[^\s]+)", message.body)
    assert match, message.body
    return match.group(1)


def users_named(session, email: str) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(User).where(User.email == email))


def activities(session, verb: str) -> int:
    return session.scalar(select(func.count()).select_from(Activity).where(Activity.verb == verb))


# --- sign-up by verified domain --------------------------------------------------------


def test_sign_up_with_verified_domain_joins_org_and_confirms_by_mail(client, session, outbox):
    domain = DomainFactory(domain="acme.example")
    response = client.post(
        "/sign-up",
        data={
            "email": "New.Person@ACME.example",
            "display_name": "  New   Person ",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert response.status_code == 200
    assert "new.person@acme.example" in response.get_data(as_text=True).lower()
    user = session.scalar(select(User).where(User.email == "new.person@acme.example"))
    assert user.organization_id == domain.organization_id
    assert user.display_name == "New Person"
    assert user.email_confirmed_at is None
    assert activities(session, "account.signed_up") == 1

    [mail] = outbox("new.person@acme.example")
    assert mail.sent_at is not None  # the inline task processed it after commit
    confirm = client.get(link_in(mail, "/confirm/"))
    assert confirm.status_code == 302
    session.expire_all()
    assert session.get(User, user.id).email_confirmed_at is not None
    # A second click is harmless.
    assert client.get(link_in(mail, "/confirm/")).status_code == 302


def test_sign_up_without_matching_domain_is_refused_with_a_clear_message(client, session):
    DomainFactory(domain="acme.example", verified=False)
    response = client.post(
        "/sign-up",
        data={
            "email": "x@acme.example",
            "display_name": "X",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert response.status_code == 400
    assert "invitation" in response.get_data(as_text=True)
    assert users_named(session, "x@acme.example") == 0


def test_sign_up_with_existing_email_in_other_case_writes_nothing_and_mails_the_owner(
    client, session, outbox
):
    domain = DomainFactory(domain="acme.example")
    UserFactory(email="taken@acme.example", organization=domain.organization)
    response = client.post(
        "/sign-up",
        data={
            "email": "TAKEN@acme.example",
            "display_name": "Y",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    # The same answer as for a new address (no enumeration); the owner is told by mail.
    assert response.status_code == 200
    assert users_named(session, "taken@acme.example") == 1
    [mail] = outbox("taken@acme.example")
    assert "already have" in mail.subject


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"email": ""}, "email", "required"),
        ({"email": "a" * 250 + "@acme.example"}, "email", "at most"),
        ({"display_name": ""}, "display_name", "required"),
        ({"display_name": "n" * 81}, "display_name", "at most"),
        ({"password": "short1", "confirm": "short1"}, "password", "at least 10"),
        ({"password": "password1234", "confirm": "password1234"}, "password", "too common"),
        ({"password": "qwertyuiop", "confirm": "qwertyuiop"}, "password", "too common"),
        ({"confirm": "something-else-entirely"}, "confirm", "do not match"),
    ],
)
def test_sign_up_bad_input_is_shown_beside_the_field(client, session, fields, field, message):
    DomainFactory(domain="acme.example")
    data = {
        "email": "ok@acme.example",
        "display_name": "Ok",
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    }
    data.update(fields)
    response = client.post("/sign-up", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    errors = re.search(rf'id="{field}-errors"[^>]*>(.*?)</div>\s*</div>', html, re.S)
    assert errors, html
    assert message in errors.group(1)
    assert session.scalar(select(func.count()).select_from(User)) == 0


# --- sign-in --------------------------------------------------------------------------


def test_sign_in_and_out(client, session):
    user = UserFactory(email="ann@example.com", display_name="Ann")
    response = client.post("/sign-in", data={"email": "ANN@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Ann" in client.get("/").get_data(as_text=True)
    assert activities(session, "account.signed_in") == 1
    session.expire_all()
    assert session.get(User, user.id).last_sign_in_at is not None

    assert client.post("/sign-out").status_code == 302
    assert client.get("/profile").status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_answer(client, session):
    UserFactory(email="ann@example.com")
    wrong = client.post("/sign-in", data={"email": "ann@example.com", "password": "nope-nope-nope"})
    unknown = client.post(
        "/sign-in", data={"email": "who@example.com", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    message = "That email and password do not match an active account."
    assert message in wrong.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)


def test_deactivated_user_cannot_sign_in(client, session):
    UserFactory(email="gone@example.com", active=False)
    response = client.post("/sign-in", data={"email": "gone@example.com", "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("target", "lands_on"),
    [
        ("/profile", "/profile"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_only_leads_to_our_own_paths(client, session, target, lands_on):
    UserFactory(email="ann@example.com")
    response = client.post(
        "/sign-in", data={"email": "ann@example.com", "password": PASSWORD, "next": target}
    )
    assert response.headers["Location"] == lands_on


def test_remember_me_sets_a_secure_http_only_cookie_only_when_asked(client, session):
    UserFactory(email="ann@example.com")
    response = client.post(
        "/sign-in", data={"email": "ann@example.com", "password": PASSWORD, "remember": "y"}
    )
    cookies = response.headers.getlist("Set-Cookie")
    remember = [c for c in cookies if c.startswith("remember_token=")]
    assert remember and "HttpOnly" in remember[0] and "SameSite=Lax" in remember[0]


# --- password reset -------------------------------------------------------------------


def test_password_reset_works_once(client, session, outbox):
    UserFactory(email="ann@example.com")
    response = client.post("/forgot-password", data={"email": "ann@example.com"})
    assert response.status_code == 200
    [mail] = outbox("ann@example.com")
    link = link_in(mail, "/reset-password/")

    assert client.get(link).status_code == 200
    done = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302
    assert (
        client.post(
            "/sign-in", data={"email": "ann@example.com", "password": NEW_PASSWORD}
        ).status_code
        == 302
    )

    reused = client.get(link)
    assert reused.status_code == 400
    assert "already been used" in reused.get_data(as_text=True)


def test_reset_for_unknown_address_looks_the_same_and_sends_nothing(client, session, outbox):
    UserFactory(email="ann@example.com")
    known = client.post("/forgot-password", data={"email": "ann@example.com"})
    unknown = client.post("/forgot-password", data={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200

    def strip(html: str, email: str) -> str:
        """The page less the address typed and the form's CSRF token, which carries the
        second it was made (the two requests can fall on either side of one)."""
        return re.sub(r'(name="csrf_token"[^>]*value=")[^"]*', r"\1", html.replace(email, ""))

    assert strip(known.get_data(as_text=True), "ann@example.com") == strip(
        unknown.get_data(as_text=True), "nobody@example.com"
    )
    assert outbox("nobody@example.com") == []


def test_tampered_and_expired_reset_links_are_refused(client, session, app, outbox):
    UserFactory(email="ann@example.com")
    client.post("/forgot-password", data={"email": "ann@example.com"})
    link = link_in(outbox("ann@example.com")[0], "/reset-password/")
    tampered = client.get(link[:-3] + "xyz")
    assert tampered.status_code == 400
    assert "not valid" in tampered.get_data(as_text=True)
    app.config["PASSWORD_RESET_MAX_AGE"] = -1
    expired = client.get(link)
    assert expired.status_code == 400
    assert "expired" in expired.get_data(as_text=True)


# --- profile --------------------------------------------------------------------------


def test_profile_changes_name_language_and_time_zone(client, session):
    user = UserFactory()
    login(client, user)
    response = client.post(
        "/profile", data={"display_name": "Renamed", "locale": "zh_CN", "timezone": "Asia/Shanghai"}
    )
    assert response.status_code == 302
    session.expire_all()
    user = session.get(User, user.id)
    assert (user.display_name, user.locale, user.timezone) == ("Renamed", "zh_CN", "Asia/Shanghai")


def test_profile_rejects_unknown_time_zone_and_language(client, session):
    user = UserFactory()
    login(client, user)
    response = client.post(
        "/profile", data={"display_name": "X", "locale": "xx", "timezone": "Mars/Base"}
    )
    assert response.status_code == 422
    session.expire_all()
    assert session.get(User, user.id).timezone == "UTC"


def test_change_password_needs_the_current_one(client, session):
    user = UserFactory(email="ann@example.com")
    login(client, user)
    wrong = client.post(
        "/profile/password",
        data={
            "current_password": "not-it-at-all",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert wrong.status_code == 400
    assert "current password is not correct" in wrong.get_data(as_text=True)
    right = client.post(
        "/profile/password",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert right.status_code == 302
    client.post("/sign-out")
    assert (
        client.post(
            "/sign-in", data={"email": "ann@example.com", "password": NEW_PASSWORD}
        ).status_code
        == 302
    )


def test_pages_that_need_sign_in_redirect_to_it(client, session):
    response = client.get("/profile")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=")
