"""The template gallery through its public surface: sharing and moderation, versions,
ratings, downloads and adoption, visibility, filters, search source, pages and the digest."""

from __future__ import annotations

import io
import json

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from moderation import service as moderation
from moderation.models import ModerationItem
from portal.core.activity import Activity
from portal.core.errors import DomainError, NotFound, PermissionDenied
from portal.core.identity import Role
from portal.core.mail import OutboxMessage
from portal.core.notifications import Notification
from portal.core.storage import storage_for
from portal.gallery import manifest, search, service
from portal.gallery.models import Download, Rating, Template, TemplateVersion
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.factories import OrganizationFactory, staff
from tests.gallery_factories import Gallery, manifest_bytes, member


@pytest.fixture
def gallery(app, session) -> Gallery:
    return Gallery(app, session)


@pytest.fixture
def moderator(session):
    return staff(Role.MODERATOR, display_name="Mona Moderator")


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def verbs(session, verb: str) -> list[Activity]:
    session.expire_all()
    return list(session.scalars(select(Activity).where(Activity.verb == verb)))


def approve(gallery, session, moderator, kind: str, object_id: int) -> None:
    item = moderation.item_id(session, kind, object_id)
    gallery(lambda s: moderation.approve(s, moderator, item))


def uploaded_files(app) -> list:
    root = storage_for(app.config["UPLOAD_DIR"], "gallery").root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- sharing and moderation ------------------------------------------------------------------


def test_a_trusted_member_shares_a_template_published_at_once(gallery, session):
    template = gallery.template(tags="Churn  SaaS")
    assert template.listed is True
    assert template.latest_version == "1.0.0"
    assert template.product_range == ">=5.2, <6"
    assert template.tags == ["churn", "saas"]
    assert "<strong>template" in template.description_html
    published = verbs(session, "template.published")
    assert [a.data for a in published] == [{"template_id": template.id, "version": "1.0.0"}]


def test_a_new_members_template_is_held_and_hidden_until_a_moderator_approves(
    gallery, session, client, moderator
):
    author = member(trust_level=1)
    data = b"region,revenue\n" + b'east,"=HYPERLINK(""http://x"")"\n' + b"<script>x</script>,1\n"
    template = gallery.template(
        author, data=data, name="sales.csv", version="1.0", product_range="^5.2"
    )
    assert template.listed is False
    assert moderation.item_state(session, service.TEMPLATE_KIND, template.id) == "pending"
    item = session.scalar(
        select(ModerationItem).where(
            ModerationItem.object_id == template.id, ModerationItem.kind == "template"
        )
    )
    # The moderator's preview: manifest summary and the escaped, neutralized first rows.
    assert "^5.2" in item.preview_html
    assert "&#39;=HYPERLINK" in item.preview_html or "'=HYPERLINK" in item.preview_html
    assert "<script>" not in item.preview_html and "&lt;script&gt;" in item.preview_html
    login(client, member())
    assert client.get(f"/gallery/templates/{template.id}").status_code == 404
    approve(gallery, session, moderator, service.TEMPLATE_KIND, template.id)
    session.refresh(template)
    assert template.listed and template.latest_version == "1.0.0"
    assert client.get(f"/gallery/templates/{template.id}").status_code == 200


def test_the_moderation_queue_page_shows_the_preview(gallery, client, moderator):
    gallery.template(member(trust_level=0), data=manifest_bytes(), title="Held retail dashboard")
    login(client, moderator)
    page = client.get("/moderation/queue")
    assert page.status_code == 200
    assert "Held retail dashboard" in page.get_data(as_text=True)


def test_staff_publish_at_once_and_refused_fields_name_themselves(gallery):
    assert gallery.template(staff(Role.CSM)).listed is True
    with pytest.raises(DomainError) as caught:
        gallery.template(title="abc")
    assert caught.value.field == "title"
    with pytest.raises(DomainError) as caught:
        gallery.template(version="2.0.0")  # the manifest says 1.0.0
    assert caught.value.field == "version"
    with pytest.raises(DomainError) as caught:
        gallery.template(data=b"a,b\n1,2\n", name="x.csv", version="one")
    assert caught.value.field == "version"
    with pytest.raises(DomainError) as caught:
        gallery.template(data=b"a,b\n1,2\n", name="x.csv", version="1.0.0", product_range="5 to 6")
    assert caught.value.field == "product_range"
    with pytest.raises(DomainError) as caught:
        gallery.template(tags="Not a tag!")
    assert caught.value.field == "tags"


# --- versions -------------------------------------------------------------------------------


