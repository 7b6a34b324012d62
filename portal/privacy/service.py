"""Data governance: a person's (or an organization's) data as a JSON archive, erasure of an
account, and deletion of an organization with everything it owns (GDPR arts. 15, 17, 20;
PIPL arts. 45, 47).

Each feature declares its personal data in ``portal.core.personal_data``; this module adds
what the kernel keeps (the user row, roles, notifications, activity, consents, the search log)
and owns the jobs, the files and the permissions.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from secrets import token_hex, token_urlsafe
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from portal.core import personal_data
from portal.core.activity import Activity, record_activity, register_verbs
from portal.core.consent import Consent
from portal.core.db import Base, utcnow
from portal.core.errors import Conflict, DomainError, Invalid, NotFound, PermissionDenied
from portal.core.identity import ERASED_NAME, Organization, Role, User, UserRole
from portal.core.notifications import Notification, notify
from portal.core.permissions import Action, can
from portal.core.security import verify_password
from portal.core.tasks import enqueue_after_commit
from portal.privacy.models import DataExport, ExportStatus
from portal.search.models import SearchLogEntry

register_verbs("account.erased", "org.deleted", "privacy.export_requested")

EXPORT_DAYS = 7
EXPORT_DIR = "exports"
ARCHIVE_MEMBER = "data.json"
FORMAT_VERSION = 1
# Activity ``data`` keys that carry no personal data: kinds, categories and ids, which the
# customer-success aggregates read. Everything else (free text, session keys) is dropped.
NEUTRAL_ACTIVITY_KEYS = frozenset(
    {
        "kind",
        "source",
        "category",
        "role",
        "scope",
        "via",
        "severity",
        "channel",
        "status",
        "helpful",
        "private",
        "results",
        "score",
        "level",
        "version",
        "importance",
    }
)
ERASE_MODES = (personal_data.KEEP, personal_data.REMOVE)


# --- what the kernel keeps about a person ------------------------------------------------


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "locale": user.locale,
        "timezone": user.timezone,
        "active": user.active,
        "email_confirmed_at": personal_data.plain(user.email_confirmed_at),
        "created_at": personal_data.plain(user.created_at),
        "last_sign_in_at": personal_data.plain(user.last_sign_in_at),
        "trust_level": user.trust_level,
    }


def _membership(user: User) -> dict[str, Any]:
    return {
        "organization": {"id": user.organization.id, "name": user.organization.name},
        "roles": sorted(str(role) for role in user.roles),
    }


def export_core(session: Session, user: User) -> dict[str, Any]:
    def mine(model: Any, column: Any) -> list[Any]:
        return list(session.scalars(select(model).where(column == user.id).order_by(model.id)))

    return {
        "consents": personal_data.rows(
            mine(Consent, Consent.user_id), "purpose", "granted", "source", "recorded_at"
        ),
        "notifications": personal_data.rows(
            mine(Notification, Notification.user_id),
            "kind",
            "message",
            "link",
            "created_at",
            "read_at",
        ),
        "activity": personal_data.rows(
            mine(Activity, Activity.actor_id),
            "occurred_at",
            "verb",
            "subject_type",
            "subject_id",
            "data",
        ),
        "searches": personal_data.rows(
            mine(SearchLogEntry, SearchLogEntry.user_id), "query", "searched_at"
        ),
    }


def _neutral(data: dict[str, Any] | None) -> dict[str, Any]:
    return {
        key: value
        for key, value in (data or {}).items()
        if key in NEUTRAL_ACTIVITY_KEYS or key.endswith("_id") or key == "id"
    }


def erase_core(session: Session, user: User, mode: str) -> None:
    """Notifications, consents, exports and the search log's link to the person go; activity
    rows keep their verb and ids (the CS aggregates) but lose free text."""
    session.execute(delete(Notification).where(Notification.user_id == user.id))
    session.execute(delete(Consent).where(Consent.user_id == user.id))
    for export in session.scalars(
        select(DataExport).where(
            (DataExport.user_id == user.id) | (DataExport.requested_by_id == user.id)
        )
    ):
        _remove_file(export)
        if export.user_id == user.id:
            session.delete(export)
    session.execute(
        update(SearchLogEntry)
        .where(SearchLogEntry.user_id == user.id)
        .values(user_id=None)
        .execution_options(synchronize_session=False)
    )
    for activity in session.scalars(select(Activity).where(Activity.actor_id == user.id)):
        if activity.data and _neutral(activity.data) != activity.data:
            activity.data = _neutral(activity.data)


def register() -> None:
    personal_data.register("core", export_core, erase_core)


def user_data(session: Session, user: User) -> dict[str, Any]:
    """Everything the portal keeps about ``user``: the archive's content."""
    return {
        "profile": _profile(user),
        "membership": _membership(user),
        **personal_data.export_all(session, user),
    }


