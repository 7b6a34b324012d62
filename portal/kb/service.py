"""Knowledge-base operations: categories, articles with versions, feedback, promotion of
accepted answers and automatic KB candidates. Services flush, never commit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from moderation.models import ModerationSetting
from portal.core.activity import record_activity, register_verbs
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, NotFound, PermissionDenied
from portal.core.html import MAX_MARKDOWN_CHARS, render_markdown
from portal.core.identity import User
from portal.core.permissions import Action, can
from portal.core.text import clean_text
from portal.kb.models import Article, ArticleFeedback, ArticleVersion, Category, Proposal
from portal.qa.models import Answer, Question
from portal.search import index as search_index

register_verbs(
    "article.published",
    "article.updated",
    "article.helpful",
    "article.promoted",
    "kb.candidate_proposed",
)

LANGUAGES = ("en", "zh_CN")
SEARCH_KIND = "article"
CANDIDATE_KIND = "kb_candidate"
SETTINGS_KEY = "kb"
MAX_TITLE = 200
MAX_COMMENT = 2000
MAX_TAGS = 10
MAX_TAG_LENGTH = 40
_TAG = re.compile(r"^[\w][\w.+#-]*$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Chinese characters, kana and hangul: what makes a text "Chinese" for language detection.
_CJK = re.compile("[\u2e80-\u2fff\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")

ATTRIBUTION = {
    "en": "*Originally answered by {name} in [the community]({url}).*",
    "zh_CN": "*最初由 {name} 在[社区问答]({url})中回答。*",
}


# --- permissions ---------------------------------------------------------------------------


def require_writer(user: User | None) -> None:
    """Only vendor staff write the knowledge base; customers contribute through Q&A."""
    if not can(user, Action.WRITE_KB):
        raise PermissionDenied(str(_l("Only staff can edit the knowledge base.")))


def is_writer(user: User | None) -> bool:
    return can(user, Action.WRITE_KB)


# --- categories ------------------------------------------------------------------------------


def categories(session: Session) -> list[Category]:
    return list(session.scalars(select(Category).order_by(Category.position, Category.id)))


def category_name(category: Category | None, locale: str) -> str:
    """The category's name in the reader's language (the English one when no Chinese is set)."""
    if category is None:
        return ""
    if locale == "zh_CN" and category.name_zh:
        return category.name_zh
    return category.name


def _category_fields(slug: str, name: str, name_zh: str) -> tuple[str, str, str]:
    slug = clean_text(slug or "").strip().lower()
    name = clean_text(name or "").strip()
    name_zh = clean_text(name_zh or "").strip()
    if not slug or len(slug) > 64 or not _SLUG.match(slug):
        raise DomainError(
            str(_l("Use lower-case letters, digits and hyphens (at most 64).")), field="slug"
        )
    if not name or len(name) > 120:
        raise DomainError(str(_l("Enter a name of at most 120 characters.")), field="name")
    if len(name_zh) > 120:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=120)), field="name_zh")
    return slug, name, name_zh


def create_category(
    session: Session, actor: User, slug: str, name: str, name_zh: str = ""
) -> Category:
    require_writer(actor)
    slug, name, name_zh = _category_fields(slug, name, name_zh)
    if session.scalar(select(Category.id).where(Category.slug == slug)):
        raise Conflict(str(_l("A category with this address already exists.")), field="slug")
    position = (session.scalar(select(func.max(Category.position))) or 0) + 1
    category = Category(slug=slug, name=name, name_zh=name_zh, position=position)
    session.add(category)
    session.flush()
    return category


def rename_category(
    session: Session, actor: User, category_id: int, name: str, name_zh: str = ""
) -> Category:
    require_writer(actor)
    category = session.get(Category, category_id)
    if category is None:
        raise NotFound(str(_l("Not found.")))
    _slug, category.name, category.name_zh = _category_fields(category.slug, name, name_zh)
    session.flush()
    return category


def move_category(session: Session, actor: User, category_id: int, direction: int) -> None:
    """Swap a category with its neighbour above (-1) or below (+1); positions are renumbered
    so that gaps or ties left by earlier data never make a move do nothing."""
    require_writer(actor)
    ordered = categories(session)
    index = next((i for i, c in enumerate(ordered) if c.id == category_id), None)
    if index is None:
        raise NotFound(str(_l("Not found.")))
    if direction not in (-1, 1):
        raise DomainError(str(_l("Choose up or down.")), field="direction")
    other = index + direction
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, category in enumerate(ordered, start=1):
        category.position = position
    session.flush()


def category_by_slug(session: Session, slug: str) -> Category:
    category = session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise NotFound(str(_l("Not found.")))
    return category


# --- articles: reading -----------------------------------------------------------------------


def published_articles(category_id: int | None = None, language: str | None = None) -> Select[Any]:
    """Published articles, newest change first, for list pages and the API (paginate it)."""
    statement = select(Article).options(joinedload(Article.category)).where(Article.published)
    if category_id is not None:
        statement = statement.where(Article.category_id == category_id)
    if language:
        statement = statement.where(Article.language == language)
    return statement.order_by(Article.updated_at.desc(), Article.id.desc())


def check_language(language: str | None) -> str | None:
    """A language filter from a query string: one of LANGUAGES, or None for all."""
    if not language:
        return None
    if language not in LANGUAGES:
        raise DomainError(str(_l("Unknown language.")), field="language")
    return language


def get_article(session: Session, viewer: User | None, article_id: int) -> Article:
    """A published article for anyone (signed in or not); drafts only for staff."""
    article = session.scalar(
        select(Article)
        .options(joinedload(Article.category), joinedload(Article.author))
        .where(Article.id == article_id)
    )
    if article is None or (not article.published and not is_writer(viewer)):
        raise NotFound(str(_l("Not found.")))
    return article


def record_view(session: Session, reader: User | None, article: Article) -> None:
    """A signed-in reader's read counts toward trust levels (``content.viewed``)."""
    if reader is None or not getattr(reader, "is_authenticated", False) or not article.published:
        return
    record_activity(
        session, reader, reader.organization, "content.viewed", article, {"kind": SEARCH_KIND}
    )