def test_the_author_publishes_a_higher_version_with_a_changelog(gallery, session, moderator):
    author = member()
    template = gallery.template(author)
    newer = gallery.version(template, "1.1.0", changelog="Adds *region* filter.")
    assert newer.published is True
    session.refresh(template)
    assert template.latest_version == "1.1.0"
    assert "<em>region</em>" in newer.changelog_html
    with pytest.raises(DomainError, match="higher"):
        gallery.version(template, "1.0.5")
    with pytest.raises(PermissionDenied):
        gallery.version(template, "2.0.0", author=member())


def test_a_held_version_waits_while_the_current_one_stays(gallery, session, moderator):
    author = member(trust_level=1)
    template = gallery.template(author)
    approve(gallery, session, moderator, service.TEMPLATE_KIND, template.id)
    newer = gallery.version(template, "1.1", changelog="Fixes totals.")
    session.refresh(template)
    assert newer.published is False and template.latest_version == "1.0.0"
    approve(gallery, session, moderator, service.VERSION_KIND, newer.id)
    session.refresh(template)
    assert template.latest_version == "1.1.0"


@pytest.mark.parametrize(
    ("product_range", "english", "chinese"),
    [
        (">=5.2, <6", "5.2 and later, before 6.0", "5.2 及以上，低于 6.0"),
        ("^5.2", "5.2 and later, before 6.0", "5.2 及以上，低于 6.0"),
        (">=5.4.1", "5.4.1 and later", "5.4.1 及以上"),
        ("<7", "before 7.0", "低于 7.0"),
        ("*", "any version", "任何版本"),
    ],
)
def test_template_pages_say_the_product_versions_in_words(
    gallery, client, product_range, english, chinese
):
    template = gallery.template(
        data=b"a,b\n1,2\n", name="x.csv", version="1.0.0", product_range=product_range
    )
    viewer = member()
    login(client, viewer)
    page = client.get(f"/gallery/templates/{template.id}", headers={"Accept-Language": "en"})
    assert f"Works with product versions: {english}." in page.text
    listing = client.get("/gallery/", headers={"Accept-Language": "en"}).text
    if product_range == "*":
        assert "· product " not in listing
    else:
        assert f"product {english}" in listing
        # The rule as the author typed it stays on the template's page, escaped.
        assert f">{escape(product_range)}</code>" in page.text
    login(client, member(locale="zh_CN"))
    chinese_page = client.get(f"/gallery/templates/{template.id}").text
    assert f"适用的产品版本：{chinese}。" in chinese_page


def test_product_ranges_become_keys():
    assert manifest.parse_range(">=5.2, <6") == (5_002_000, 6_000_000)
    assert manifest.parse_range("^5.2") == (5_002_000, 6_000_000)
    assert manifest.parse_range("~5.2.1") == (5_002_001, 5_003_000)
    assert manifest.parse_range("*") == (None, None)
    assert manifest.compatible("v5.4 LTS", 5_002_000, 6_000_000)
    assert not manifest.compatible("6.0", 5_002_000, 6_000_000)
    for bad in ("5 to 6", ">=6, <5", "x" * 200):
        with pytest.raises(ValueError):
            manifest.parse_range(bad)


# --- ratings ----------------------------------------------------------------------------------


def test_one_rating_per_user_changeable_with_bayesian_score(gallery, session):
    template = gallery.template()
    rater = member()
    gallery(service.rate, rater, template.id, 5)
    gallery(service.rate, rater, template.id, 3)
    assert count(session, Rating, Rating.template_id == template.id) == 1
    session.refresh(template)
    assert (template.rating_count, template.rating_sum) == (1, 3)
    assert template.bayes_score == pytest.approx(service.bayes(3, 1))
    with pytest.raises(DomainError) as caught:
        gallery(service.rate, rater, template.id, 6)
    assert caught.value.field == "stars"
    with pytest.raises(PermissionDenied):
        gallery(service.rate, template.author, template.id, 5)


def test_one_five_star_vote_does_not_beat_a_hundred_votes_averaging_4_8():
    assert service.bayes(5, 1) < service.bayes(80 * 5 + 20 * 4, 100)


def test_top_rated_sort_uses_the_bayesian_score(gallery, session):
    lone = gallery.template(title="One vote wonder template")
    crowd = gallery.template(title="Crowd favourite template")
    gallery(service.rate, member(), lone.id, 5)
    for stars in (5, 5, 5, 4, 5, 5):
        gallery(service.rate, member(), crowd.id, stars)
    page = gallery(service.list_templates, None, service.ListFilters(sort="top"), 1, 20)
    titles = [row.template.title for row in page.items]
    assert titles.index("Crowd favourite template") < titles.index("One vote wonder template")


