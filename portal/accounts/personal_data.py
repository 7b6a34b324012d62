"""What accounts keep about a person beyond the user row: profile text, API tokens, the
invitations they sent and the email topics they turned off (the user row itself is exported
and erased by ``portal.privacy``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portal.accounts.models import ApiToken, Invitation, UserProfile
from portal.core import mail, personal_data
from portal.core.identity import User


def export(session: Session, user: User) -> dict[str, Any]:
    profile = session.get(UserProfile, user.id)
    tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id))
    invitations = session.scalars(
        select(Invitation).where(Invitation.invited_by_id == user.id).order_by(Invitation.id)
    )
    return {
        "about": profile.about_source if profile is not None else "",
        "api_tokens": personal_data.rows(
            tokens, "name", "scope", "created_at", "last_used_at", "revoked_at"
        ),
        "invitations_sent": personal_data.rows(
            invitations, "email", "role", "created_at", "accepted_at", "revoked_at"
        ),
        "email_topics_turned_off": sorted(mail.topics_off(session, user.id)),
    }


def erase(session: Session, user: User, mode: str) -> None:
    """Profile text, every token and the email choices go, whatever the mode: they are
    personal, not content."""
    session.execute(delete(UserProfile).where(UserProfile.user_id == user.id))
    session.execute(delete(mail.MailOptOut).where(mail.MailOptOut.user_id == user.id))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.execute(
        delete(Invitation).where(Invitation.email == user.email, Invitation.accepted_at.is_(None))
    )


def register() -> None:
    personal_data.register("accounts", export, erase)