@dataclass(frozen=True)
class CategoryCount:
    category: Category
    articles: int


def home_overview(
    session: Session, language: str | None = None, limit: int = 5
) -> tuple[list[CategoryCount], list[Article], list[Article]]:
    """Categories with their published article counts, the newest and the most helpful
    articles: three queries whatever the size of the knowledge base."""
    counted = (
        select(Article.category_id, func.count().label("n"))
        .where(Article.published, *([Article.language == language] if language else []))
        .group_by(Article.category_id)
        .subquery()
    )
    rows = session.execute(
        select(Category, func.coalesce(counted.c.n, 0))
        .outerjoin(counted, counted.c.category_id == Category.id)
        .order_by(Category.position, Category.id)
    ).all()
    newest = list(session.scalars(published_articles(language=language).limit(limit)).unique())
    helpful = list(
        session.scalars(
            select(Article)
            .options(joinedload(Article.category))
            .where(
                Article.published,
                Article.helpful_yes > 0,
                *([Article.language == language] if language else []),
            )
            .order_by(
                (Article.helpful_yes - Article.helpful_no).desc(),
                Article.helpful_yes.desc(),
                Article.id,
            )
            .limit(limit)
        ).unique()
    )
    return [CategoryCount(c, n) for c, n in rows], newest, helpful


def drafts(session: Session, viewer: User) -> list[Article]:
    if not is_writer(viewer):
        return []
    return list(
        session.scalars(
            select(Article).where(Article.published.is_(False)).order_by(Article.updated_at.desc())
        )
    )


def tag_list(article: Article) -> list[str]:
    return article.tags.split() if article.tags else []


def related_articles(session: Session, article: Article, limit: int = 5) -> list[Article]:
    """Published articles sharing the category or tags, best overlap first, in one query.

    Scored in SQL: two points for the same category, one per shared tag (tags are stored
    space-separated, so " tag " is looked for in " tags "). Done here rather than through the
    search index so it works, and is tested, without the index being built.
    """
    tags = tag_list(article)
    padded = " " + Article.tags + " "
    score = (
        case((Article.category_id == article.category_id, 2), else_=0) if article.category_id else 0
    )
    for tag in tags:
        escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        score = score + case((padded.like(f"% {escaped} %", escape="\\"), 1), else_=0)
    if isinstance(score, int):
        return []
    return list(
        session.scalars(
            select(Article)
            .where(Article.published, Article.id != article.id, score > 0)
            .order_by(score.desc(), Article.helpful_yes.desc(), Article.id)
            .limit(limit)
        )
    )


