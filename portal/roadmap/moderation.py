"""Ideas and idea comments as moderatable kinds, registered at app start.

Moderation decides; these hooks keep ``published`` in step, recount an idea's comments and
tell the search index.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from markupsafe import escape
from sqlalchemy.orm import Session

from moderation.registry import SUMMARY_CHARS, ModeratableKind, register_kind, visibility_hooks
from moderation.service import first_publication
from portal.core.html import html_to_plain_text, render_markdown
from portal.core.urls import external_url
from portal.roadmap import service
from portal.roadmap.models import Idea, IdeaComment
from portal.search.index import schedule


def _idea_visible(session: Session, idea: Idea, visible: bool) -> None:
    idea.published = visible
    session.flush()
    if visible:
        service.refresh_trending(session, [idea.id])
    schedule(session, service.IDEA_KIND, idea.id)


def _comment_visible(session: Session, note: IdeaComment, visible: bool) -> None:
    note.published = visible
    session.flush()
    service.refresh_comment_count(session, [note.idea_id])
    service.refresh_trending(session, [note.idea_id])


def _comment_published(session: Session, note: IdeaComment) -> None:
    """People hear of a comment once, when it is first published."""
    _comment_visible(session, note, True)
    if first_publication(session, service.COMMENT_KIND, note.id):
        service.notify_commented(session, note)


def _edit_idea(_session: Session, idea: Idea, text: str) -> None:
    """Moderation edits the submitted "title\\n\\ndescription" text: split it back."""
    title, _sep, body = text.partition("\n\n")
    idea.title = " ".join(title.split())[:200] or idea.title
    idea.description_source = body
    idea.description_html = service.render_description(body)


def _check_idea(_idea: Idea, text: str) -> str:
    """A moderator's edit of "title\n\ndescription", checked as the author's idea was."""
    title, _sep, body = text.partition("\n\n")
    return "{}\n\n{}".format(*service.checked_idea(title, body))


def _edit_comment(_session: Session, note: IdeaComment, text: str) -> None:
    note.body_source = text
    note.body_html = render_markdown(text)


def _idea_html(idea: Idea) -> str:
    return f"<h2>{escape(idea.title)}</h2>{idea.description_html}"


def _always(_obj: Any, _user: Any) -> bool:
    return True  # ideas are public


def register() -> None:
    register_kind(
        ModeratableKind(
            name=service.IDEA_KIND,
            label=_l("idea"),
            load=lambda session, object_id: session.get(Idea, object_id),
            render=_idea_html,
            summarize=lambda idea: (
                f"{idea.title}: {html_to_plain_text(idea.description_html, SUMMARY_CHARS)}"
            ),
            url=lambda idea: external_url("roadmap.idea", idea_id=idea.id),
            visible_to=_always,
            **visibility_hooks(_idea_visible),
            apply_edit=_edit_idea,
            validate_edit=_check_idea,
        )
    )
    register_kind(
        ModeratableKind(
            name=service.COMMENT_KIND,
            label=_l("idea comment"),
            load=lambda session, object_id: session.get(IdeaComment, object_id),
            render=lambda note: note.body_html,
            summarize=lambda note: html_to_plain_text(note.body_html, SUMMARY_CHARS),
            url=lambda note: external_url("roadmap.idea", idea_id=note.idea_id),
            visible_to=_always,
            **{**visibility_hooks(_comment_visible), "on_publish": _comment_published},
            apply_edit=_edit_comment,
            validate_edit=lambda _note, text: service.checked_comment(text),
        )
    )
