"""Profile "about" text as a moderatable kind, registered at app start."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from moderation.registry import SUMMARY_CHARS, ModeratableKind, register_kind, visibility_hooks
from portal.accounts.models import UserProfile
from portal.accounts.service import ABOUT_KIND as KIND
from portal.accounts.service import checked_about
from portal.core.html import html_to_plain_text, render_markdown
from portal.core.urls import external_url

__all__ = ["KIND", "register"]


def _set_visible(_session: Session, profile: UserProfile, visible: bool) -> None:
    profile.about_visible = visible


def _apply_edit(_session: Session, profile: UserProfile, text: str) -> None:
    profile.about_source = text
    profile.about_html = render_markdown(text, allow_images=False)


def _url(profile: Any) -> str | None:
    return external_url("accounts.public_profile", user_id=profile.user_id)


def register() -> None:
    register_kind(
        ModeratableKind(
            name=KIND,
            label=_l("profile text"),
            load=lambda session, object_id: session.get(UserProfile, object_id),
            render=lambda profile: profile.about_html,
            summarize=lambda profile: (
                f"{profile.user.display_name}: {html_to_plain_text(profile.about_html, SUMMARY_CHARS)}"
            ),
            url=_url,
            **visibility_hooks(_set_visible),
            apply_edit=_apply_edit,
            validate_edit=lambda _profile, text: checked_about(text),
        )
    )
