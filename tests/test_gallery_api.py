"""The gallery JSON API: list and get, share and upload a version (multipart), download as an
attachment, rate; bad files and fields answered 4xx naming the field; in the OpenAPI document."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from portal.accounts.service import create_api_token
from portal.gallery.models import Download, Rating, Template
from tests.gallery_factories import Gallery, manifest_bytes, member


@pytest.fixture
def gallery(app, session) -> Gallery:
    return Gallery(app, session)


def token_for(gallery: Gallery, user, scope: str = "write") -> dict[str, str]:
    _token, raw = gallery(create_api_token, user, "script", scope)
    return {"Authorization": f"Bearer {raw}"}


def test_list_and_get_respect_visibility(gallery, client):
    author = member()
    gallery.template(author, title="Public churn template", category="dashboard")
    gallery.template(author, title="Private churn template", visibility="organization")
    outsider = member()
    body = client.get("/api/v1/templates", headers=token_for(gallery, outsider, "read")).get_json()
    assert [t["title"] for t in body["items"]] == ["Public churn template"]
    assert body["meta"]["total"] == 1
    mine = client.get(
        "/api/v1/templates?category=dashboard", headers=token_for(gallery, author, "read")
    ).get_json()
    assert [t["title"] for t in mine["items"]] == ["Public churn template"]
    bad = client.get("/api/v1/templates?sort=bogus&category=x", headers=token_for(gallery, author))
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"sort", "category"}


def test_get_shows_versions_and_hides_other_orgs_private_templates(gallery, client):
    author = member()
    public = gallery.template(author)
    private = gallery.template(author, visibility="organization")
    headers = token_for(gallery, member(), "read")
    detail = client.get(f"/api/v1/templates/{public.id}", headers=headers).get_json()
    assert detail["latest_version"] == "1.0.0"
    assert detail["versions"][0]["manifest"]["requires"] == {"product": ">=5.2, <6"}
    assert client.get(f"/api/v1/templates/{private.id}", headers=headers).status_code == 404


def test_share_and_upload_a_version_multipart(gallery, client, session):
    author = member()
    headers = token_for(gallery, author)
    created = client.post(
        "/api/v1/templates",
        data={
            "title": "API churn template",
            "tags": "churn api",
            "file": (io.BytesIO(manifest_bytes()), "churn.json"),
        },
        headers=headers,
        content_type="multipart/form-data",
    )
    assert created.status_code == 201, created.get_json()
    template_id = created.get_json()["id"]
    assert created.get_json()["tags"] == ["api", "churn"]
    version = client.post(
        f"/api/v1/templates/{template_id}/versions",
        data={"changelog": "Faster.", "file": (io.BytesIO(manifest_bytes("1.1.0")), "v.json")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert version.status_code == 201, version.get_json()
    assert version.get_json()["version"] == "1.1.0" and version.get_json()["published"] is True
    stranger = client.post(
        f"/api/v1/templates/{template_id}/versions",
        data={"changelog": "Mine now.", "file": (io.BytesIO(manifest_bytes("2.0.0")), "v.json")},
        headers=token_for(gallery, member()),
        content_type="multipart/form-data",
    )
    assert stranger.status_code == 403


def test_bad_uploads_answer_422_naming_the_file(gallery, client, session):
    headers = token_for(gallery, member())
    for data, name in [
        (b"\x7fELF\x02" + b"\x00" * 50, "x.json"),
        (b"[" * 100_000, "deep.json"),
    ]:
        response = client.post(
            "/api/v1/templates",
            data={"title": "Refused template", "file": (io.BytesIO(data), name)},
            headers=headers,
            content_type="multipart/form-data",
        )
        assert response.status_code == 422
        assert "file" in response.get_json()["error"]["fields"]
    missing = client.post(
        "/api/v1/templates",
        data={"title": "No file template"},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "file" in missing.get_json()["error"]["fields"]
    assert session.scalar(select(func.count()).select_from(Template)) == 0


def test_download_and_rate(gallery, client, session):
    template = gallery.template()
    user = member()
    response = client.get(
        f"/api/v1/templates/{template.id}/download", headers=token_for(gallery, user, "read")
    )
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    response.close()
    assert session.scalar(select(func.count()).select_from(Download)) == 1
    headers = token_for(gallery, user)
    rated = client.put(
        f"/api/v1/templates/{template.id}/rating", json={"stars": 4}, headers=headers
    )
    assert rated.status_code == 200 and rated.get_json()["rating_count"] == 1
    again = client.put(
        f"/api/v1/templates/{template.id}/rating", json={"stars": 2}, headers=headers
    )
    assert again.get_json()["rating_count"] == 1
    assert session.scalar(select(Rating.stars)) == 2
    bad = client.put(f"/api/v1/templates/{template.id}/rating", json={"stars": 0}, headers=headers)
    assert bad.status_code == 422 and "stars" in bad.get_json()["error"]["fields"]
    read_only = client.put(
        f"/api/v1/templates/{template.id}/rating",
        json={"stars": 5},
        headers=token_for(gallery, user, "read"),
    )
    assert read_only.status_code == 403


def test_openapi_documents_the_gallery(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in (
        "/templates",
        "/templates/{template_id}",
        "/templates/{template_id}/versions",
        "/templates/{template_id}/download",
        "/templates/{template_id}/rating",
    ):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/templates/{template_id}/versions"]


def test_a_file_field_sent_as_text_is_a_422(gallery, client):
    response = client.post(
        "/api/v1/templates",
        data={"title": "Text file field template", "file": "not a file"},
        headers=token_for(gallery, member()),
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "file" in response.get_json()["error"]["fields"]
