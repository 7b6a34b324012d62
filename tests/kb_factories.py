"""Factories for the knowledge base and the Q&A rows it promotes (written with the models
directly: the Q&A services are another feature's)."""

from __future__ import annotations

import factory
from sqlalchemy.orm import Session

from portal.core.html import render_markdown
from portal.kb.models import Article, Category
from portal.qa.models import Answer, Question, Tag
from tests.factories import OrganizationFactory, UserFactory


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


def bind(session: Session) -> None:
    for model_factory in (
        CategoryFactory,
        ArticleFactory,
        TagFactory,
        QuestionFactory,
        AnswerFactory,
    ):
        model_factory._meta.sqlalchemy_session = session


class CategoryFactory(_Base):
    class Meta:
        model = Category

    slug = factory.Sequence(lambda n: f"category-{n}")
    name = factory.Sequence(lambda n: f"Category {n}")
    name_zh = factory.Sequence(lambda n: f"分类 {n}")
    position = factory.Sequence(lambda n: n)


class ArticleFactory(_Base):
    class Meta:
        model = Article

    title = factory.Sequence(lambda n: f"How to do thing {n}")
    body_source = "Open **Settings** and follow the steps."
    body_html = factory.LazyAttribute(lambda a: render_markdown(a.body_source))
    language = "en"
    tags = ""
    published = True
    version = 1
    helpful_yes = 0
    helpful_no = 0


class TagFactory(_Base):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"tag{n}")


class QuestionFactory(_Base):
    class Meta:
        model = Question

    organization = factory.SubFactory(OrganizationFactory)
    author = factory.SubFactory(UserFactory, organization=factory.SelfAttribute("..organization"))
    title = factory.Sequence(lambda n: f"How do I configure SSO {n}?")
    body_source = "We use Okta. What do we enter?"
    body_html = factory.LazyAttribute(lambda q: render_markdown(q.body_source))
    published = True
    is_private = False


class AnswerFactory(_Base):
    class Meta:
        model = Answer

    question = factory.SubFactory(QuestionFactory)
    organization = factory.SubFactory(OrganizationFactory)
    author = factory.SubFactory(UserFactory, organization=factory.SelfAttribute("..organization"))
    body_source = "Enter the **metadata URL** under Settings › SSO."
    body_html = factory.LazyAttribute(lambda a: render_markdown(a.body_source))
    published = True
    helpful_count = 0


def accepted_answer(session: Session, **kwargs: object) -> Answer:
    """A published answer that is its (public, published) question's accepted answer."""
    answer = AnswerFactory(**kwargs)
    answer.question.accepted_answer_id = answer.id
    session.flush()
    return answer