def versions(
    session: Session, viewer: User, article_id: int
) -> tuple[Article, list[ArticleVersion]]:
    require_writer(viewer)
    article = get_article(session, viewer, article_id)
    rows = list(
        session.scalars(
            select(ArticleVersion)
            .options(joinedload(ArticleVersion.editor))
            .where(ArticleVersion.article_id == article.id)
            .order_by(ArticleVersion.number.desc())
        )
    )
    return article, rows


# --- articles: writing -----------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleFields:
    """What a writer sends; every field already cleaned and checked by :func:`clean_fields`."""

    title: str
    body: str
    language: str
    category_id: int | None
    tags: str
    published: bool


def normalize_tags(raw: str | list[str] | None) -> str:
    """Tags as typed ("SSO, saml  Okta") -> "sso saml okta": lower-case, unique, in order."""
    if raw is None:
        return ""
    parts = raw if isinstance(raw, list) else re.split(r"[\s,，、]+", raw)
    seen: list[str] = []
    for part in parts:
        tag = clean_text(str(part)).strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH or not _TAG.match(tag):
            raise DomainError(
                str(
                    _l(
                        "Tags are single words of letters, digits and - . + # (at most %(n)d "
                        "characters each).",
                        n=MAX_TAG_LENGTH,
                    )
                ),
                field="tags",
            )
        if tag not in seen:
            seen.append(tag)
    if len(seen) > MAX_TAGS:
        raise DomainError(str(_l("Use at most %(n)d tags.", n=MAX_TAGS)), field="tags")
    joined = " ".join(seen)
    if len(joined) > 300:
        raise DomainError(str(_l("The tags are too long.")), field="tags")
    return joined


def checked_body(body: str) -> str:
    """An article's body as stored, or DomainError naming the field (a candidate's edited text
    becomes an article's body, so it is checked by the same rule)."""
    body = clean_text(body or "").strip()
    if not body:
        raise DomainError(str(_l("Write the article.")), field="body")
    if len(body) > MAX_MARKDOWN_CHARS:
        raise DomainError(
            str(_l("Use at most %(n)d characters.", n=MAX_MARKDOWN_CHARS)), field="body"
        )
    return body


def clean_fields(
    session: Session,
    *,
    title: str,
    body: str,
    language: str,
    category_id: int | None,
    tags: str | list[str] | None,
    published: bool,
) -> ArticleFields:
    title = " ".join(clean_text(title or "").split())
    if not title:
        raise DomainError(str(_l("Give the article a title.")), field="title")
    if len(title) > MAX_TITLE:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=MAX_TITLE)), field="title")
    body = checked_body(body)
    if language not in LANGUAGES:
        raise DomainError(str(_l("Choose English or Chinese.")), field="language")
    if category_id is not None and session.get(Category, category_id) is None:
        raise DomainError(str(_l("Choose an existing category.")), field="category_id")
    return ArticleFields(
        title=title,
        body=body,
        language=language,
        category_id=category_id,
        tags=normalize_tags(tags),
        published=bool(published),
    )


def _save_version(session: Session, article: Article, editor: User | None) -> None:
    session.add(
        ArticleVersion(
            article_id=article.id,
            number=article.version,
            title=article.title,
            body_source=article.body_source,
            editor_id=editor.id if editor is not None else None,
        )
    )


def _org(user: User | None) -> Any:
    return user.organization if user is not None else None


def _insert_article(
    session: Session,
    editor: User | None,
    fields: ArticleFields,
    source_answer_id: int | None = None,
) -> Article:
    now = utcnow()
    article = Article(
        title=fields.title,
        body_source=fields.body,
        body_html=render_markdown(fields.body, allow_images=True),  # written by staff
        language=fields.language,
        category_id=fields.category_id,
        tags=fields.tags,
        published=fields.published,
        author_id=editor.id if editor is not None else None,
        source_answer_id=source_answer_id,
        version=1,
        helpful_yes=0,
        helpful_no=0,
        created_at=now,
        updated_at=now,
    )
    session.add(article)
    session.flush()
    _save_version(session, article, editor)
    if article.published:
        record_activity(
            session, editor, _org(editor), "article.published", article, {"article_id": article.id}
        )
    search_index.schedule(session, SEARCH_KIND, article.id)
    session.flush()
    return article