def test_reviews_are_moderated(gallery, session, moderator):
    template = gallery.template()
    row = gallery(service.review, member(trust_level=0), template.id, "Saved us a **week**.")
    assert row.published is False
    approve(gallery, session, moderator, service.REVIEW_KIND, row.id)
    view = gallery(service.template_view, None, template.id)
    assert [r.body_html.strip() for r in view.reviews] == [
        "<p>Saved us a <strong>week</strong>.</p>"
    ]


# --- downloads and adoption ---------------------------------------------------------------------


def test_downloads_are_recorded_per_org_with_activity(gallery, session):
    template = gallery.template()
    org = OrganizationFactory()
    first, second = member(organization=org), member(organization=org)
    other = member()
    for user in (first, second, other, first):
        gallery(service.download, user, template.id)
    session.refresh(template)
    assert template.download_count == 4 and template.org_count == 2
    activity = verbs(session, "template.downloaded")
    assert len(activity) == 4
    assert activity[0].data == {"template_id": template.id, "version": "1.0.0"}
    assert activity[0].organization_id == org.id
    assert gallery(service.adoption_by_org, org.id)[0][:2] == (template.title, 3)


def test_download_is_an_attachment_that_never_runs(gallery, client, session):
    data = manifest_bytes()
    template = gallery.template(data=data)
    user = member()
    assert client.get(f"/gallery/templates/{template.id}/download").status_code in {302, 401}
    login(client, user)
    response = client.get(f"/gallery/templates/{template.id}/download")
    assert response.status_code == 200
    assert response.data == data
    response.close()
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert count(session, Download, Download.user_id == user.id) == 1


def test_popular_counts_distinct_organizations_in_the_last_30_days(gallery, session):
    quiet = gallery.template(title="Quiet template here")
    busy = gallery.template(title="Busy template here")
    for _ in range(3):
        gallery(service.download, member(), busy.id)
    gallery(service.download, member(), quiet.id)
    page = gallery(service.list_templates, None, service.ListFilters(sort="popular"), 1, 20)
    assert [row.template.title for row in page.items][:2] == [
        "Busy template here",
        "Quiet template here",
    ]
    assert page.items[0].recent_orgs == 3


# --- visibility, filters, search --------------------------------------------------------------


def test_an_org_only_template_is_invisible_to_other_organizations(gallery, client, session):
    author = member()
    private = gallery.template(author, visibility="organization", title="Our internal template")
    colleague = member(organization=author.organization)
    stranger = member()
    assert gallery(service.get_template, colleague, private.id).id == private.id
    with pytest.raises(NotFound):
        gallery(service.get_template, stranger, private.id)
    login(client, stranger)
    assert client.get(f"/gallery/templates/{private.id}").status_code == 404
    assert client.get(f"/gallery/templates/{private.id}/download").status_code == 404
    assert "Our internal template" not in client.get("/gallery/").get_data(as_text=True)
    with gallery.app.app_context():
        (doc,) = search.load(session, [private.id])
    assert doc.private_to_org_id == author.organization_id


def test_filters_by_category_industry_tag_and_product_version(gallery, session):
    cs_factories.bind(session)
    gallery.template(
        title="Retail solution bundle", category="solution", industry="retail", tags="stores"
    )
    gallery.template(
        title="Old product report", data=manifest_bytes(product="<5"), industry="finance"
    )
    viewer = member()
    cs_factories.AccountFactory(organization_id=viewer.organization_id, product_version="5.4.1")

    def titles(**kwargs) -> list[str]:
        page = gallery(service.list_templates, viewer, service.ListFilters(**kwargs), 1, 20)
        return [row.template.title for row in page.items]

    assert titles(category="solution") == ["Retail solution bundle"]
    assert titles(industry="finance") == ["Old product report"]
    assert titles(tag="stores") == ["Retail solution bundle"]
    assert titles(compatible=True) == ["Retail solution bundle"]
    nobody = member()  # no product version known: nothing is known compatible
    page = gallery(service.list_templates, nobody, service.ListFilters(compatible=True), 1, 20)
    assert page.items == []


def test_search_source_indexes_only_listed_templates(gallery, session):
    listed = gallery.template(title="Indexed churn template")
    held = gallery.template(member(trust_level=0), title="Held churn template")
    with gallery.app.app_context():
        docs = search.load(session, [listed.id, held.id])
        assert [d.object_id for d in docs] == [listed.id]
        assert docs[0].url == f"/gallery/templates/{listed.id}" and "churn" in docs[0].tags
        assert [i for i, _ in search.catalog(session)] == [listed.id]


# --- pages --------------------------------------------------------------------------------


