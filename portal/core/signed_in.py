"""The signed-in person of each request, as flask-login asks for it on every page.

Reading them is one query (the user with their organization and roles, and the count the bell
shows), and under gunicorn that round trip was a quarter of the time of a page whose body was
already kept. Each process keeps what the query read for ``USER_CACHE_SECONDS`` (default 5;
0 reads it on every request, as under TESTING) and forgets all of it when this process
commits a change to a user, a role, an organization or a notification, so a person sees
their own changes at once. A change made by another process (an administrator deactivating
the account in another worker, a notification stored by a Celery worker) shows in this one
within those seconds.

What is kept is plain column values: each request builds its own ORM objects from them and
attaches them to its session as loaded rows, so the rest of the request (relationships,
changes, commits) works exactly as on an object the query returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from portal.core.db import db
from portal.core.identity import Organization, User, UserRole
from portal.core.notifications import Notification, unread_count_column
from portal.core.pagecache import ChangeClearedCache


@dataclass(frozen=True)
class _Snapshot:
    user: dict[str, Any]
    organization: dict[str, Any]
    roles: tuple[dict[str, Any], ...]
    unread: int


_kept: ChangeClearedCache[_Snapshot] = ChangeClearedCache(
    "signed_in_user", (User, UserRole, Organization, Notification), "USER_CACHE_SECONDS"
)

# Built once: constructing the statement cost a signed-in page more than running it.
_USER_WITH_COUNTS = (
    select(User, unread_count_column(User.id))
    .options(joinedload(User.role_grants))
    .where(User.id == bindparam("user_id"))
)


def _columns(obj: Any) -> dict[str, Any]:
    return {attr.key: getattr(obj, attr.key) for attr in obj.__mapper__.column_attrs}


def _snapshot(user: User, unread: int) -> _Snapshot:
    return _Snapshot(
        _columns(user),
        _columns(user.organization),
        tuple(_columns(grant) for grant in user.role_grants),
        unread,
    )


def _identities(snapshot: _Snapshot) -> list[Any]:
    return [
        _identity(User, snapshot.user),
        _identity(Organization, snapshot.organization),
        *(_identity(UserRole, grant) for grant in snapshot.roles),
    ]


def _identity(model: type[Any], values: dict[str, Any]) -> Any:
    # what ``identity_key(model, id)`` gives, for a single-column key, at a tenth of its cost
    return (model, (values["id"],), None)


def _loaded(model: type[Any], values: dict[str, Any]) -> Any:
    """An instance holding ``values`` as the ORM's loading builds one: no constructor and no
    attribute events (the constructors were a third of attaching the kept user)."""
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


def _attach(session: Session, snapshot: _Snapshot) -> User | None:
    """The kept user as this session's loaded objects, or None when the session already holds
    one of them: the request's own (possibly changed) object wins, read through the query."""
    if any(key in session.identity_map for key in _identities(snapshot)):
        return None
    user = _loaded(User, snapshot.user)
    organization = _loaded(Organization, snapshot.organization)
    grants = [_loaded(UserRole, grant) for grant in snapshot.roles]
    # Committed values, no backrefs: ``organization.users`` must stay unloaded, not [user].
    set_committed_value(user, "organization", organization)
    set_committed_value(user, "role_grants", grants)
    for obj in (user, organization, *grants):
        make_transient_to_detached(obj)  # as if just loaded: no history, no INSERT
    session.add(user)  # cascades to the organization and the grants
    user.unread_notifications = snapshot.unread
    return user


def load_user(user_id: str) -> User | None:
    """flask-login's user loader: the active user with this id, or None."""
    if not user_id.isdigit():
        return None
    session = db.session()
    seconds = _kept.ttl()
    if seconds > 0:
        snapshot = _kept.get(int(user_id))
        user = _attach(session, snapshot) if snapshot is not None else None
        if user is not None:
            return user
    generation = _kept.generation
    row = session.execute(_USER_WITH_COUNTS, {"user_id": int(user_id)}).unique().first()
    if row is None or not row[0].is_active:
        return None
    user, unread = row
    user.unread_notifications = unread
    if seconds > 0:
        _kept.put(user.id, _snapshot(user, unread), seconds, generation)
    return user
