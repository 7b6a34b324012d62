"""Questions, answers and comments as moderatable kinds, registered at app start.

Moderation decides; these hooks keep the Q&A rows in step: ``published`` mirrors the item's
state, the question's answer count and activity time follow its answers, the search index is
told, and followers hear about an answer the first time it is published.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session, object_session

from moderation.registry import SUMMARY_CHARS, ModeratableKind, register_kind, visibility_hooks
from moderation.service import first_publication
from portal.core.html import html_to_plain_text, render_markdown
from portal.core.permissions import Action, can
from portal.core.tasks import enqueue_after_commit
from portal.core.urls import external_url
from portal.qa import service
from portal.qa.models import Answer, Comment, Question
from portal.qa.tasks import tell_followers_task
from portal.search.index import schedule


def _question_visible(session: Session, question: Question, visible: bool) -> None:
    question.published = visible
    session.flush()
    service.reindex_question(session, question, with_answers=True)


def _question_published(session: Session, question: Question) -> None:
    """People following its tags hear of a question once, when it is first published."""
    _question_visible(session, question, True)
    if first_publication(session, service.QUESTION_KIND, question.id):
        enqueue_after_commit(session, tell_followers_task, service.QUESTION_KIND, question.id)


def _answer_visible(session: Session, reply: Answer, visible: bool, notify: bool = False) -> None:
    reply.published = visible
    session.flush()
    service.refresh_answer_count(session, reply.question_id, touch=visible)
    schedule(session, service.ANSWER_KIND, reply.id)
    schedule(session, service.QUESTION_KIND, reply.question_id)
    if notify and first_publication(session, service.ANSWER_KIND, reply.id):
        enqueue_after_commit(session, tell_followers_task, service.ANSWER_KIND, reply.id)


def _comment_shown(_session: Session, note: Comment, visible: bool) -> None:
    note.published = visible


def _comment_published(session: Session, note: Comment) -> None:
    """The post's author hears of a comment once, when it is first published."""
    _comment_shown(session, note, True)
    if first_publication(session, service.COMMENT_KIND, note.id):
        service.notify_commented(session, note)


def _edit_question(_session: Session, question: Question, text: str) -> None:
    """Moderation edits the submitted "title\\n\\nbody" text: split it back."""
    title, _sep, body = text.partition("\n\n")
    question.title = " ".join(title.split())[:200] or question.title
    question.body_source = body
    question.body_html = service.render_post(body)


def _check_question(_question: Question, text: str) -> str:
    """A moderator's edit of "title\n\nbody", checked as the asker's question was."""
    title, _sep, body = text.partition("\n\n")
    return "{}\n\n{}".format(*service.checked_question(title, body))


def _edit_answer(_session: Session, reply: Answer, text: str) -> None:
    reply.body_source = text
    reply.body_html = service.render_post(text)


def _edit_comment(_session: Session, note: Comment, text: str) -> None:
    note.body_source = text
    note.body_html = render_markdown(text)


def _question_html(question: Question) -> str:
    from markupsafe import escape

    return f"<h2>{escape(question.title)}</h2>{question.body_html}"


def _answer_url(reply: Answer) -> str:
    return external_url("qa.question", question_id=reply.question_id, _anchor=f"answer-{reply.id}")


def _comment_url(note: Comment) -> str | None:
    if note.question_id:
        return external_url("qa.question", question_id=note.question_id)
    return external_url("qa.answer_link", answer_id=note.answer_id)


def _comment_visible(note: Comment, user: Any) -> bool:
    session = object_session(note)
    if session is None:
        return False
    question_id = note.question_id
    if question_id is None:
        reply = session.get(Answer, note.answer_id)
        question_id = reply.question_id if reply is not None else None
    question = session.get(Question, question_id) if question_id else None
    return question is not None and can(user, Action.VIEW_CONTENT, question)


def register() -> None:
    register_kind(
        ModeratableKind(
            name=service.QUESTION_KIND,
            label=_l("question"),
            load=lambda session, object_id: session.get(Question, object_id),
            render=_question_html,
            summarize=lambda q: f"{q.title}: {html_to_plain_text(q.body_html, SUMMARY_CHARS)}",
            url=lambda q: external_url("qa.question", question_id=q.id),
            visible_to=lambda q, user: can(user, Action.VIEW_CONTENT, q),
            **{**visibility_hooks(_question_visible), "on_publish": _question_published},
            apply_edit=_edit_question,
            validate_edit=_check_question,
        )
    )
    register_kind(
        ModeratableKind(
            name=service.ANSWER_KIND,
            label=_l("answer"),
            load=lambda session, object_id: session.get(Answer, object_id),
            render=lambda reply: reply.body_html,
            summarize=lambda reply: html_to_plain_text(reply.body_html, SUMMARY_CHARS),
            url=_answer_url,
            visible_to=lambda reply, user: can(user, Action.VIEW_CONTENT, reply.question),
            **{
                **visibility_hooks(_answer_visible),
                # Followers hear of an answer once, when it is first published.
                "on_publish": lambda session, reply: _answer_visible(
                    session, reply, True, notify=True
                ),
            },
            apply_edit=_edit_answer,
            validate_edit=lambda _reply, text: service.checked_answer(text),
        )
    )
    register_kind(
        ModeratableKind(
            name=service.COMMENT_KIND,
            label=_l("comment"),
            load=lambda session, object_id: session.get(Comment, object_id),
            render=lambda note: note.body_html,
            summarize=lambda note: html_to_plain_text(note.body_html, SUMMARY_CHARS),
            url=_comment_url,
            visible_to=_comment_visible,
            **{**visibility_hooks(_comment_shown), "on_publish": _comment_published},
            apply_edit=_edit_comment,
            validate_edit=lambda _note, text: service.checked_comment(text),
        )
    )
