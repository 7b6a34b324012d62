"""The knowledge base through its public surface: pages, services, the API, promotion of
accepted answers, KB candidates through the moderation queue, and the search source."""

from __future__ import annotations

import pytest
from flask import render_template_string
from flask_login import login_user
from sqlalchemy import func, select

from moderation.models import ModerationItem
from portal.accounts.service import create_api_token
from portal.core.activity import Activity
from portal.core.errors import DomainError, NotFound, PermissionDenied
from portal.core.identity import Role
from portal.kb import search as kb_search
from portal.kb import service
from portal.kb.models import Article, ArticleFeedback, ArticleVersion, Category, Proposal
from portal.qa.signals import answer_accepted, answer_marked_helpful
from tests import kb_factories
from tests.conftest import count_statements, login
from tests.factories import OrganizationFactory, UserFactory, staff
from tests.kb_factories import (
    AnswerFactory,
    ArticleFactory,
    CategoryFactory,
    TagFactory,
    accepted_answer,
)


@pytest.fixture(autouse=True)
def _bind(session):
    kb_factories.bind(session)


@pytest.fixture
def writer(session):
    return staff(Role.CSM, display_name="Kim Writer")


@pytest.fixture
def moderator(session):
    return staff(Role.MODERATOR, display_name="Mona Moderator")


@pytest.fixture
def customer(session):
    return UserFactory(display_name="Carla Customer")


@pytest.fixture
def scheduled(monkeypatch):
    """What was handed to the search index (the index itself is search's to test)."""
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "portal.search.index.schedule", lambda _s, kind, object_id: calls.append((kind, object_id))
    )
    return calls


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def verbs(session, verb) -> list[Activity]:
    session.expire_all()
    return list(session.scalars(select(Activity).where(Activity.verb == verb)))


def article_form(**overrides):
    data = {
        "title": "Set up SAML single sign-on",
        "body": "1. Open **Settings**\n2. Paste the metadata URL",
        "language": "en",
        "category_id": "",
        "tags": "sso, SAML okta",
        "published": "y",
    }
    data.update(overrides)
    return data


# --- writing articles ------------------------------------------------------------------------


def test_staff_writes_an_article_with_a_first_version(client, session, writer, scheduled):
    category = CategoryFactory(name="Security")
    login(client, writer)
    response = client.post("/kb/articles/new", data=article_form(category_id=str(category.id)))
    assert response.status_code == 302
    article = session.scalar(select(Article))
    assert response.headers["Location"].endswith(f"/kb/articles/{article.id}")
    assert article.tags == "sso saml okta" and article.category_id == category.id
    assert "<strong>Settings</strong>" in article.body_html and article.author_id == writer.id
    versions = session.scalars(select(ArticleVersion)).all()
    assert [(v.number, v.editor_id) for v in versions] == [(1, writer.id)]
    assert [a.data["article_id"] for a in verbs(session, "article.published")] == [article.id]
    assert scheduled == [("article", article.id)]


def test_customers_cannot_write_and_anonymous_are_sent_to_sign_in(client, session, customer):
    assert client.get("/kb/articles/new").status_code == 302
    login(client, customer)
    assert client.post("/kb/articles/new", data=article_form()).status_code == 403
    assert client.get("/kb/categories").status_code == 403
    assert client.get("/kb/settings").status_code == 403
    assert count(session, Article) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": ""}, "This field is required."),
        ({"title": "x" * 201}, "Use at most 200 characters."),
        ({"language": "fr"}, "Not a valid choice."),
        ({"category_id": "999999"}, "Choose an existing category."),
        ({"tags": "a b c d e f g h i j k"}, "Use at most 10 tags."),
        ({"tags": "<script>"}, "Tags are single words"),
        ({"body": "x" * 50_001}, "Use at most 50000 characters."),
    ],
)
def test_bad_article_input_is_shown_beside_the_field(client, session, writer, overrides, message):
    login(client, writer)
    response = client.post("/kb/articles/new", data=article_form(**overrides))
    assert 400 <= response.status_code < 500
    assert message in response.get_data(as_text=True)
    assert count(session, Article) == 0


