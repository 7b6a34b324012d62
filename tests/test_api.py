"""The JSON API: tokens, the error body, pagination, isolation, the OpenAPI document."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.accounts.models import ApiToken
from portal.core.identity import Role, User
from tests.conftest import login
from tests.factories import OrganizationFactory, UserFactory


def make_token(client, session, user, scope="read") -> str:
    login(client, user)
    html = client.post("/profile/tokens", data={"name": "script", "scope": scope}).get_data(
        as_text=True
    )
    start = html.index('data-testid="new-token">') + len('data-testid="new-token">')
    raw = html[start : html.index("<", start)]
    client.post("/sign-out")
    return raw


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_me_with_a_token(client, session):
    user = UserFactory(display_name="Ann", email="ann@example.com")
    token = make_token(client, session, user)
    body = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert body["email"] == "ann@example.com"
    assert body["organization"]["id"] == user.organization_id
    assert body["roles"] == ["member"]
    stored = session.scalar(select(ApiToken))
    assert stored.token_digest != token and token not in stored.token_digest
    session.expire_all()
    assert session.scalar(select(ApiToken)).last_used_at is not None


def test_missing_wrong_and_revoked_tokens_are_401(client, session):
    user = UserFactory()
    token = make_token(client, session, user)
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    assert_error(client.get("/api/v1/me", headers=bearer("cct_wrong")), 401)
    login(client, user)
    token_id = session.scalar(select(ApiToken.id))
    client.post(f"/profile/tokens/{token_id}/revoke")
    client.post("/sign-out")
    assert_error(client.get("/api/v1/me", headers=bearer(token)), 401)


def test_read_token_cannot_write(client, session):
    user = UserFactory()
    token = make_token(client, session, user, scope="read")
    error = assert_error(
        client.patch("/api/v1/me", json={"display_name": "X"}, headers=bearer(token)), 403
    )
    assert "read-only" in error["message"]


def test_update_me_validates_and_names_fields(client, session):
    user = UserFactory(display_name="Before")
    token = make_token(client, session, user, scope="write")
    headers = bearer(token)
    ok = client.patch(
        "/api/v1/me", json={"display_name": "After", "locale": "zh_CN"}, headers=headers
    )
    assert ok.status_code == 200 and ok.get_json()["display_name"] == "After"

    unknown = assert_error(
        client.patch("/api/v1/me", json={"organization_id": 5}, headers=headers), 422
    )
    assert "organization_id" in unknown["fields"]
    too_long = assert_error(
        client.patch("/api/v1/me", json={"display_name": "x" * 81}, headers=headers), 422
    )
    assert "display_name" in too_long["fields"]
    malformed = client.patch(
        "/api/v1/me", data="{not json", content_type="application/json", headers=headers
    )
    assert_error(malformed, 400)
    session.expire_all()
    assert session.get(User, user.id).organization_id == user.organization_id
    assert session.get(User, user.id).display_name == "After"


def test_session_cookie_may_read_but_not_write(client, session):
    user = UserFactory()
    login(client, user)
    assert client.get("/api/v1/me").status_code == 200
    assert_error(client.patch("/api/v1/me", json={"display_name": "X"}), 401)


def test_organization_is_only_visible_to_its_members_and_staff(client, session):
    user = UserFactory()
    other = OrganizationFactory()
    token = make_token(client, session, user)
    assert (
        client.get(
            f"/api/v1/organizations/{user.organization_id}", headers=bearer(token)
        ).status_code
        == 200
    )
    assert_error(
        client.get(f"/api/v1/organizations/{other.id}", headers=bearer(token)), 404, "not_found"
    )
    assert_error(client.get("/api/v1/organizations/987654", headers=bearer(token)), 404)

    vendor_staff = UserFactory(organization=OrganizationFactory(kind="vendor"), roles=[Role.CSM])
    staff_token = make_token(client, session, vendor_staff)
    assert (
        client.get(f"/api/v1/organizations/{other.id}", headers=bearer(staff_token)).status_code
        == 200
    )


def test_members_are_paginated_for_admins_only(client, session):
    admin = UserFactory(roles=[Role.ORG_ADMIN])
    for _ in range(4):
        UserFactory(organization=admin.organization)
    token = make_token(client, session, admin)
    url = f"/api/v1/organizations/{admin.organization_id}/members"
    page = client.get(url + "?per_page=2&page=2", headers=bearer(token)).get_json()
    assert page["meta"] == {"page": 2, "per_page": 2, "total": 5, "pages": 3}
    assert len(page["items"]) == 2
    bad = assert_error(client.get(url + "?per_page=1000", headers=bearer(token)), 422)
    assert "per_page" in bad["fields"]
    member = UserFactory(organization=admin.organization)
    assert_error(client.get(url, headers=bearer(make_token(client, session, member))), 403)


def test_unknown_api_route_answers_json_404(client, session):
    assert_error(client.get("/api/v1/nothing-here"), 404)


def test_openapi_document_describes_every_api_route(client, session, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi":
            path = rule.rule.removeprefix("/api/v1")
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", f"{{{name}}}").replace(
                    f"<{name}>", f"{{{name}}}"
                )
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed.add((path, method.lower()))
    assert routed == documented
    assert "MeOut" in spec["components"]["schemas"]


@pytest.mark.parametrize("method", ["post", "delete", "put"])
def test_wrong_method_is_json_405(client, session, method):
    user = UserFactory()
    token = make_token(client, session, user, scope="write")
    assert_error(getattr(client, method)("/api/v1/me", headers=bearer(token)), 405)


def test_nul_and_control_characters_are_dropped_not_a_500(client, session):
    user = UserFactory()
    token = make_token(client, session, user, scope="write")
    response = client.patch(
        "/api/v1/me", json={"display_name": "Ann\u0000 \u001b[31mRed"}, headers=bearer(token)
    )
    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ann [31mRed"