def test_gallery_page_runs_a_constant_number_of_statements(gallery, client, connection, session):
    cs_factories.bind(session)
    viewer = member()
    cs_factories.AccountFactory(organization_id=viewer.organization_id, product_version="5.4")
    login(client, viewer)
    gallery.template()
    client.get("/gallery/")  # warm up: per-process caches of the layout
    few = count_statements(client, connection, "/gallery/?compatible=1")
    assert "Churn report number" in client.get("/gallery/?compatible=1").get_data(as_text=True)
    for _ in range(12):
        gallery.template()
    assert count_statements(client, connection, "/gallery/?compatible=1") == few
    assert count_statements(client, connection, "/gallery/?sort=top") <= few


def test_template_page_shows_versions_compatibility_and_usage(gallery, client, session):
    cs_factories.bind(session)
    template = gallery.template(title="Shown churn template")
    gallery.version(template, "1.1.0", changelog="Adds a region filter.")
    viewer = member()
    cs_factories.AccountFactory(organization_id=viewer.organization_id, product_version="6.1")
    gallery(service.download, member(), template.id)
    login(client, viewer)
    html = client.get(f"/gallery/templates/{template.id}").get_data(as_text=True)
    assert "1.1.0" in html and "Adds a region filter." in html
    assert "Used by 1 organization" in html
    assert "Not compatible with your version 6.1" in html