def test_each_save_is_a_numbered_version_with_an_escaped_diff(client, session, writer, scheduled):
    article = ArticleFactory(body_source="Step one\nStep two")
    session.add(
        ArticleVersion(
            article_id=article.id, number=1, title=article.title, body_source=article.body_source
        )
    )
    session.flush()
    login(client, writer)
    edited = article_form(title=article.title, body="Step one\n<script>alert(1)</script>")
    assert client.post(f"/kb/articles/{article.id}/edit", data=edited).status_code == 302
    session.expire_all()
    assert session.get(Article, article.id).version == 2
    assert "<script>" not in session.get(Article, article.id).body_html
    numbers = session.scalars(select(ArticleVersion.number).order_by(ArticleVersion.number)).all()
    assert numbers == [1, 2]
    assert verbs(session, "article.updated")[0].data["version"] == 2
    assert scheduled == [("article", article.id)]

    page = client.get(f"/kb/articles/{article.id}/versions").get_data(as_text=True)
    assert "<del>Step two</del>" in page
    assert "<ins>&lt;script&gt;alert(1)&lt;/script&gt;</ins>" in page
    assert "<script>alert" not in page
    assert client.get(f"/kb/articles/{article.id}/versions?a=1&b=9").status_code == 404


def test_editing_keeps_existing_values_and_can_unpublish(app_ctx, session, writer, scheduled):
    article = service.create_article(
        session,
        writer,
        title="T",
        body="B",
        language="en",
        category_id=None,
        tags="x",
        published=True,
    )
    service.update_article(session, writer, article.id, published=False)
    assert article.title == "T" and article.tags == "x" and not article.published
    assert article.version == 2
    assert scheduled == [("article", article.id)] * 2
    with pytest.raises(PermissionDenied):
        service.update_article(session, UserFactory(), article.id, title="Mine")
    with pytest.raises(NotFound):
        service.update_article(session, writer, 999_999, title="Gone")


def test_deleting_an_article_takes_it_out_of_the_index(client, session, writer, scheduled):
    article_id = ArticleFactory().id
    login(client, writer)
    assert client.post(f"/kb/articles/{article_id}/delete").status_code == 302
    assert count(session, Article) == 0
    assert scheduled == [("article", article_id)]


# --- reading --------------------------------------------------------------------------------


def test_anonymous_reads_published_articles_but_not_drafts(client, session, writer, customer):
    article = ArticleFactory(title="Share a dashboard", body_source="Click **Share**.")
    article.body_html = "<p>Click <strong>Share</strong>.</p>"
    draft = ArticleFactory(title="Secret plan", published=False)
    page = client.get(f"/kb/articles/{article.id}")
    assert page.status_code == 200
    assert "<strong>Share</strong>" in page.get_data(as_text=True)
    assert "Sign in to say whether this helped." in page.get_data(as_text=True)
    assert client.get(f"/kb/articles/{draft.id}").status_code == 404
    login(client, customer)
    assert client.get(f"/kb/articles/{draft.id}").status_code == 404
    assert "Secret plan" not in client.get("/kb/").get_data(as_text=True)
    login(client, writer)
    assert client.get(f"/kb/articles/{draft.id}").status_code == 200
    assert "Secret plan" in client.get("/kb/").get_data(as_text=True)


def test_signed_in_reads_are_recorded_for_trust_levels(client, session, customer):
    article = ArticleFactory()
    client.get(f"/kb/articles/{article.id}")
    assert verbs(session, "content.viewed") == []
    login(client, customer)
    client.get(f"/kb/articles/{article.id}")
    viewed = verbs(session, "content.viewed")
    assert [(v.actor_id, v.subject_type, v.subject_id, v.data) for v in viewed] == [
        (customer.id, "kb_articles", article.id, {"kind": "article"})
    ]


def test_home_counts_articles_per_category_and_filters_by_language(client, session):
    setup, sharing = CategoryFactory(name="Setup"), CategoryFactory(name="Sharing")
    ArticleFactory(category_id=setup.id, title="English setup")
    ArticleFactory(category_id=setup.id, title="中文设置", language="zh_CN", helpful_yes=4)
    ArticleFactory(category_id=setup.id, published=False)
    ArticleFactory(category_id=sharing.id, title="Share it", helpful_yes=1)
    overview, newest, helpful = service.home_overview(session)
    assert [(c.category.name, c.articles) for c in overview] == [("Setup", 2), ("Sharing", 1)]
    assert [a.title for a in helpful] == ["中文设置", "Share it"]
    html = client.get("/kb/?lang=zh_CN").get_data(as_text=True)
    assert "中文设置" in html and "English setup" not in html
    assert client.get("/kb/?lang=klingon").status_code == 400


