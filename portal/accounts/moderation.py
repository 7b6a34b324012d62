"""Profile "about" text as a moderatable kind, registered at app start."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from moderation.registry import ModeratableKind, register_kind
from portal.accounts.models import UserProfile
from portal.accounts.service import ABOUT_KIND as KIND
from portal.core.html import render_markdown, to_plain_text
from portal.core.urls import external_url

__all__ = ["KIND", "register"]


def _set_visible(visible: bool):  # noqa: ANN202
    def hook(_session: Session, profile: UserProfile) -> None:
        profile.about_visible = visible

    return hook


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
                f"{profile.user.display_name}: {to_plain_text(profile.about_source[:1200])}"
            ),
            url=_url,
            on_publish=_set_visible(True),
            on_reject=_set_visible(False),
            on_hide=_set_visible(False),
            on_restore=_set_visible(True),
            on_remove=_set_visible(False),
            apply_edit=_apply_edit,
        )
    )
