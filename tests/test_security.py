"""Cookies, headers, CSRF, rate limits, password hashing, error pages, production config."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.config import ConfigError, load_config
from portal.core.identity import User
from tests.factories import PASSWORD, DomainFactory, UserFactory


def test_every_page_carries_a_strict_content_security_policy(client, session):
    response = client.get("/sign-in")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    html = response.get_data(as_text=True)
    # No inline script or style, and nothing from another origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html and "<style" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_session_cookie_flags(client, session):
    UserFactory(email="ann@example.com")
    response = client.post("/sign-in", data={"email": "ann@example.com", "password": PASSWORD})
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure_and_a_real_key_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("COCREATE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(str(tmp_path), {"ENV": "production"})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(str(tmp_path), {"ENV": "production", "SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="Debug"):
        load_config(str(tmp_path), {"ENV": "production", "SECRET_KEY": "k" * 40, "DEBUG": True})
    config = load_config(
        str(tmp_path),
        {"ENV": "production", "SECRET_KEY": "k" * 40, "BROKER_URL": "redis://127.0.0.1:6379/0"},
    )
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    assert config["DEV_OUTBOX"] is False


def test_environment_variables_override_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("COCREATE_DATABASE_URL", "postgresql+psycopg://db/cocreate")
    monkeypatch.setenv("COCREATE_MAIL_PORT", "2525")
    monkeypatch.setenv("COCREATE_RATELIMIT_ENABLED", "false")
    config = load_config(str(tmp_path))
    assert config["DATABASE_URL"] == "postgresql+psycopg://db/cocreate"
    assert config["MAIL_PORT"] == 2525
    assert config["RATELIMIT_ENABLED"] is False


def test_stored_password_hash_uses_argon2id_at_owasp_parameters(session):
    from portal.core.security import hash_password

    stored = hash_password("any-long-password-1")
    match = re.match(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored)
    assert match
    memory_kib, passes, lanes = map(int, match.groups())
    # OWASP: 19 MiB with 2 passes (or an equivalent line), one lane.
    assert memory_kib >= 19 * 1024 and passes >= 2 and lanes == 1


def test_overlong_password_is_refused_without_hashing(client, session):
    UserFactory(email="ann@example.com")
    response = client.post("/sign-in", data={"email": "ann@example.com", "password": "x" * 5000})
    assert response.status_code == 422


@pytest.fixture
def app_config(request):
    return getattr(request, "param", {})


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}], indirect=True)
def test_forms_without_csrf_token_are_refused(client, session):
    DomainFactory(domain="acme.example")
    response = client.post(
        "/sign-up",
        data={
            "email": "a@acme.example",
            "display_name": "A",
            "password": "long-enough-pass-1",
            "confirm": "long-enough-pass-1",
        },
    )
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_sign_in_is_rate_limited_per_ip_with_a_clear_429(client, session):
    statuses = [
        client.post(
            "/sign-in", data={"email": f"u{i}@example.com", "password": "wrong-password-1"}
        ).status_code
        for i in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    response = client.post(
        "/sign-in", data={"email": "z@example.com", "password": "wrong-password-1"}
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many requests" in response.get_data(as_text=True)


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_sign_in_is_rate_limited_per_account_across_addresses(client, session):
    statuses = []
    for i in range(11):
        environ = {"REMOTE_ADDR": f"10.0.0.{i + 1}"}
        statuses.append(
            client.post(
                "/sign-in",
                data={"email": "target@example.com", "password": "wrong-password-1"},
                environ_base=environ,
            ).status_code
        )
    assert statuses[-1] == 429 and statuses[:10] == [401] * 10


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_reset_requests_are_rate_limited(client, session):
    statuses = [
        client.post("/forgot-password", data={"email": "a@example.com"}).status_code
        for _ in range(11)
    ]
    assert statuses[-1] == 429


def test_not_found_page_is_friendly(client, session):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "app_config", [{"TESTING": False, "MAX_CONTENT_LENGTH": 1024}], indirect=True
)
def test_errors_never_leak_a_stack_trace(app: Flask, client, session):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "secret internals" not in html and "Traceback" not in html
    assert "Something went wrong" in html

    too_big = client.post("/sign-in", data={"email": "a@example.com", "password": "x" * 5000})
    assert too_big.status_code == 413
    assert "larger than this site accepts" in too_big.get_data(as_text=True)