def test_category_names_follow_the_readers_language(client, session):
    category = CategoryFactory(name="Data import", name_zh="数据导入")
    assert "Data import" in client.get(f"/kb/categories/{category.slug}").get_data(as_text=True)
    chinese = client.get(
        f"/kb/categories/{category.slug}", headers={"Accept-Language": "zh-CN"}
    ).get_data(as_text=True)
    assert "数据导入" in chinese
    assert client.get("/kb/categories/no-such-category").status_code == 404


def test_list_pages_use_a_constant_number_of_queries(client, session, connection, customer):
    category = CategoryFactory()
    login(client, customer)

    def measure(extra: int) -> tuple[int, int]:
        for index in range(extra):
            other = CategoryFactory()
            ArticleFactory(category_id=category.id, title=f"Article {extra}-{index}")
            ArticleFactory(category_id=other.id, helpful_yes=index + 1)
        session.flush()
        return (
            count_statements(client, connection, f"/kb/categories/{category.slug}"),
            count_statements(client, connection, "/kb/"),
        )

    # One article per new category first: fewer than a list holds, so a lazy load per row
    # would show up as a difference.
    few, many = measure(1), measure(15)
    assert few == many
    assert many[0] <= 4 and many[1] <= 6


def test_category_page_is_paginated(client, session):
    category = CategoryFactory()
    for index in range(25):
        ArticleFactory(category_id=category.id, title=f"Paged article {index:02d}")
    first = client.get(f"/kb/categories/{category.slug}").get_data(as_text=True)
    second = client.get(f"/kb/categories/{category.slug}?page=2").get_data(as_text=True)
    assert first.count("data-article=") == 20 and second.count("data-article=") == 5
    assert "Page 1 of 2" in first


def test_related_articles_share_the_category_or_tags(app_ctx, session):
    sso, other = CategoryFactory(), CategoryFactory()
    article = ArticleFactory(category_id=sso.id, tags="saml okta")
    same_category = ArticleFactory(category_id=sso.id, tags="")
    two_tags = ArticleFactory(category_id=other.id, tags="okta saml")
    one_tag = ArticleFactory(category_id=other.id, tags="okta_like saml")
    ArticleFactory(category_id=other.id, tags="oktaextra")  # no whole-tag match
    ArticleFactory(category_id=sso.id, published=False)
    related = service.related_articles(session, article)
    assert [a.id for a in related] == [same_category.id, two_tags.id, one_tag.id]


# --- feedback ------------------------------------------------------------------------------


def test_feedback_is_one_per_reader_and_can_be_changed(client, session, customer):
    article = ArticleFactory()
    login(client, customer)
    url = f"/kb/articles/{article.id}/feedback"
    assert client.post(url, data={"helpful": "yes"}).status_code == 302
    assert (
        client.post(url, data={"helpful": "no", "comment": "Step 3 is out of date"}).status_code
        == 302
    )
    assert client.post(url, data={"helpful": "no", "comment": "Still"}).status_code == 302
    session.expire_all()
    stored = session.get(Article, article.id)
    assert (stored.helpful_yes, stored.helpful_no) == (0, 1)
    rows = session.scalars(select(ArticleFeedback)).all()
    assert [(r.user_id, r.helpful, r.comment, r.organization_id) for r in rows] == [
        (customer.id, False, "Still", customer.organization_id)
    ]
    helpful = verbs(session, "article.helpful")
    assert [a.data for a in helpful] == [
        {"helpful": True, "article_id": article.id},
        {"helpful": False, "article_id": article.id},
    ]
    assert helpful[0].organization_id == customer.organization_id
    page = client.get(f"/kb/articles/{article.id}").get_data(as_text=True)
    assert "0 yes · 1 no" in page and "You said: No" in page


def test_feedback_counts_stay_consistent_across_readers(app_ctx, session):
    article = ArticleFactory()
    readers = [UserFactory() for _ in range(3)]
    for reader in readers:
        service.give_feedback(session, reader, article.id, True)
    service.give_feedback(session, readers[0], article.id, False)
    session.refresh(article)
    assert (article.helpful_yes, article.helpful_no) == (2, 1)
    assert count(session, ArticleFeedback) == 3


