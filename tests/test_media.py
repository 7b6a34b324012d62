"""Images in posts: uploaded from the editor (POST /uploads), kept only as Pillow's re-encoding
of a decoded PNG, JPEG, GIF or WebP, served under an unguessable name, shown only where the
HTML policy keeps images, held for review when a new member posts one."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from moderation.models import ModerationItem
from portal.accounts.service import create_api_token
from portal.core import personal_data
from portal.core.db import utcnow
from portal.core.identity import Role
from portal.core.storage import storage_for
from portal.media import service
from portal.media.models import ContentImage
from portal.qa.models import Answer, Question
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.gallery_factories import Gallery
from tests.qa_factories import QA, member


@pytest.fixture
def app_config(request):
    return getattr(request, "param", {})


def image_bytes(form="PNG", size=(64, 40), **save):
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, form, **save)
    return out.getvalue()


def upload(client, data, filename="chart.png"):
    return client.post(
        "/uploads",
        data={"file": (io.BytesIO(data), filename)},
        headers={"Accept": "application/json"},
    )


def stored_files(app):
    return {key for key, _modified in storage_for(app.config["UPLOAD_DIR"], service.AREA).stored()}


def fetch(client, url, **kwargs):
    """The response, read and closed (a served file is open until then)."""
    response = client.get(url, **kwargs)
    response.get_data()
    response.close()
    return response


@pytest.mark.parametrize(
    ("form", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_an_uploaded_image_is_served_back_safely(client, session, form, content_type):
    login(client, UserFactory())
    response = upload(client, image_bytes(form), "Revenue chart [Q3].png")
    assert response.status_code == 201
    body = response.get_json()
    url = body["url"]
    assert url.startswith("/uploads/") and (body["width"], body["height"]) == (64, 40)
    assert body["markdown"] == f"![Revenue chart Q3]({url})"

    served = fetch(client, url)  # the editor's preview: its uploader sees it before any post
    assert served.status_code == 200 and served.mimetype == content_type
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert served.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert Image.open(io.BytesIO(served.data)).size == (64, 40)
    again = fetch(client, url, headers={"If-None-Match": served.headers["ETag"]})
    assert again.status_code == 304

    client.post("/sign-out")
    assert fetch(client, url).status_code == 404  # nobody else, until a post shows it


def test_camera_metadata_is_dropped_and_photos_are_turned_upright(client, session, app):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (31.0, 14.0, 0.0)  # GPS latitude
    photo = image_bytes("JPEG", (80, 50), exif=exif.tobytes())
    assert Image.open(io.BytesIO(photo)).getexif()  # the sent file carries it
    login(client, UserFactory())
    url = upload(client, photo, "IMG_0001.jpg").get_json()["url"]
    kept = Image.open(io.BytesIO(fetch(client, url).data))
    assert kept.size == (50, 80)  # upright
    assert not kept.getexif() and "exif" not in kept.info


def test_an_animated_gif_keeps_its_frames(client, session):
    frames = [Image.new("RGB", (20, 20), color) for color in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=120, loop=0)
    login(client, UserFactory())
    url = upload(client, out.getvalue(), "spinner.gif").get_json()["url"]
    kept = Image.open(io.BytesIO(fetch(client, url).data))
    assert kept.n_frames == 3 and kept.info["duration"] == 120


def truncated_png():
    return image_bytes("PNG", (300, 300))[:200]


def huge_png():
    out = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(out, "PNG")  # 50 megapixels in a few kB
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "says"),
    [
        (b"<html><script>alert(1)</script></html>", "evil.png", "not an image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "a.svg", "not an image"),
        (b"GIF89a<script>alert(1)</script>", "a.gif", "not an image"),
        (truncated_png(), "cut.png", "not an image"),
        (image_bytes("BMP"), "old.bmp", "not an image"),
        (huge_png(), "bomb.png", "too large"),
        (b"", "empty.png", "empty"),
        (image_bytes("PNG", (400, 400), compress_level=0), "big.png", "larger than 0.25 MB"),
    ],
)
def test_what_is_not_a_showable_image_is_refused_naming_the_field(
    client, session, app, data, filename, says
):
    app.config["MEDIA_MAX_IMAGE_BYTES"] = 256 * 1024
    login(client, UserFactory())
    files_before = stored_files(app)
    response = upload(client, data, filename)
    assert response.status_code == 422
    assert says in response.get_json()["error"]["fields"]["file"][0]
    assert session.scalar(select(func.count()).select_from(ContentImage)) == 0
    assert stored_files(app) == files_before


def test_a_post_without_a_file_says_so(client, session):
    login(client, UserFactory())
    response = client.post("/uploads", data={}, headers={"Accept": "application/json"})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"file": ["Choose an image."]}


def test_visitors_cannot_upload(client, session):
    response = upload(client, image_bytes())
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


@pytest.mark.parametrize(
    "name", ["0" * 32 + ".png", "nothing.png", "..%2f..%2fapp.db", "0" * 32 + ".svg"]
)
def test_unknown_names_are_not_found(client, session, name):
    assert client.get(f"/uploads/{name}").status_code == 404


def test_uploads_are_limited_per_member_on_every_surface(app, client, session):
    uploader = UserFactory()
    login(client, uploader)
    data = image_bytes()
    statuses = [upload(client, data).status_code for _ in range(service.UPLOADS_PER_HOUR)]
    assert statuses == [201] * service.UPLOADS_PER_HOUR
    refused = upload(client, data)
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3601
    assert "30 images in the last hour" in refused.get_json()["error"]["fields"]["file"][0]
    api = api_upload(client, QA(app, session), uploader, data)
    assert api.status_code == 429 and "file" in api.get_json()["error"]["fields"]
    login(client, UserFactory())  # another member has their own allowance
    assert upload(client, data).status_code == 201


def api_upload(client, qa, user, data, scope="write", filename="chart.png"):
    _token, raw = qa(create_api_token, user, "script", scope)
    return client.post(
        "/api/v1/images",
        data={"file": (io.BytesIO(data), filename)},
        headers={"Authorization": f"Bearer {raw}"},
    )


def test_a_script_uploads_an_image_through_the_api(app, client, session):
    qa = QA(app, session)
    user = member()
    created = api_upload(client, qa, user, image_bytes("JPEG"), filename="screen.jpg")
    assert created.status_code == 201
    body = created.get_json()
    assert body["content_type"] == "image/jpeg" and body["markdown"].startswith(
        "![screen](/uploads/"
    )
    assert fetch(client, body["url"]).status_code == 404  # shown by no post yet
    login(client, user)
    assert fetch(client, body["url"]).status_code == 200  # but to its uploader
    assert api_upload(client, qa, user, image_bytes(), scope="read").status_code == 403
    missing = client.post(
        "/api/v1/images",
        data={"other": "x"},
        headers={"Authorization": f"Bearer {qa(create_api_token, user, 'script', 'write')[1]}"},
    )
    assert missing.status_code == 422 and "file" in missing.get_json()["error"]["fields"]
    refused = api_upload(client, qa, user, b"<svg/>", filename="a.svg")
    assert (
        refused.status_code == 422
        and "not an image" in refused.get_json()["error"]["fields"]["file"][0]
    )


def ask(client, body):
    return client.post(
        "/questions/ask",
        data={"title": "How do I read this revenue chart?", "body": body, "tags": "charts"},
    )


def test_a_question_shows_an_uploaded_image_and_drops_others(client, session):
    login(client, member())
    url = upload(client, image_bytes()).get_json()["url"]
    ask(client, f"![chart]({url}) and ![tracker](https://tracker.example/pixel.png)")
    question = session.scalars(select(Question)).one()
    assert f'<img src="{url}" alt="chart">' in question.body_html
    assert "tracker.example" not in question.body_html and "tracker" in question.body_html
    assert f'<img src="{url}"' in fetch(client, f"/questions/{question.id}").get_data(as_text=True)


def test_an_image_in_a_public_question_is_for_everyone_and_any_cache(client, session):
    login(client, member())
    url = upload(client, image_bytes()).get_json()["url"]
    ask(client, f"![chart]({url})")
    client.post("/sign-out")
    served = fetch(client, url)  # readers of a public post need not be signed in
    assert served.status_code == 200
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_an_image_in_a_private_question_reaches_only_its_organization_and_staff(client, session):
    """Its link passed to another organization, or found in a browser's history, shows
    nothing: the image is "not found" for whoever may not read the question."""
    author = member()
    colleague, outsider = member(organization=author.organization), member()
    moderator = staff(Role.MODERATOR)
    login(client, author)
    url = upload(client, image_bytes()).get_json()["url"]
    client.post(
        "/questions/ask",
        data={
            "title": "Our revenue chart",
            "body": f"![chart]({url})",
            "tags": "x",
            "private": "y",
        },
    )
    question = session.scalars(select(Question)).one()
    assert question.is_private and question.published
    login(client, colleague)
    answer_url = upload(client, image_bytes("JPEG")).get_json()["url"]
    client.post(f"/questions/{question.id}/answers", data={"body": f"Ours: ![it]({answer_url})"})
    assert session.scalars(select(Answer)).one().published

    for viewer, status in [(author, 200), (colleague, 200), (moderator, 200), (outsider, 404)]:
        login(client, viewer)
        for shown in (url, answer_url):
            assert fetch(client, shown).status_code == status, (viewer, shown)
    client.post("/sign-out")
    assert fetch(client, url).status_code == 404
    login(client, colleague)
    assert fetch(client, url).headers["Cache-Control"].startswith("private")

    login(client, outsider)  # another organization's public post does not open it
    ask(client, f"Look: ![chart]({url})")
    assert fetch(client, url).status_code == 404
    login(client, colleague)  # its own organization may publish it
    ask(client, f"Shared on purpose: ![chart]({url})")
    client.post("/sign-out")
    assert fetch(client, url).status_code == 200


def test_an_organization_only_templates_images_stay_with_that_organization(app, client, session):
    author = member()
    login(client, author)
    shown = upload(client, image_bytes()).get_json()["url"]
    changelog = upload(client, image_bytes("JPEG")).get_json()["url"]
    Gallery(app, session).template(
        author,
        description=f"The layout: ![layout]({shown})",
        changelog=f"Now with ![totals]({changelog})",
        visibility="organization",
    )
    for viewer, status in [(member(organization=author.organization), 200), (member(), 404)]:
        login(client, viewer)
        assert [fetch(client, url).status_code for url in (shown, changelog)] == [status] * 2


def test_a_new_members_image_waits_for_review(client, session):
    login(client, member(trust_level=0))
    url = upload(client, image_bytes()).get_json()["url"]
    ask(client, f"Is this normal? ![chart]({url})")
    question = session.scalars(select(Question)).one()
    item = session.scalars(select(ModerationItem).where(ModerationItem.object_id == question.id))
    assert "image_by_new_user" in item.one().held_reasons
    assert question.published is False


def test_comments_show_no_images(client, session, app):
    author = member()
    question = QA(app, session).question(author)
    login(client, author)
    url = upload(client, image_bytes()).get_json()["url"]
    client.post(f"/questions/{question.id}/comments", data={"body": f"See ![it]({url})"})
    page = client.get(f"/questions/{question.id}").get_data(as_text=True)
    assert "See it" in page and f'<img src="{url}"' not in page


def test_personal_data_lists_images_and_erasure_lets_the_files_go(client, session, app):
    author = UserFactory()
    login(client, author)
    upload(client, image_bytes())
    exported = personal_data.export_all(session, author)["media"]["images"]
    assert len(exported) == 1 and exported[0]["content_type"] == "image/png"

    personal_data.erase_all(session, author, personal_data.KEEP)
    assert session.scalars(select(ContentImage)).one().uploader_id is None

    other = UserFactory()
    login(client, other)
    upload(client, image_bytes())
    personal_data.erase_all(session, other, personal_data.REMOVE)
    session.flush()
    assert session.scalar(select(func.count()).select_from(ContentImage)) == 1

    # Both uploads were the same picture: one file, still referenced by the kept image. Made
    # older than the sweep's grace period (an upload writes its file before its row commits).
    store = storage_for(app.config["UPLOAD_DIR"], service.AREA)
    (key,) = set(session.scalars(select(ContentImage.storage_key)))
    old = time.time() - 7200
    os.utime(store._path(key), (old, old))
    service.sweep_unreferenced_files(session, store)
    assert store.exists(key)
    session.execute(ContentImage.__table__.delete())  # its organization was deleted
    service.sweep_unreferenced_files(session, store)
    assert not store.exists(key)


def test_images_no_post_shows_are_swept_after_two_days(app, client, session):
    author = member()
    login(client, author)
    used = upload(client, image_bytes("PNG", (30, 30))).get_json()["url"]
    later = upload(client, image_bytes("PNG", (31, 31))).get_json()["url"]
    abandoned = upload(client, image_bytes("PNG", (32, 32))).get_json()["url"]
    ask(client, f"![chart]({used})")
    question = session.scalars(select(Question)).one()
    client.post(f"/questions/{question.id}/answers", data={"body": "First without a picture."})
    answer_id = session.scalar(select(Answer.id))
    client.post(
        f"/questions/answers/{answer_id}/edit", data={"body": f"Now with one: ![it]({later})"}
    )

    def image(url):
        session.expire_all()
        return session.scalars(select(ContentImage).where(ContentImage.name == url[9:])).one()

    assert image(used).claimed_at is not None and image(later).claimed_at is not None
    assert image(abandoned).claimed_at is None
    session.execute(ContentImage.__table__.update().values(created_at=utcnow() - timedelta(days=3)))
    assert service.delete_unclaimed(session) == 1
    names = set(session.scalars(select(ContentImage.name)))
    assert names == {used[9:], later[9:]}
    assert fetch(client, abandoned).status_code == 404 and fetch(client, used).status_code == 200
