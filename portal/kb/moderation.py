"""KB candidates as a moderatable kind: an accepted, helpful answer proposed as an article.

A candidate must always wait for a person, whoever triggered it (often staff, whom
``moderation.service.submit`` publishes at once, or a trusted customer): the rules judge what
someone wrote, and nobody wrote a proposal. So it is not run through ``submit`` but held
directly, with the hold reason ``kb_candidate`` and no author, by :func:`hold_for_review`.

Approving it in the queue creates the article (``on_publish``); rejecting leaves none, and
the unique proposal per answer keeps it from being proposed again.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from markupsafe import escape
from sqlalchemy.orm import Session

from moderation import service as moderation
from moderation.models import ModerationItem
from moderation.registry import ModeratableKind, register_kind
from portal.core.html import render_markdown
from portal.kb import service
from portal.kb.models import Proposal
from portal.qa.models import Answer

KIND = service.CANDIDATE_KIND
HOLD_REASON = "kb_candidate"


def _render(proposal: Proposal) -> str:
    """The article as it would read: its title, then the sanitized body."""
    return f"<h3>{escape(proposal.title)}</h3>\n" + render_markdown(
        proposal.body_source, allow_images=True
    )


def hold_for_review(session: Session, proposal: Proposal, answer: Answer) -> ModerationItem:
    """Put a proposal in the review queue as pending, with no author and reason ``kb_candidate``:
    a moderator always decides whether it becomes an article."""
    return moderation.hold(
        session, KIND, proposal, proposal.body_source, HOLD_REASON, answer.organization
    )


def _on_publish(session: Session, proposal: Proposal) -> None:
    service.publish_proposal(session, proposal)


def _apply_edit(session: Session, proposal: Proposal, text: str) -> None:
    service.edit_proposal(session, proposal, text)


def register() -> None:
    register_kind(
        ModeratableKind(
            name=KIND,
            label=_l("knowledge-base candidate"),
            load=lambda session, object_id: session.get(Proposal, object_id),
            render=_render,
            summarize=lambda proposal: proposal.title,
            url=lambda proposal: (
                f"/kb/articles/{proposal.article_id}" if proposal.article_id else None
            ),
            on_publish=_on_publish,
            apply_edit=_apply_edit,
            validate_edit=lambda _proposal, text: service.checked_body(text),
        )
    )