def test_anonymous_feedback_is_sent_to_sign_in(client, session):
    article = ArticleFactory()
    response = client.post(f"/kb/articles/{article.id}/feedback", data={"helpful": "yes"})
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    assert count(session, ArticleFeedback) == 0


def test_feedback_refuses_drafts_bad_answers_and_long_comments(app_ctx, session, customer):
    draft = ArticleFactory(published=False)
    article = ArticleFactory()
    with pytest.raises(NotFound):
        service.give_feedback(session, customer, draft.id, True)
    with pytest.raises(DomainError) as error:
        service.give_feedback(session, customer, article.id, True, "x" * 2001)
    assert error.value.field == "comment"
    with pytest.raises(DomainError) as error:
        service.give_feedback(session, customer, article.id, "yes")  # type: ignore[arg-type]
    assert error.value.field == "helpful"
    with pytest.raises(PermissionDenied):
        service.give_feedback(session, None, article.id, True)
    assert count(session, ArticleFeedback) == 0


# --- categories and settings -------------------------------------------------------------------


def test_staff_manage_categories(client, session, writer):
    login(client, writer)
    data = {"slug": "data-import", "name": "Data import", "name_zh": "数据导入"}
    assert client.post("/kb/categories", data=data).status_code == 302
    assert client.post("/kb/categories", data={**data, "name": "Again"}).status_code == 409
    bad = client.post("/kb/categories", data={"slug": "Bad Slug!", "name": "X"})
    assert bad.status_code == 400 and "hyphens" in bad.get_data(as_text=True)
    client.post("/kb/categories", data={"slug": "sharing", "name": "Sharing"})
    first, second = session.scalars(select(Category).order_by(Category.position)).all()
    assert (first.slug, second.slug) == ("data-import", "sharing")
    client.post(f"/kb/categories/{second.id}/move", data={"direction": "up"})
    client.post(f"/kb/categories/{first.id}/rename", data={"name": "Importing", "name_zh": "导入"})
    session.expire_all()
    ordered = session.scalars(select(Category).order_by(Category.position)).all()
    assert [(c.slug, c.name, c.name_zh) for c in ordered] == [
        ("sharing", "Sharing", ""),
        ("data-import", "Importing", "导入"),
    ]


def test_settings_are_staff_only_and_checked(client, session, writer, customer):
    login(client, writer)
    bad = client.post("/kb/settings", data={"auto_propose": "y", "min_helpful": "0"})
    assert bad.status_code == 422 and "Enter a number from 1 to 1000." in bad.get_data(as_text=True)
    assert (
        client.post("/kb/settings", data={"auto_propose": "y", "min_helpful": "5"}).status_code
        == 302
    )
    assert service.kb_settings(session) == service.KbSettings(auto_propose=True, min_helpful=5)
    login(client, customer)
    assert client.post("/kb/settings", data={"min_helpful": "1"}).status_code == 403


# --- promoting accepted answers -------------------------------------------------------------------


def test_staff_promote_an_accepted_answer_in_one_click(client, session, writer, scheduled):
    answer = accepted_answer(session)
    answer.question.title = "How do I configure SSO with Okta?"
    answer.question.tags = [TagFactory(name="sso"), TagFactory(name="okta")]
    answer.author.display_name = "Ann *Answerer*"
    session.flush()
    login(client, writer)
    response = client.post(f"/kb/promote/{answer.id}")
    article = session.scalar(select(Article))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/kb/articles/{article.id}")
    assert article.title == "How do I configure SSO with Okta?"
    assert article.source_answer_id == answer.id and article.language == "en"
    assert article.tags == "okta sso" and article.published
    assert answer.body_source in article.body_source
    assert "Originally answered by Ann \\*Answerer\\*" in article.body_source
    assert f'href="/questions/{answer.question_id}#answer-{answer.id}"' in article.body_html
    assert [a.data["answer_id"] for a in verbs(session, "article.promoted")] == [answer.id]
    assert scheduled == [("article", article.id)]

    again = client.post(f"/kb/promote/{answer.id}", follow_redirects=True)
    assert "This answer is already an article." in again.get_data(as_text=True)
    assert count(session, Article) == 1