def create_article(session: Session, actor: User, **values: Any) -> Article:
    """A new article (version 1); keyword arguments as for :func:`clean_fields`."""
    require_writer(actor)
    return _insert_article(session, actor, clean_fields(session, **values))


def update_article(session: Session, actor: User, article_id: int, **values: Any) -> Article:
    """Save a new version. Missing keyword arguments keep their current value."""
    require_writer(actor)
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound(str(_l("Not found.")))
    current = {
        "title": article.title,
        "body": article.body_source,
        "language": article.language,
        "category_id": article.category_id,
        "tags": article.tags,
        "published": article.published,
    }
    fields = clean_fields(session, **{**current, **values})
    was_published = article.published
    article.title = fields.title
    if fields.body != article.body_source:
        article.body_source = fields.body
        article.body_html = render_markdown(fields.body, allow_images=True)
    article.language = fields.language
    article.category_id = fields.category_id
    article.tags = fields.tags
    article.published = fields.published
    article.version += 1
    article.updated_at = utcnow()
    session.flush()
    _save_version(session, article, actor)
    verb = "article.published" if fields.published and not was_published else "article.updated"
    record_activity(
        session,
        actor,
        actor.organization,
        verb,
        article,
        {"article_id": article.id, "version": article.version},
    )
    search_index.schedule(session, SEARCH_KIND, article.id)
    session.flush()
    return article


def delete_article(session: Session, actor: User, article_id: int) -> None:
    require_writer(actor)
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound(str(_l("Not found.")))
    search_index.schedule(session, SEARCH_KIND, article.id)
    session.execute(
        update(Proposal).where(Proposal.article_id == article.id).values(article_id=None)
    )
    session.delete(article)
    session.flush()


# --- feedback --------------------------------------------------------------------------------


def feedback_of(session: Session, user: User | None, article_id: int) -> ArticleFeedback | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return session.scalar(
        select(ArticleFeedback).where(
            ArticleFeedback.article_id == article_id, ArticleFeedback.user_id == user.id
        )
    )


def _count(article_id: int, yes: int, no: int) -> Any:
    """The counters move in the database (``x = x + 1``), so concurrent votes never lose one."""
    return (
        update(Article)
        .where(Article.id == article_id)
        .values(helpful_yes=Article.helpful_yes + yes, helpful_no=Article.helpful_no + no)
        .execution_options(synchronize_session=False)
    )


