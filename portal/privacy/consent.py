"""Consent a person gives or withdraws for NPS surveys and marketing email (GDPR art. 7,
PIPL art. 14): every choice is a new row, so the history shows who agreed to what and when."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from portal.core import consent as core_consent
from portal.core.errors import DomainError, PermissionDenied

SOURCES = ("profile", "survey", "sign_up", "admin")


def _purpose(purpose: Any) -> str:
    try:
        if str(purpose) in core_consent.PURPOSES:
            return str(purpose)
        raise ValueError(purpose)
    except ValueError:
        raise DomainError(str(_l("Unknown consent purpose.")), field="purpose") from None


def record(
    session: Session, user: Any, purpose: str, granted: bool, source: str = "profile"
) -> bool:
    """Store ``user``'s choice when it differs from their latest one; True when a row was
    added."""
    if user is None or not getattr(user, "id", None):
        raise PermissionDenied(str(_l("Sign in to record consent.")))
    purpose = _purpose(purpose)
    if source not in SOURCES:
        raise DomainError(str(_l("Unknown consent source.")), field="source")
    return core_consent.choose(session, user.id, purpose, bool(granted), source)


def current(session: Session, user: Any, purpose: str) -> bool | None:
    """The latest choice ``user`` made for ``purpose``; None when they never made one."""
    return core_consent.latest(session, user.id, _purpose(purpose))


def effective(session: Session, user: Any, purpose: str) -> bool:
    """What applies now: the latest choice, else the default (NPS on, marketing off)."""
    return core_consent.effective(session, user.id, _purpose(purpose))