# --- exports -----------------------------------------------------------------------------


def _may_export_org(actor: User, org: Organization) -> bool:
    return can(actor, Action.MANAGE_MEMBERS, org)


def request_export(session: Session, actor: User) -> DataExport:
    """Queue an archive of ``actor``'s own data; a pending one is reused, not doubled."""
    return _request(session, actor, user_id=actor.id)


def request_org_export(session: Session, actor: User, org_id: int | None = None) -> DataExport:
    """Queue an archive of an organization's data: its admins (or a vendor admin)."""
    org = session.get(Organization, org_id or actor.organization_id)
    if org is None or not can(actor, Action.VIEW_ORG, org):
        raise NotFound(str(_l("Not found.")))
    if not _may_export_org(actor, org):
        raise PermissionDenied(str(_l("Only an administrator of the organization can do this.")))
    return _request(session, actor, organization_id=org.id)


def _request(session: Session, actor: User, **target: int) -> DataExport:
    from portal.privacy.tasks import build_export_task  # the task module imports this one

    ((column, value),) = target.items()
    pending = session.scalar(
        select(DataExport).where(
            getattr(DataExport, column) == value,
            DataExport.requested_by_id == actor.id,
            DataExport.status.in_([ExportStatus.QUEUED, ExportStatus.RUNNING]),
        )
    )
    if pending is not None:
        return pending
    export = DataExport(requested_by_id=actor.id, status=ExportStatus.QUEUED, **target)
    session.add(export)
    session.flush()
    record_activity(
        session,
        actor,
        actor.organization,
        "privacy.export_requested",
        export,
        {"scope": "organization" if column == "organization_id" else "user"},
    )
    enqueue_after_commit(session, build_export_task, export.id)
    return export


def org_data(session: Session, org: Organization) -> dict[str, Any]:
    """The organization, its domains and invitations, and each member's data."""
    members = list(
        session.scalars(select(User).where(User.organization_id == org.id).order_by(User.id))
    )
    from portal.accounts.models import Invitation

    invitations = session.scalars(
        select(Invitation).where(Invitation.organization_id == org.id).order_by(Invitation.id)
    )
    return {
        "organization": {
            "id": org.id,
            "name": org.name,
            "slug": org.slug,
            "created_at": personal_data.plain(org.created_at),
            "domains": [d.domain for d in org.domains],
        },
        "invitations": personal_data.rows(
            invitations, "email", "role", "created_at", "accepted_at", "revoked_at"
        ),
        "members": [user_data(session, member) for member in members],
    }


def export_dir(upload_dir: str | Path) -> Path:
    path = Path(upload_dir) / EXPORT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_export(session: Session, export_id: int, upload_dir: str | Path) -> DataExport | None:
    """Write the archive (a zip holding ``data.json``) and tell the requester it is ready.

    Idempotent: a job already built (or gone) is left as it is.
    """
    export = session.get(DataExport, export_id)
    if export is None or export.status not in (ExportStatus.QUEUED, ExportStatus.RUNNING):
        return export
    requester = session.get(User, export.requested_by_id) if export.requested_by_id else None
    if requester is None or not requester.active:
        export.status = ExportStatus.FAILED
        export.error = "requester gone"
        return export
    export.status = ExportStatus.RUNNING
    if export.organization_id is not None:
        org = session.get(Organization, export.organization_id)
        content: dict[str, Any] = org_data(session, org) if org else {}
        scope = "organization"
    else:
        content = user_data(session, requester)
        scope = "user"
    now = utcnow()
    document = {
        "format": "cocreate-data-export",
        "version": FORMAT_VERSION,
        "scope": scope,
        "generated_at": now.isoformat(),
        "data": content,
    }
    name = f"{scope}-{export.id}-{token_urlsafe(12)}.zip"
    target = export_dir(upload_dir) / name
    temp = target.with_name(f".{name}.{token_hex(4)}")
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            ARCHIVE_MEMBER,
            json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8"),
        )
    temp.replace(target)
    export.filename = name
    export.size_bytes = target.stat().st_size
    export.status = ExportStatus.READY
    export.finished_at = now
    export.expires_at = now + timedelta(days=EXPORT_DAYS)
    notify(
        session,
        requester,
        "data_export",
        _l("Your data export is ready. Download it within %(days)d days.", days=EXPORT_DAYS),
        f"/privacy/exports/{export.id}/download",
    )
    return export


