"""factory_boy factories for customer-success rows (pass ``organization_id``); ``bind`` points
them at the test session."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import factory
from sqlalchemy.orm import Session

from cs_metrics.models import (
    AccountProfile,
    HealthSnapshot,
    Invoice,
    NpsResponse,
    Ticket,
    UsageEvent,
)
from portal.core.db import utcnow
from tests.factories import _Base


def bind(session: Session) -> None:
    for model_factory in (
        AccountFactory,
        UsageFactory,
        TicketFactory,
        InvoiceFactory,
        NpsFactory,
        SnapshotFactory,
    ):
        model_factory._meta.sqlalchemy_session = session


class AccountFactory(_Base):
    class Meta:
        model = AccountProfile

    external_id = factory.Sequence(lambda n: f"ACC-{n:05d}")
    arr = Decimal("120000.00")
    plan = "enterprise"


class UsageFactory(_Base):
    class Meta:
        model = UsageEvent

    day = factory.LazyFunction(lambda: utcnow().date())
    metric = "logins"
    value = 1.0


class TicketFactory(_Base):
    class Meta:
        model = Ticket

    external_id = factory.Sequence(lambda n: f"T-{n:06d}")
    opened_at = factory.LazyFunction(lambda: utcnow() - timedelta(days=3))
    closed_at = None
    severity = 3
    csat = None


class InvoiceFactory(_Base):
    class Meta:
        model = Invoice

    external_id = factory.Sequence(lambda n: f"INV-{n:06d}")
    amount = Decimal("1000.00")
    order_date = factory.LazyFunction(lambda: utcnow().date() - timedelta(days=30))
    due_date = None
    paid_date = None


class NpsFactory(_Base):
    class Meta:
        model = NpsResponse

    external_id = factory.Sequence(lambda n: f"NPS-{n:06d}")
    score = 9
    responded_at = factory.LazyFunction(lambda: utcnow() - timedelta(days=5))
    source = "import"


class SnapshotFactory(_Base):
    class Meta:
        model = HealthSnapshot

    day = factory.LazyFunction(lambda: date.today())
    score = 90.0
    band = "green"
    complete = True
    model_version = "default-1"
    components = factory.LazyFunction(list)
