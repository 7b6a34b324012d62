"""The one place that decides who may do what.

Views ask through :func:`require` / the :func:`permission_required` decorator, services
through :func:`can` or :func:`authorize`; nothing else inspects roles. Objects a user may not
even know about answer *not found*, so ids of other organizations reveal nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app
from flask_login import current_user

from portal.core.errors import NotFound, PermissionDenied
from portal.core.identity import Organization, Role, User


class Action(enum.StrEnum):
    VIEW_ORG = "org.view"
    MANAGE_MEMBERS = "org.manage_members"
    VIEW_STAFF_AREA = "staff.view"
    MODERATE = "moderation.decide"  # the review queue, flags, watched words, trust locks
    CONFIGURE_MODERATION = "moderation.configure"  # rule settings and admin regexes
    # Content: obj has ``is_private`` and ``organization_id`` (view) or ``author_id`` (edit).
    VIEW_CONTENT = "content.view"
    EDIT_CONTENT = "content.edit"
    ACCEPT_ANSWER = "qa.accept"  # obj: the question
    CLOSE_QUESTION = "qa.close"
    WRITE_KB = "kb.write"
    VIEW_SEARCH_INSIGHTS = "search.insights"
    # Customer success: CSMs, product managers (read only) and vendor admins read dashboards;
    # CSMs and vendor admins change CS data; vendor admins configure models, rules, targets.
    VIEW_CS = "cs.view"
    MANAGE_CS = "cs.manage"
    CONFIGURE_CS = "cs.configure"


def _is_vendor_admin(user: User) -> bool:
    return user.organization.is_vendor and user.has_role(Role.VENDOR_ADMIN)


def _sees_org(user: User, org: Organization) -> bool:
    return user.organization_id == org.id or user.is_staff


def _is_moderator(user: User) -> bool:
    return user.is_staff and user.has_role(Role.MODERATOR, Role.VENDOR_ADMIN)


def _sees_content(user: User | None, obj: Any) -> bool:
    """Public content is for everyone, signed in or not; private content for its organization
    and vendor staff only."""
    if not getattr(obj, "is_private", False):
        return True
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.organization_id == obj.organization_id or user.is_staff


def _resolved(user: Any) -> Any:
    """The user behind flask-login's ``current_user`` proxy: every attribute read through the
    proxy looks the user up again, and a page asks ``can`` a dozen times."""
    get = getattr(user, "_get_current_object", None)
    return get() if get is not None else user


def can(user: User | None, action: Action, obj: Any = None) -> bool:
    user = _resolved(user)
    if action == Action.VIEW_CONTENT:
        return _sees_content(user, obj)
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    match action:
        case Action.VIEW_ORG:
            return _sees_org(user, obj)
        case Action.MANAGE_MEMBERS:
            own_admin = user.organization_id == obj.id and user.has_role(Role.ORG_ADMIN)
            return own_admin or _is_vendor_admin(user)
        case Action.VIEW_STAFF_AREA:
            return user.is_staff
        case Action.MODERATE:
            return _is_moderator(user)
        case Action.CONFIGURE_MODERATION:
            return _is_vendor_admin(user)
        case Action.EDIT_CONTENT:
            return obj.author_id == user.id or _is_moderator(user)
        case Action.ACCEPT_ANSWER:
            return obj.author_id == user.id or _is_moderator(user)
        case Action.CLOSE_QUESTION:
            return _is_moderator(user) or user.trust_level >= 4
        case Action.WRITE_KB | Action.VIEW_SEARCH_INSIGHTS:
            return user.is_staff
        case Action.VIEW_CS:
            return user.is_staff and user.has_role(
                Role.CSM, Role.PRODUCT_MANAGER, Role.VENDOR_ADMIN
            )
        case Action.MANAGE_CS:
            return user.is_staff and user.has_role(Role.CSM, Role.VENDOR_ADMIN)
        case Action.CONFIGURE_CS:
            return _is_vendor_admin(user)
    return False


def visible(user: User | None, action: Action, obj: Any) -> bool:
    """Whether ``user`` may know ``obj`` exists at all (else the answer is 404, not 403)."""
    user = _resolved(user)
    if hasattr(obj, "is_private"):
        return _sees_content(user, obj)
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if isinstance(obj, Organization):
        return _sees_org(user, obj)
    return True


def authorize(user: User | None, action: Action, obj: Any = None) -> None:
    """Raise NotFound for what the user may not see, PermissionDenied for what they may not do."""
    if obj is not None and not visible(user, action, obj):
        raise NotFound("Not found.")
    if not can(user, action, obj):
        raise PermissionDenied("You do not have permission to do this.")


F = TypeVar("F", bound=Callable[..., Any])


def permission_required(action: Action) -> Callable[[F], F]:
    """Guard a view that acts on no particular object (object views call ``authorize``)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not can(current_user, action):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