def fail_export(session: Session, export_id: int, error: str) -> None:
    export = session.get(DataExport, export_id)
    if export is not None:
        export.status = ExportStatus.FAILED
        export.error = error[:500]


def my_exports(session: Session, user: User) -> list[DataExport]:
    return list(
        session.scalars(
            select(DataExport)
            .where(DataExport.requested_by_id == user.id)
            .order_by(DataExport.id.desc())
            .limit(20)
        )
    )


def download_path(
    session: Session, user: User, export_id: int, upload_dir: str | Path
) -> tuple[Path, str]:
    """The archive's file and the name to save it as: only for whoever asked for it, and
    only until it expires (anything else is *not found*, so ids reveal nothing)."""
    export = session.get(DataExport, export_id)
    if export is None or export.requested_by_id != user.id or export.filename is None:
        raise NotFound(str(_l("Not found.")))
    if export.status != ExportStatus.READY or (
        export.expires_at is not None and export.expires_at <= utcnow()
    ):
        raise NotFound(str(_l("This export has expired. Ask for a new one.")))
    path = export_dir(upload_dir) / export.filename
    if not path.is_file():
        raise NotFound(str(_l("Not found.")))
    stamp = (export.finished_at or export.created_at).strftime("%Y%m%d")
    scope = "organization" if export.organization_id else "personal"
    return path, f"cocreate-{scope}-data-{stamp}.zip"


def _remove_file(export: DataExport, upload_dir: str | Path | None = None) -> None:
    if not export.filename:
        return
    base = upload_dir
    if base is None:
        from flask import current_app, has_app_context

        if not has_app_context():
            return
        base = current_app.config["UPLOAD_DIR"]
    (Path(base) / EXPORT_DIR / export.filename).unlink(missing_ok=True)


def expire_exports(session: Session, upload_dir: str | Path) -> int:
    """Delete the files of exports past their date; the rows stay as history."""
    count = 0
    for export in session.scalars(
        select(DataExport).where(
            DataExport.status == ExportStatus.READY, DataExport.expires_at <= utcnow()
        )
    ):
        _remove_file(export, upload_dir)
        export.status = ExportStatus.EXPIRED
        export.filename = None
        count += 1
    return count


# --- erasure -----------------------------------------------------------------------------


def may_erase(actor: User, target: User) -> bool:
    """Oneself; an org admin their members; a vendor admin anyone (not a peer's own org)."""
    return actor.id == target.id or can(actor, Action.MANAGE_MEMBERS, target.organization)


def erasable_user(session: Session, actor: User, user_id: int) -> User:
    target = session.get(User, user_id)
    if (
        target is None
        or target.erased_at is not None
        or not can(actor, Action.VIEW_ORG, target.organization)
    ):
        raise NotFound(str(_l("Not found.")))
    if not may_erase(actor, target):
        raise PermissionDenied(str(_l("You do not have permission to do this.")))
    return target


def erase_account(
    session: Session,
    actor: User,
    user_id: int,
    mode: str = personal_data.KEEP,
    password: str | None = None,
) -> User:
    """Erase an account: personal data goes, the row stays (votes and other counts stay
    exact, attributed to it), and the content is kept anonymous or removed.

    Erasing oneself needs one's password; an admin chooses what happens to the content.
    """
    target = erasable_user(session, actor, user_id)
    if mode not in ERASE_MODES:
        raise Invalid(str(_l("Choose what happens to the content.")), field="content")
    if actor.id == target.id and not verify_password(target.password_hash, password or ""):
        raise Invalid(str(_l("The password is not correct.")), field="password")
    if target.has_role(Role.VENDOR_ADMIN) and not _other_vendor_admins(session, target):
        raise Conflict(
            str(
                _l(
                    "This is the last vendor admin account: make someone else a vendor admin "
                    "first, or nobody could run the portal."
                )
            )
        )
    by = "self" if actor.id == target.id else "admin"
    org = target.organization
    personal_data.erase_all(session, target, mode)
    session.refresh(target)
    _anonymize(session, target)
    record_activity(
        session,
        None if by == "self" else actor,
        org,
        "account.erased",
        target,
        {"by": by, "content": mode, "user_id": target.id},
    )
    session.flush()
    return target


