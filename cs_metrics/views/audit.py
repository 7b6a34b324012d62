"""CS pages: the audit of staff opening accounts' CS pages (who looked at which customer and
when), readable by vendor admins only, so customers' data is seen only by those who need it.

Opening an account page or one of its CSV exports adds a row; a refresh within
``THROTTLE`` of the same staff member, account and page adds nothing, so the log stays a
record of visits, not of clicks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from cs_metrics.access import require_cs
from cs_metrics.export import csv_response
from cs_metrics.models import AccountView
from cs_metrics.views import bp, nav_item
from portal.core.db import db, utcnow
from portal.core.identity import Organization, User
from portal.core.pagination import clamp_page_args, paginate
from portal.core.permissions import Action
from portal.core.web import id_arg

THROTTLE = timedelta(minutes=10)
EXPORT_LIMIT = 100_000


def record_view(
    session: Session, staff: Any, org_id: int, page: str, now: datetime | None = None
) -> bool:
    """Note that ``staff`` opened ``page`` of account ``org_id``; False when the same visit
    was already noted within ``THROTTLE``. The caller commits."""
    now = now or utcnow()
    page = page[:200]
    recent = session.scalar(
        select(AccountView.id)
        .where(
            AccountView.staff_id == staff.id,
            AccountView.organization_id == org_id,
            AccountView.page == page,
            AccountView.viewed_at > now - THROTTLE,
        )
        .limit(1)
    )
    if recent is not None:
        return False
    session.add(AccountView(organization_id=org_id, staff_id=staff.id, page=page, viewed_at=now))
    session.flush()
    return True


def _int_arg(name: str) -> int | None:
    return id_arg(request.args.get(name))


def audit_query(org_id: int | None, staff_id: int | None) -> Select[Any]:
    """Account views, newest first, optionally for one account and/or one staff member."""
    statement = select(AccountView).order_by(AccountView.viewed_at.desc(), AccountView.id.desc())
    if org_id is not None:
        statement = statement.where(AccountView.organization_id == org_id)
    if staff_id is not None:
        statement = statement.where(AccountView.staff_id == staff_id)
    return statement


def _names(session: Session, views: list[AccountView]) -> tuple[dict[int, str], dict[int, str]]:
    """Account and staff names for ``views``, in two queries whatever their number."""
    org_ids = {v.organization_id for v in views}
    staff_ids = {v.staff_id for v in views if v.staff_id is not None}
    orgs: dict[int, str] = {}
    staff: dict[int, str] = {}
    if org_ids:
        query = select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))
        orgs = {id_: name for id_, name in session.execute(query)}
    if staff_ids:
        query = select(User.id, User.display_name).where(User.id.in_(staff_ids))
        staff = {id_: name for id_, name in session.execute(query)}
    return orgs, staff


def _choices(session: Session) -> tuple[list[Any], list[Any]]:
    """Accounts and staff that appear in the log, for the filter menus."""
    orgs = session.execute(
        select(Organization.id, Organization.name)
        .where(Organization.id.in_(select(AccountView.organization_id).distinct()))
        .order_by(Organization.name)
    ).all()
    staff = session.execute(
        select(User.id, User.display_name)
        .where(User.id.in_(select(AccountView.staff_id).distinct()))
        .order_by(User.display_name)
    ).all()
    return list(orgs), list(staff)


def page_label(page: str) -> str:
    if page == "account":
        return _("Account page")
    if page.startswith("export:"):
        return _("CSV export: %(table)s", table=page.removeprefix("export:"))
    return page


@bp.route("/audit")
@login_required
def audit() -> str:
    require_cs(current_user, Action.CONFIGURE_CS)
    org_id, staff_id = _int_arg("org_id"), _int_arg("staff_id")
    page, per_page = clamp_page_args(request.args.get("page"), request.args.get("per_page", 50))
    result = paginate(db.session, audit_query(org_id, staff_id), page, per_page)
    org_names, staff_names = _names(db.session, result.items)
    orgs, staff = _choices(db.session)
    return render_template(
        "cs/audit.html",
        page=result,
        org_names=org_names,
        staff_names=staff_names,
        orgs=orgs,
        staff=staff,
        org_id=org_id,
        staff_id=staff_id,
        page_label=page_label,
    )


@bp.route("/audit.csv")
@login_required
def audit_csv() -> Response:
    require_cs(current_user, Action.CONFIGURE_CS)
    org_id, staff_id = _int_arg("org_id"), _int_arg("staff_id")
    views = list(db.session.scalars(audit_query(org_id, staff_id).limit(EXPORT_LIMIT)))
    org_names, staff_names = _names(db.session, views)
    return csv_response(
        "account-views.csv",
        [_("When"), _("Account"), _("Account ID"), _("Staff"), _("Staff ID"), _("Page")],
        (
            [
                v.viewed_at,
                org_names.get(v.organization_id, ""),
                v.organization_id,
                staff_names.get(v.staff_id or 0, ""),
                v.staff_id,
                v.page,
            ]
            for v in views
        ),
    )


nav_item("cs.audit", _l("Access audit"), Action.CONFIGURE_CS)