def test_chinese_answers_become_chinese_articles(app_ctx, session, writer):
    answer = accepted_answer(
        session, body_source="在**设置 › 权限**中为角色分配 Dashboard 的查看权限即可。"
    )
    answer.question.title = "如何给只读用户分配权限？"
    promotion = service.promote_answer(session, writer, answer.id)
    assert promotion.created and promotion.article.language == "zh_CN"
    assert "最初由" in promotion.article.body_source


@pytest.mark.parametrize(
    "spoil",
    [
        lambda a: setattr(a.question, "accepted_answer_id", None),
        lambda a: setattr(a, "published", False),
        lambda a: setattr(a.question, "published", False),
        lambda a: setattr(a.question, "is_private", True),
    ],
    ids=["not-accepted", "answer-unpublished", "question-unpublished", "private-question"],
)
def test_promoting_an_answer_that_does_not_qualify_is_refused(client, session, writer, spoil):
    answer = accepted_answer(session)
    spoil(answer)
    session.flush()
    login(client, writer)
    response = client.post(f"/kb/promote/{answer.id}")
    assert response.status_code == 400
    assert "answer" in response.get_data(as_text=True).lower()
    assert count(session, Article) == 0 and verbs(session, "article.promoted") == []


def test_only_staff_promote_and_unknown_answers_are_404(client, session, customer, writer):
    answer = accepted_answer(session)
    login(client, answer.question.author)
    assert client.post(f"/kb/promote/{answer.id}").status_code == 403
    login(client, writer)
    assert client.post("/kb/promote/999999").status_code == 404
    assert count(session, Article) == 0


def render_button(app, user, question, answer, **extra):
    with app.test_request_context():
        if user is not None:
            login_user(user)
        return render_template_string(
            '{% include "kb/_promote_button.html" ignore missing %}',
            question=question,
            answer=answer,
            **extra,
        )


def test_promote_button_is_for_staff_on_the_accepted_answer(app, session, writer, customer):
    answer = accepted_answer(session)
    other = AnswerFactory(question=answer.question)
    assert f'action="/kb/promote/{answer.id}"' in render_button(
        app, writer, answer.question, answer
    )
    assert "kb/promote" not in render_button(app, writer, answer.question, other)
    assert "kb/promote" not in render_button(app, customer, answer.question, answer)
    assert "kb/promote" not in render_button(app, None, answer.question, answer)
    with app.app_context():
        article = service.promote_answer(session, writer, answer.id).article
    ids = service.article_ids_for_answers(session, [answer.id, other.id])
    assert ids == {answer.id: article.id}
    linked = render_button(app, writer, answer.question, answer, kb_article_ids=ids)
    assert f'href="/kb/articles/{article.id}"' in linked and "kb/promote" not in linked


# --- KB candidates through the moderation queue --------------------------------------------------


def enable_candidates(session, writer, min_helpful=3):
    service.save_kb_settings(session, writer, True, min_helpful)


def test_a_helpful_accepted_answer_waits_in_the_queue_and_approval_makes_the_article(
    app, client, session, writer, moderator
):
    with app.app_context():
        enable_candidates(session, writer)
        answer = accepted_answer(session, helpful_count=2)
        answer_marked_helpful.send(answer, session=session, actor=writer)
        assert count(session, Proposal) == 0  # two marks: not yet
        answer.helpful_count = 3
        answer_marked_helpful.send(answer, session=session, actor=writer)  # staff triggered it
        answer_accepted.send(answer, session=session, actor=writer)  # a second signal: no copy
    proposal = session.scalar(select(Proposal))
    item = session.scalar(select(ModerationItem).where(ModerationItem.kind == "kb_candidate"))
    assert proposal.answer_id == answer.id and count(session, Proposal) == 1
    assert item.state == "pending" and item.needs_review and item.held_reasons == ["kb_candidate"]
    assert item.object_id == proposal.id and item.author_id is None
    assert [a.data for a in verbs(session, "kb.candidate_proposed")] == [{"answer_id": answer.id}]
    assert count(session, Article) == 0

    login(client, moderator)
    queue = client.get("/moderation/queue").get_data(as_text=True)
    assert answer.question.title in queue
    assert client.post(f"/moderation/items/{item.id}/approve").status_code == 302
    article = session.scalar(select(Article))
    assert article is not None and article.source_answer_id == answer.id and article.published
    session.refresh(proposal)
    assert proposal.article_id == article.id