def _other_vendor_admins(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count(UserRole.id))
            .join(User, User.id == UserRole.user_id)
            .where(
                UserRole.role == Role.VENDOR_ADMIN,
                UserRole.user_id != user.id,
                User.erased_at.is_(None),
            )
        )
        or 0
    )


def _anonymize(session: Session, user: User) -> None:
    session.execute(delete(UserRole).where(UserRole.user_id == user.id))
    user.email = f"erased-{user.id}@invalid.example"
    user.display_name = ERASED_NAME
    # Not an argon2 hash: no password can ever match it.
    user.password_hash = f"!erased:{token_hex(16)}"
    user.timezone = "UTC"
    user.active = False
    user.email_confirmed_at = None
    user.last_sign_in_at = None
    user.erased_at = utcnow()
    session.flush()
    session.expire(user, ["role_grants"])


# --- organization deletion ---------------------------------------------------------------


@dataclass
class DeletionSummary:
    organization: str
    members: int
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.members + sum(self.rows.values())


def deletable_org(session: Session, actor: User, org_id: int) -> Organization:
    org = session.get(Organization, org_id)
    if org is None or not can(actor, Action.VIEW_ORG, org):
        raise NotFound(str(_l("Not found.")))
    # Managing another organization's members is the vendor admin's right alone.
    if not (actor.organization.is_vendor and can(actor, Action.MANAGE_MEMBERS, org)):
        raise PermissionDenied(str(_l("Only a vendor administrator can delete an organization.")))
    if org.is_vendor:
        raise DomainError(str(_l("The vendor's own organization cannot be deleted.")))
    return org


def _owned_counts(session: Session, org_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if "organization_id" not in table.c or table.name == "users":
            continue
        count = session.scalar(
            select(func.count()).select_from(table).where(table.c.organization_id == org_id)
        )
        if count:
            counts[table.name] = int(count)
    return counts


def _forget_in_search(session: Session, org_id: int) -> None:
    """Every document the organization owns leaves the index after commit."""
    from portal.search.index import IndexUnavailable, open_index, schedule

    try:
        _name, ix = open_index()
        with ix.searcher() as searcher:
            keys = [
                fields["id"]
                for fields in (
                    searcher.stored_fields(docnum)
                    for docnum in searcher.document_numbers(owner_org=str(org_id))
                )
            ]
    except IndexUnavailable:
        return  # `cocreate search check` finds the extra documents; reindex drops them
    for key in keys:
        kind, _, object_id = key.rpartition(":")
        if object_id.isdigit():
            schedule(session, kind, int(object_id))


def delete_organization(
    session: Session, actor: User, org_id: int, confirmation: str
) -> DeletionSummary:
    """Delete a customer organization with its members and everything it owns.

    The members are erased first (``purge``): what their votes and ratings added to other
    organizations' content is given back, then the database cascades do the rest.
    """
    org = deletable_org(session, actor, org_id)
    if confirmation.strip() != org.name:
        raise Invalid(
            str(_l("Type the organization's name exactly to confirm.")), field="confirmation"
        )
    members = list(session.scalars(select(User).where(User.organization_id == org.id)))
    for member in members:
        personal_data.erase_all(session, member, personal_data.PURGE)
    session.flush()
    summary = DeletionSummary(org.name, len(members), _owned_counts(session, org.id))
    _forget_in_search(session, org.id)
    for export in session.scalars(select(DataExport).where(DataExport.organization_id == org.id)):
        _remove_file(export)
    member_ids = [m.id for m in members]
    if member_ids:
        session.execute(
            delete(User).where(User.id.in_(member_ids)).execution_options(synchronize_session=False)
        )
    session.execute(
        delete(Organization)
        .where(Organization.id == org_id)
        .execution_options(synchronize_session=False)
    )
    for obj in [*members, org]:
        if obj in session:
            session.expunge(obj)
    record_activity(
        session,
        actor,
        actor.organization,
        "org.deleted",
        None,
        {"organization_id": org_id, "members": summary.members, "rows": summary.total},
    )
    session.flush()
    return summary
