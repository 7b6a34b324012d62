"""Write/Preview on Markdown fields: POST /preview renders a draft with the one HTML policy, as
saving it would, for signed-in members only; bad input is a 422 naming the field."""

from __future__ import annotations

import pytest

from portal.core.html import MAX_MARKDOWN_CHARS
from tests.conftest import login
from tests.factories import UserFactory

IMAGE = "![chart](/uploads/chart.png)"


@pytest.fixture
def app_config(request):
    return getattr(request, "param", {})


def preview(client, body, **kwargs):
    return client.post("/preview", json=body, **kwargs)


def test_a_member_sees_the_draft_as_it_will_be_published(client, session):
    login(client, UserFactory())
    source = (
        "**Bold** [docs](https://example.com/a) <script>alert(1)</script> [x](javascript:alert(1))"
    )
    response = preview(client, {"source": source})
    assert response.status_code == 200
    html = response.get_json()["html"]
    assert "<strong>Bold</strong>" in html
    assert '<a href="https://example.com/a" rel="nofollow ugc noopener">docs</a>' in html
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert preview(client, {"source": "   "}).get_json() == {"html": ""}


def test_chinese_text_previews_unchanged(client, session):
    login(client, UserFactory())
    html = preview(client, {"source": "## 如何导出报表\n\n点击**导出**。"}).get_json()["html"]
    assert "如何导出报表</h" in html and "<p>点击<strong>导出</strong>。</p>" in html


@pytest.mark.parametrize("images", [True, False])
def test_images_show_only_where_saving_keeps_them(client, session, images):
    """A field that keeps images (a question) previews them; one that does not (a comment)
    shows their alt text, as saving would. Images from elsewhere never show."""
    login(client, UserFactory())
    source = IMAGE + " ![tracker](https://tracker.example/p.png)"
    html = preview(client, {"source": source, "images": images}).get_json()["html"]
    assert ('<img src="/uploads/chart.png"' in html) is images
    assert "chart" in html and "tracker" in html and "tracker.example" not in html


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "source"),
        ({"source": 5}, "source"),
        ({"source": "x" * (MAX_MARKDOWN_CHARS + 1)}, "source"),
        ({"source": "x", "images": "maybe"}, "images"),
        ({"source": "x", "author": 1}, "author"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, session, body, field):
    login(client, UserFactory())
    response = preview(client, body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def test_a_body_that_is_not_json_is_a_422(client, session):
    login(client, UserFactory())
    response = client.post("/preview", data="source=x")
    assert response.status_code == 422 and "source" in response.get_json()["error"]["fields"]


def test_visitors_are_sent_to_sign_in(client, session):
    response = preview(client, {"source": "**hi**"})
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_preview_needs_the_csrf_header(client, session):
    client.application.config["WTF_CSRF_ENABLED"] = True  # read on each request
    login(client, UserFactory())
    page = client.get("/questions/ask").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    assert 'data-markdown-preview="/preview"' in page
    assert preview(client, {"source": "hi"}).status_code == 400
    assert preview(client, {"source": "hi"}, headers={"X-CSRFToken": token}).status_code == 200


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_previews_are_limited_per_member(client, session):
    login(client, UserFactory())
    statuses = [preview(client, {"source": "hi"}).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
    login(client, UserFactory())  # another member has their own allowance
    assert preview(client, {"source": "hi"}).status_code == 200