def test_a_moderator_may_edit_a_candidate_or_reject_it(app, client, session, writer, moderator):
    with app.app_context():
        enable_candidates(session, writer, min_helpful=1)
        edited, rejected = accepted_answer(session), accepted_answer(session)
        for answer in (edited, rejected):
            answer.helpful_count = 1
            answer_marked_helpful.send(answer, session=session, actor=None)
    items = {
        i.object_id: i.id
        for i in session.scalars(
            select(ModerationItem).where(ModerationItem.kind == "kb_candidate")
        )
    }
    proposals = {p.answer_id: p.id for p in session.scalars(select(Proposal))}
    login(client, moderator)
    client.post(
        f"/moderation/items/{items[proposals[edited.id]]}/approve",
        data={"text": "Polished by the team."},
    )
    client.post(
        f"/moderation/items/{items[proposals[rejected.id]]}/reject",
        data={"reason": "Too specific to one customer."},
    )
    articles = session.scalars(select(Article)).all()
    assert [(a.source_answer_id, a.body_source) for a in articles] == [
        (edited.id, "Polished by the team.")
    ]


def test_no_candidates_when_switched_off_or_not_qualifying(app_ctx, session, writer):
    answer = accepted_answer(session, helpful_count=10)
    answer_marked_helpful.send(answer, session=session, actor=writer)
    assert count(session, Proposal) == 0  # off by default
    enable_candidates(session, writer)
    private = accepted_answer(session, helpful_count=10)
    private.question.is_private = True
    not_accepted = AnswerFactory(helpful_count=10)
    for candidate in (private, not_accepted):
        answer_marked_helpful.send(candidate, session=session, actor=writer)
    assert count(session, Proposal) == 0
    service.promote_answer(session, writer, answer.id)
    answer_marked_helpful.send(answer, session=session, actor=writer)
    assert count(session, Proposal) == 0  # already an article


# --- API ------------------------------------------------------------------------------------------


def bearer(session, user, scope="read"):
    _token, secret = create_api_token(session, user, "script", scope)
    session.flush()
    return {"Authorization": f"Bearer {secret}"}


def test_api_lists_and_reads_published_articles(client, session, customer):
    category = CategoryFactory(slug="sharing")
    share = ArticleFactory(title="Share", category_id=category.id)
    ArticleFactory(title="分享", language="zh_CN", category_id=category.id)
    ArticleFactory(title="Elsewhere")
    draft = ArticleFactory(title="Draft", published=False)
    headers = bearer(session, customer)
    body = client.get(
        "/api/v1/kb/articles?category=sharing&language=zh_CN", headers=headers
    ).get_json()
    assert [a["title"] for a in body["items"]] == ["分享"] and body["meta"]["total"] == 1
    body = client.get("/api/v1/kb/articles?per_page=2", headers=headers).get_json()
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    bad = client.get("/api/v1/kb/articles?language=fr&colour=red", headers=headers)
    assert bad.status_code == 422 and {"language", "colour"} <= set(
        bad.get_json()["error"]["fields"]
    )
    assert client.get("/api/v1/kb/articles?category=nope", headers=headers).status_code == 404
    assert client.get(f"/api/v1/kb/articles/{draft.id}", headers=headers).status_code == 404
    one = client.get(f"/api/v1/kb/articles/{share.id}", headers=headers).get_json()
    assert one["title"] == "Share" and one["category"]["slug"] == "sharing" and one["body_html"]


def test_api_writes_need_staff_and_a_write_token(client, session, writer, customer, scheduled):
    payload = {"title": "Import CSV", "body": "Use **Import**.", "language": "en", "tags": ["csv"]}
    assert (
        client.post(
            "/api/v1/kb/articles", json=payload, headers=bearer(session, writer)
        ).status_code
        == 403
    )
    customer_write = bearer(session, customer, "write")
    assert (
        client.post("/api/v1/kb/articles", json=payload, headers=customer_write).status_code == 403
    )
    headers = bearer(session, writer, "write")
    bad = client.post("/api/v1/kb/articles", json={**payload, "language": "de"}, headers=headers)
    assert bad.status_code == 422 and "language" in bad.get_json()["error"]["fields"]
    bad_tags = client.post(
        "/api/v1/kb/articles", json={**payload, "tags": ["a b"]}, headers=headers
    )
    assert bad_tags.status_code == 400 and "tags" in bad_tags.get_json()["error"]["fields"]
    created = client.post("/api/v1/kb/articles", json=payload, headers=headers)
    assert created.status_code == 201
    article_id = created.get_json()["id"]
    patched = client.patch(
        f"/api/v1/kb/articles/{article_id}", json={"title": "Import CSV files"}, headers=headers
    )
    assert patched.status_code == 200
    assert patched.get_json()["version"] == 2 and patched.get_json()["tags"] == ["csv"]
    missing = client.patch("/api/v1/kb/articles/999999", json={"title": "x"}, headers=headers)
    assert missing.status_code == 404
    assert count(session, ArticleVersion) == 2