def give_feedback(
    session: Session, user: User | None, article_id: int, helpful: bool, comment: str = ""
) -> ArticleFeedback:
    """One "was this helpful?" answer per signed-in reader; answering again changes it."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise PermissionDenied(str(_l("Sign in to say whether this helped.")))
    article = session.get(Article, article_id)
    if article is None or not article.published:
        raise NotFound(str(_l("Not found.")))
    if not isinstance(helpful, bool):
        raise DomainError(str(_l("Answer yes or no.")), field="helpful")
    comment = clean_text(comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=MAX_COMMENT)), field="comment")
    existing = feedback_of(session, user, article_id)
    changed = True
    if existing is None:
        try:
            with session.begin_nested():
                existing = ArticleFeedback(
                    article_id=article_id,
                    user_id=user.id,
                    organization_id=user.organization_id,
                    helpful=helpful,
                    comment=comment or None,
                )
                session.add(existing)
            session.execute(_count(article_id, int(helpful), int(not helpful)))
        except IntegrityError:  # the same person's other tab won the insert: change theirs
            existing = feedback_of(session, user, article_id)
            if existing is None:
                raise
            changed = _change_feedback(session, existing, helpful)
            existing.comment = comment or None
    else:
        changed = _change_feedback(session, existing, helpful)
        existing.comment = comment or None
    session.flush()
    if changed:
        record_activity(
            session,
            user,
            user.organization,
            "article.helpful",
            article,
            {"helpful": helpful, "article_id": article_id},
        )
    session.refresh(article)
    return existing


def _change_feedback(session: Session, feedback: ArticleFeedback, helpful: bool) -> bool:
    """Flip a stored answer only if it still holds the old value (one winner per change)."""
    if feedback.helpful == helpful:
        return False
    result = session.execute(
        update(ArticleFeedback)
        .where(ArticleFeedback.id == feedback.id, ArticleFeedback.helpful.is_(not helpful))
        .values(helpful=helpful)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(feedback)
        return False
    delta = 1 if helpful else -1
    session.execute(_count(feedback.article_id, delta, -delta))
    session.refresh(feedback)
    return True


# --- promotion of accepted answers --------------------------------------------------------------


def detect_language(text: str) -> str:
    """ "zh_CN" when at least a fifth of the letters are Chinese (code and product names in
    English are common in Chinese posts), else "en"."""
    letters = _LETTER.findall(text or "")
    if not letters:
        return "en"
    chinese = sum(1 for ch in letters if _CJK.match(ch))
    return "zh_CN" if chinese / len(letters) >= 0.2 else "en"


def question_url(question_id: int, answer_id: int | None = None) -> str:
    """The Q&A page of a question (the path the Q&A blueprint serves), at an answer."""
    return f"/questions/{question_id}" + (f"#answer-{answer_id}" if answer_id else "")


def _promotable_answer(session: Session, answer_id: int) -> Answer:
    """An answer that may become an article: published, accepted, on a public question."""
    answer = session.scalar(
        select(Answer)
        .options(
            joinedload(Answer.author),
            joinedload(Answer.question).selectinload(Question.tags),
        )
        .where(Answer.id == answer_id)
    )
    if answer is None:
        raise NotFound(str(_l("Not found.")))
    question = answer.question
    if question.is_private:
        raise DomainError(
            str(_l("Answers to private questions cannot become public articles.")),
            field="answer_id",
        )
    if not answer.published or not question.published:
        raise DomainError(
            str(_l("Only a published answer can become an article.")), field="answer_id"
        )
    if question.accepted_answer_id != answer.id:
        raise DomainError(
            str(_l("Only the accepted answer of a question can become an article.")),
            field="answer_id",
        )
    return answer


def _draft_from_answer(answer: Answer) -> tuple[str, str, str, str]:
    """(title, body with attribution, language, tags) for an article made from ``answer``."""
    question = answer.question
    language = detect_language(f"{question.title}\n{answer.body_source}")
    name = answer.author.display_name if answer.author is not None else "?"
    name = re.sub(r"([\\`*_{}\[\]()#+!<>|~])", r"\\\1", name)
    attribution = ATTRIBUTION[language].format(name=name, url=question_url(question.id, answer.id))
    body = f"{answer.body_source.strip()}\n\n---\n\n{attribution}"
    names = [t.name for t in question.tags][:MAX_TAGS]
    while len(" ".join(names)) > 300:
        names.pop()
    return question.title, body, language, " ".join(names)


def existing_article_for_answer(session: Session, answer_id: int) -> Article | None:
    return session.scalar(select(Article).where(Article.source_answer_id == answer_id))


def article_ids_for_answers(session: Session, answer_ids: list[int]) -> dict[int, int]:
    """{answer id: article id} for the answers already promoted: one query for a whole
    question page, so the promote button can link to the article instead."""
    if not answer_ids:
        return {}
    rows = session.execute(
        select(Article.source_answer_id, Article.id).where(Article.source_answer_id.in_(answer_ids))
    ).all()
    return {answer_id: article_id for answer_id, article_id in rows}


@dataclass(frozen=True)
class Promotion:
    article: Article
    created: bool


def _article_from_answer(
    session: Session, editor: User | None, answer: Answer, title: str, body: str
) -> Article:
    tags = _draft_from_answer(answer)[3]
    fields = clean_fields(
        session,
        title=title,
        body=body,
        language=detect_language(f"{title}\n{body}"),
        category_id=None,
        tags=tags,
        published=True,
    )
    article = _insert_article(session, editor, fields, source_answer_id=answer.id)
    record_activity(
        session,
        editor,
        _org(editor),
        "article.promoted",
        article,
        {"answer_id": answer.id, "article_id": article.id},
    )
    return article


def promote_answer(session: Session, actor: User, answer_id: int) -> Promotion:
    """Turn an accepted answer into a published article in one step (staff). Promoting the
    same answer again returns the article made the first time."""
    require_writer(actor)
    existing = existing_article_for_answer(session, answer_id)
    if existing is not None:
        return Promotion(existing, created=False)
    answer = _promotable_answer(session, answer_id)
    title, body, _language, _tags = _draft_from_answer(answer)
    try:
        with session.begin_nested():
            article = _article_from_answer(session, actor, answer, title, body)
    except IntegrityError:  # another staff member promoted it at the same moment
        existing = existing_article_for_answer(session, answer_id)
        if existing is None:
            raise
        return Promotion(existing, created=False)
    session.execute(
        update(Proposal).where(Proposal.answer_id == answer.id).values(article_id=article.id)
    )
    return Promotion(article, created=True)


# --- KB candidates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KbSettings:
    auto_propose: bool = False
    min_helpful: int = 3


def kb_settings(session: Session) -> KbSettings:
    row = session.get(ModerationSetting, SETTINGS_KEY)
    stored = dict(row.value) if row else {}
    return KbSettings(
        auto_propose=bool(stored.get("auto_propose", False)),
        min_helpful=int(stored.get("min_helpful", 3)),
    )


def save_kb_settings(
    session: Session, actor: User, auto_propose: bool, min_helpful: Any
) -> KbSettings:
    require_writer(actor)
    try:
        threshold = int(min_helpful)
    except (TypeError, ValueError):
        threshold = -1
    if not 1 <= threshold <= 1000:
        raise DomainError(str(_l("Enter a number from 1 to 1000.")), field="min_helpful")
    row = session.get(ModerationSetting, SETTINGS_KEY) or ModerationSetting(
        key=SETTINGS_KEY, value={}
    )
    row.value = {**row.value, "auto_propose": bool(auto_propose), "min_helpful": threshold}
    session.add(row)
    session.flush()
    return kb_settings(session)


def maybe_propose(session: Session, answer: Answer, actor: User | None = None) -> Proposal | None:
    """Propose ``answer`` as a KB candidate when the settings ask for it and it qualifies:
    accepted, published, on a public question, helpful to at least ``min_helpful`` people,
    and never proposed or promoted before. The proposal waits in the moderation queue."""
    settings = kb_settings(session)
    if not settings.auto_propose or answer.helpful_count < settings.min_helpful:
        return None
    try:
        answer = _promotable_answer(session, answer.id)
    except DomainError:
        return None
    if session.scalar(select(Proposal.id).where(Proposal.answer_id == answer.id)):
        return None
    if existing_article_for_answer(session, answer.id) is not None:
        return None
    title, body, _language, _tags = _draft_from_answer(answer)
    try:
        with session.begin_nested():
            proposal = Proposal(answer_id=answer.id, title=title, body_source=body)
            session.add(proposal)
            session.flush()
    except IntegrityError:  # proposed by a concurrent mark
        return None
    from portal.kb.moderation import hold_for_review

    hold_for_review(session, proposal, answer)
    record_activity(
        session,
        actor,
        _org(actor) if actor is not None else answer.organization,
        "kb.candidate_proposed",
        proposal,
        {"answer_id": answer.id},
    )
    return proposal


def publish_proposal(session: Session, proposal: Proposal) -> Article:
    """Approving a candidate in the queue: the article is made from the (possibly edited)
    proposal; if staff promoted the answer meanwhile, that article is kept."""
    existing = existing_article_for_answer(session, proposal.answer_id)
    if existing is None:
        answer = _promotable_answer(session, proposal.answer_id)
        existing = _article_from_answer(session, None, answer, proposal.title, proposal.body_source)
    proposal.article_id = existing.id
    session.flush()
    return existing


def edit_proposal(session: Session, proposal: Proposal, text: str) -> None:
    text = clean_text(text or "").strip()
    if not text:
        raise DomainError(str(_l("The edited text cannot be empty.")), field="text")
    proposal.body_source = text
    session.flush()


def feedback_comments(
    session: Session, viewer: User, article_id: int, limit: int = 50
) -> list[ArticleFeedback]:
    """Recent comments left with feedback, for staff on the article page."""
    if not is_writer(viewer):
        return []
    return list(
        session.scalars(
            select(ArticleFeedback)
            .where(ArticleFeedback.article_id == article_id, ArticleFeedback.comment.is_not(None))
            .order_by(ArticleFeedback.created_at.desc(), ArticleFeedback.id.desc())
            .limit(limit)
        )
    )
