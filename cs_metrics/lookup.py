"""Read-only account facts for other features (the roadmap's impact view): ARR, plan, renewal
date and the latest effective health band per organization, in two queries whatever the
number of organizations. Organizations without a profile or a snapshot get empty facts, and
so do accounts outside the viewer's book when CSMs see only their own (``cs_metrics.access``):
another CSM's revenue and health are not theirs to see here either."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cs_metrics.access import book_owner
from cs_metrics.models import AccountProfile, HealthSnapshot
from portal.core.identity import User


@dataclass(frozen=True)
class AccountFacts:
    arr: Decimal | None = None
    plan: str | None = None
    renewal_date: date | None = None
    health_band: str | None = None


def account_facts(
    session: Session, org_ids: Iterable[int], viewer: User | None = None
) -> dict[int, AccountFacts]:
    """Facts per organization; with ``viewer``, only for the accounts in their book."""
    requested = sorted(set(org_ids))
    if not requested:
        return {}
    ids = requested
    profile_rows = select(
        AccountProfile.organization_id,
        AccountProfile.arr,
        AccountProfile.plan,
        AccountProfile.renewal_date,
    ).where(AccountProfile.organization_id.in_(ids))
    owner = book_owner(session, viewer) if viewer is not None else None
    if owner is not None:
        profile_rows = profile_rows.where(AccountProfile.csm_id == owner)
    profiles = {row.organization_id: row for row in session.execute(profile_rows)}
    if owner is not None:
        ids = sorted(profiles)  # the rest stay empty: not in this CSM's book
    latest = (
        select(HealthSnapshot.organization_id, func.max(HealthSnapshot.day).label("day"))
        .where(HealthSnapshot.organization_id.in_(ids))
        .group_by(HealthSnapshot.organization_id)
        .subquery()
    )
    bands = {
        org_id: band
        for org_id, band in session.execute(
            select(HealthSnapshot.organization_id, HealthSnapshot.effective_band).join(
                latest,
                (latest.c.organization_id == HealthSnapshot.organization_id)
                & (latest.c.day == HealthSnapshot.day),
            )
        )
    }
    facts = {org_id: AccountFacts() for org_id in requested}
    for org_id in ids:
        profile = profiles.get(org_id)
        facts[org_id] = AccountFacts(
            arr=profile.arr if profile else None,
            plan=profile.plan if profile else None,
            renewal_date=profile.renewal_date if profile else None,
            health_band=bands.get(org_id),
        )
    return facts