def test_api_feedback_changes_rather_than_duplicates(client, session, customer):
    article = ArticleFactory()
    headers = bearer(session, customer, "write")
    url = f"/api/v1/kb/articles/{article.id}/feedback"
    assert client.post(url, json={"helpful": True}, headers=headers).get_json()["helpful_yes"] == 1
    body = client.post(
        url, json={"helpful": False, "comment": "Outdated"}, headers=headers
    ).get_json()
    assert (body["helpful_yes"], body["helpful_no"], body["comment"]) == (0, 1, "Outdated")
    assert client.post(url, json={"helpful": "maybe"}, headers=headers).status_code == 422
    assert (
        client.post(url, json={"helpful": True}, headers=bearer(session, customer)).status_code
        == 403
    )
    assert count(session, ArticleFeedback) == 1


def test_openapi_lists_the_kb_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/kb/articles"])
    assert {"get", "patch"} <= set(paths["/kb/articles/{article_id}"])
    assert "post" in paths["/kb/articles/{article_id}/feedback"]


# --- search source ---------------------------------------------------------------------------


def test_search_source_indexes_only_published_articles(app_ctx, session):
    public = ArticleFactory(
        title="Report templates", body_source="Use **templates**.", tags="reports"
    )
    draft = ArticleFactory(published=False)
    documents = kb_search.load(session, [public.id, draft.id, 999_999])
    assert [
        (d.object_id, d.title, d.body, d.url, d.tags, d.private_to_org_id) for d in documents
    ] == [
        (
            public.id,
            "Report templates",
            "Use templates.",
            f"/kb/articles/{public.id}",
            ("reports",),
            None,
        )
    ]
    assert [row[0] for row in kb_search.catalog(session)] == [public.id]
    from portal.search.registry import get_source

    assert get_source("article").load is kb_search.load


# --- demo data ---------------------------------------------------------------------------------


def test_demo_data_loads_twice_without_duplicates(app_ctx, session):
    from portal.kb.demo import load_demo

    vendor = OrganizationFactory(kind="vendor", slug="vendor-demo")
    users = {
        "admin@vendor.example": staff(Role.VENDOR_ADMIN, organization=vendor),
        "alice@acme.example": UserFactory(),
        "bob@acme.example": UserFactory(),
    }
    load_demo(session, users)
    first = (count(session, Category), count(session, Article), count(session, ArticleFeedback))
    load_demo(session, users)
    assert (
        count(session, Category),
        count(session, Article),
        count(session, ArticleFeedback),
    ) == first
    assert first[0] >= 3 and first[1] >= 12 and first[2] >= 1
    languages = set(session.scalars(select(Article.language)))
    assert languages == {"en", "zh_CN"}


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_every_staff_page_renders_in_both_languages(client, session, writer, locale):
    writer.locale = locale
    category = CategoryFactory(name="Security", name_zh="安全")
    article = ArticleFactory(category_id=category.id, tags="sso", helpful_yes=2)
    session.add(ArticleVersion(article_id=article.id, number=1, title=article.title))
    session.flush()
    login(client, writer)
    for url in (
        "/kb/",
        f"/kb/categories/{category.slug}",
        f"/kb/articles/{article.id}",
        f"/kb/articles/{article.id}/edit",
        f"/kb/articles/{article.id}/versions?a=1&b=1",
        "/kb/articles/new",
        "/kb/categories",
        "/kb/settings",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        if "versions" not in url and "settings" not in url:  # the pages naming the category
            name = "安全" if locale == "zh_CN" else "Security"
            assert name in response.get_data(as_text=True), url
