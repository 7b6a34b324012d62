"""Which accounts a staff member may see in CS pages and the CS API.

Roles are decided in ``portal.core.permissions`` (``VIEW_CS`` / ``MANAGE_CS`` /
``CONFIGURE_CS``); here only the *book*: with the ``own_book_only`` setting on, a CSM sees
only the accounts whose ``csm_id`` is theirs (vendor admins and product managers still see
all). An account outside the book answers *not found*, like any object one may not know of.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from cs_metrics.models import AccountProfile
from cs_metrics.settings import get_setting
from portal.core.errors import NotFound, PermissionDenied
from portal.core.identity import Organization, OrgKind, Role, User
from portal.core.permissions import Action, can


def require_cs(user: User | None, action: Action = Action.VIEW_CS) -> User:
    """The user, if they may ``action`` (VIEW_CS by default); else PermissionDenied."""
    if not can(user, action):
        raise PermissionDenied(str(_l("Only customer success staff can see this.")))
    assert user is not None
    return user


def book_owner(session: Session, user: User) -> int | None:
    """The CSM id the user's book is limited to, or None when they see every account."""
    if user.has_role(Role.VENDOR_ADMIN) or not user.has_role(Role.CSM):
        return None
    return user.id if get_setting(session, "own_book_only") else None


def book_filter(session: Session, user: User) -> ColumnElement[bool]:
    """A WHERE clause on ``Organization.id`` limiting a query to the user's book.

    Use it in every query that lists accounts: ``.where(book_filter(session, user))``."""
    owner = book_owner(session, user)
    if owner is None:
        return true()
    return Organization.id.in_(
        select(AccountProfile.organization_id).where(AccountProfile.csm_id == owner)
    )


def require_account(
    session: Session, user: User | None, org_id: int, action: Action = Action.VIEW_CS
) -> Organization:
    """The customer organization ``org_id`` if ``user`` may ``action`` it; else NotFound
    (no such customer, or outside the user's book) or PermissionDenied (role)."""
    staff = require_cs(user, action)
    org = session.get(Organization, org_id)
    if org is None or org.kind != OrgKind.CUSTOMER:
        raise NotFound(str(_l("No such account.")))
    owner = book_owner(session, staff)
    if owner is not None:
        profile = session.get(AccountProfile, org_id)
        if profile is None or profile.csm_id != owner:
            raise NotFound(str(_l("No such account.")))
    return org


def in_book(session: Session, user: User, profile: Any) -> bool:
    """Whether an account (its profile, or None) is in the user's book."""
    owner = book_owner(session, user)
    return owner is None or (profile is not None and profile.csm_id == owner)