def test_upload_form_shares_a_template(client, session, app):
    login(client, member())
    response = client.post(
        "/gallery/new",
        data={
            "title": "Uploaded churn template",
            "description": "From the form",
            "category": "report",
            "industry": "saas",
            "tags": "churn",
            "license": "MIT",
            "visibility": "public",
            "file": (io.BytesIO(manifest_bytes()), "churn.json"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    template = session.scalar(select(Template).where(Template.title == "Uploaded churn template"))
    assert template.listed and template.license == "MIT"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"MZ\x90\x00" + b"\x00" * 64, "report.json", "Executable"),
        (b"[" * 100_000, "deep.json", "nested too deeply"),
        (b"a,b\n\x00\x00", "data.csv", "binary"),
    ],
)
def test_upload_form_refuses_bad_files_and_keeps_nothing(client, app, session, data, name, message):
    login(client, member())
    before = uploaded_files(app)
    response = client.post(
        "/gallery/new",
        data={
            "title": "Refused template",
            "category": "report",
            "industry": "saas",
            "license": "MIT",
            "visibility": "public",
            "file": (io.BytesIO(data), name),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert uploaded_files(app) == before
    assert count(session, Template) == 0


def test_a_refused_form_removes_the_stored_file(client, app, session):
    login(client, member())
    before = uploaded_files(app)
    response = client.post(
        "/gallery/new",
        data={
            "title": "Refused version template",
            "category": "report",
            "industry": "saas",
            "license": "MIT",
            "visibility": "public",
            "version": "9.9.9",
            "file": (io.BytesIO(manifest_bytes(product=">=1")), "m.json"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "The manifest says version 1.0.0" in response.get_data(
        as_text=True
    )
    assert uploaded_files(app) == before


def test_an_upload_over_the_limit_is_refused(client, app, session):
    app.config["GALLERY_MAX_UPLOAD_BYTES"] = 1024
    login(client, member())
    before = uploaded_files(app)
    response = client.post(
        "/gallery/new",
        data={
            "title": "Too big template",
            "category": "report",
            "industry": "saas",
            "license": "MIT",
            "visibility": "public",
            "file": (io.BytesIO(b"a,b\n" * 1000), "big.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "larger than" in response.get_data(as_text=True)
    assert uploaded_files(app) == before


def test_new_version_page_is_for_the_author(gallery, client, session):
    author = member()
    template = gallery.template(author)
    login(client, member())
    assert client.get(f"/gallery/templates/{template.id}/versions/new").status_code == 403
    login(client, author)
    response = client.post(
        f"/gallery/templates/{template.id}/versions/new",
        data={
            "changelog": "Adds a region filter.",
            "file": (io.BytesIO(manifest_bytes("1.1.0")), "m.json"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    session.refresh(template)
    assert template.latest_version == "1.1.0"


def test_rate_and_review_through_the_page(gallery, client, session):
    template = gallery.template()
    user = member()
    login(client, user)
    assert (
        client.post(f"/gallery/templates/{template.id}/rate", data={"stars": "4"}).status_code
        == 302
    )
    assert (
        client.post(f"/gallery/templates/{template.id}/rate", data={"stars": "9"}).status_code
        == 302
    )
    assert session.scalar(select(Rating.stars).where(Rating.user_id == user.id)) == 4
    client.post(f"/gallery/templates/{template.id}/review", data={"body": "Clear and useful."})
    html = client.get(f"/gallery/templates/{template.id}").get_data(as_text=True)
    assert "Clear and useful." in html and "4.0 out of 5 from 1 ratings" in html
    # A refused review says what is wrong with it.
    for body, message in [("", "Write a few words."), ("x" * 5001, "Use at most 5000 characters.")]:
        client.post(f"/gallery/templates/{template.id}/review", data={"body": body})
        with client.session_transaction() as flask_session:
            assert flask_session.pop("_flashes") == [("danger", message)]


def test_manifest_schema_is_published(client):
    response = client.get("/gallery/manifest.schema.json")
    assert response.status_code == 200
    schema = response.get_json()
    assert schema["required"] == ["name", "version", "requires"]
    assert schema["$id"].endswith("/gallery/manifest.schema.json")


def test_anonymous_sees_public_templates_and_bad_query_args_are_ignored(gallery, client):
    gallery.template(title="Public churn template")
    response = client.get("/gallery/?sort=nope&category=x&page=-3&per_page=abc")
    assert response.status_code == 200
    assert "Public churn template" in response.get_data(as_text=True)


# --- author digest ------------------------------------------------------------------------------


def test_authors_get_one_digest_of_downloads_and_reviews(gallery, session, moderator):
    author = member()
    template = gallery.template(author)
    gallery(service.download, member(), template.id)
    gallery(service.download, member(), template.id)
    gallery(service.review, member(), template.id, "Great work on this.")
    assert gallery(service.send_author_digests) == 1
    note = session.scalar(select(Notification).where(Notification.user_id == author.id))
    assert "2 new downloads and 1 new reviews" in note.message
    mail = session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == author.email))
    assert template.title in mail.body
    assert gallery(service.send_author_digests) == 0, "nothing new: nothing sent"


def test_versions_are_unique_per_template(gallery, session):
    template = gallery.template()
    assert count(session, TemplateVersion, TemplateVersion.template_id == template.id) == 1
    assert json.loads(json.dumps(template.current_version.manifest))["version"] == "1.0.0"


def test_new_version_form_renders(gallery, client):
    author = member()
    template = gallery.template(author)
    login(client, author)
    page = client.get(f"/gallery/templates/{template.id}/versions/new")
    assert page.status_code == 200 and template.title in page.get_data(as_text=True)
    refused = client.post(
        f"/gallery/templates/{template.id}/versions/new",
        data={"changelog": "", "file": (io.BytesIO(manifest_bytes("1.0.0")), "m.json")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422


def test_cached_list_shows_a_new_template_after_its_commit(client, app, session):
    app.config["GALLERY_LIST_CACHE_SECONDS"] = 60
    login(client, member())
    assert "Fresh cached template" not in client.get("/gallery/?sort=newest").get_data(as_text=True)
    client.post(
        "/gallery/new",
        data={
            "title": "Fresh cached template",
            "category": "report",
            "industry": "saas",
            "license": "MIT",
            "visibility": "public",
            "file": (io.BytesIO(manifest_bytes()), "m.json"),
        },
        content_type="multipart/form-data",
    )
    assert "Fresh cached template" in client.get("/gallery/?sort=newest").get_data(as_text=True)


def test_files_of_a_deleted_organization_leave_the_disk_shared_ones_stay(
    app, session, gallery
) -> None:
    from datetime import timedelta

    from portal.privacy.service import delete_organization

    acme = OrganizationFactory(name="Acme Files")
    acme_id = acme.id
    own = gallery.template(member(organization=acme), data=manifest_bytes(name="Acme only"))
    shared_bytes = manifest_bytes(name="Shared by both")
    gallery.template(member(organization=acme), data=shared_bytes)
    theirs = gallery.template(member(), data=shared_bytes)
    own_key, shared_key = own.current_version.file_key, theirs.current_version.file_key
    with app.app_context():
        store = storage_for(app.config["UPLOAD_DIR"], "gallery")
        assert store.exists(own_key) and store.exists(shared_key)
        delete_organization(session, staff(Role.VENDOR_ADMIN), acme_id, "Acme Files")
        session.flush()
        # Just written files stay (an upload stores its file before its row commits).
        assert service.sweep_unreferenced_files(session, store) == 0
        assert store.exists(own_key)

        removed = service.sweep_unreferenced_files(session, store, min_age=timedelta(0))

        assert removed >= 1
        assert not store.exists(own_key)
        assert store.exists(shared_key)  # the other organization's template still uses it
        assert store.exists(theirs.current_version.file_key)
