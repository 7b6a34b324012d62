"""Customer-success data: account attributes, imported CRM records, health snapshots.

Imported rows carry the CRM's ``external_id`` (unique), so a re-import updates in place. Money is
``Numeric(18, 2)``; times are aware UTC (``portal.core.db.UTCDateTime``); plain calendar days
(usage, invoices, snapshots) are ``Date``. Correctness lives in constraints: one profile per
organization, one usage value per (organization, day, metric), one snapshot per (organization,
day), one *open* alert per (organization, kind) -- a partial unique index on both backends.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.db import Base, utcnow

_BIGINT = BigInteger().with_variant(Integer, "sqlite")
Money = Numeric(18, 2)


def _org_fk() -> Any:
    return ForeignKey("organizations.id", ondelete="CASCADE")


def _user_fk() -> Any:
    return ForeignKey("users.id", ondelete="SET NULL")


class ContactRole(enum.StrEnum):
    DECISION_MAKER = "decision_maker"
    CHAMPION = "champion"
    USER = "user"


class NpsSource(enum.StrEnum):
    IMPORT = "import"
    IN_APP = "in_app"


class JobStatus(enum.StrEnum):
    """Of an import (validating, then importing) and of a recompute run (running)."""

    QUEUED = "queued"
    VALIDATING = "validating"
    IMPORTING = "importing"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AccountProfile(Base):
    """CS attributes of one customer organization (its name lives on the organization)."""

    __tablename__ = "cs_accounts"

    organization_id: Mapped[int] = mapped_column(_org_fk(), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    arr: Mapped[Decimal | None] = mapped_column(Money)
    plan: Mapped[str | None] = mapped_column(String(200))
    contract_start: Mapped[date | None] = mapped_column(Date)
    renewal_date: Mapped[date | None] = mapped_column(Date, index=True)
    csm_id: Mapped[int | None] = mapped_column(_user_fk(), index=True)
    sales_owner_email: Mapped[str | None] = mapped_column(String(254))
    segment: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    product_version: Mapped[str | None] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(253))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Contact(Base):
    __tablename__ = "cs_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    organization_id: Mapped[int] = mapped_column(_org_fk(), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(16))


class UsageEvent(Base):
    """One metric's value for one account on one day (re-imports overwrite the value).

    Keyed by what it is, (account, day, metric), the key imports upsert on: a surrogate id,
    referenced by nothing, cost every imported row a sequence value and a third index (15% of
    the database's time for a 200,000-row import) and the biggest table a column."""

    __tablename__ = "cs_usage_events"
    __table_args__ = (
        # Recompute sums the last 60 days of every account: a range scan by day.
        Index("ix_cs_usage_events_day", "day", "organization_id"),
    )

    organization_id: Mapped[int] = mapped_column(_org_fk(), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Ticket(Base):
    __tablename__ = "cs_tickets"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity_range"),
        CheckConstraint("csat BETWEEN 1 AND 5", name="csat_range"),
        Index("ix_cs_tickets_org_opened", "organization_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    organization_id: Mapped[int] = mapped_column(_org_fk())
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    severity: Mapped[int | None] = mapped_column(SmallInteger)  # 1 = urgent .. 4 = low
    csat: Mapped[int | None] = mapped_column(SmallInteger)  # 1..5


class Invoice(Base):
    __tablename__ = "cs_invoices"
    __table_args__ = (Index("ix_cs_invoices_org_order", "organization_id", "order_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    organization_id: Mapped[int] = mapped_column(_org_fk())
    amount: Mapped[Decimal] = mapped_column(Money)
    order_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    paid_date: Mapped[date | None] = mapped_column(Date)


class NpsResponse(Base):
    __tablename__ = "cs_nps_responses"
    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 10", name="score_range"),
        Index("ix_cs_nps_responses_org_time", "organization_id", "responded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)  # None: in-app
    organization_id: Mapped[int] = mapped_column(_org_fk())
    user_id: Mapped[int | None] = mapped_column(_user_fk(), index=True)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    score: Mapped[int] = mapped_column(SmallInteger)
    responded_at: Mapped[datetime]
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default=NpsSource.IMPORT)


class HealthModelVersion(Base):
    """A saved health model (``cs_metrics.service.model_to_config``); exactly one is active."""

    __tablename__ = "cs_health_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(_user_fk())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class HealthSnapshot(Base):
    """An account's health on one day: the computed score with its explanation, and beside it
    the effective score (an active CSM override, else the computed one)."""

    __tablename__ = "cs_health_snapshots"
    __table_args__ = (
        UniqueConstraint("organization_id", "day"),
        Index("ix_cs_health_snapshots_day", "day"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk())
    day: Mapped[date] = mapped_column(Date)
    score: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(8))
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    model_version: Mapped[str] = mapped_column(String(40))
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Of score, band, complete, model_version and components (what only the recompute
    # writes): a rerun of the day compares it, not 1.5 KB of explanation per account.
    computed_digest: Mapped[str | None] = mapped_column(String(32))
    effective_score: Mapped[float | None] = mapped_column(Float)
    effective_band: Mapped[str | None] = mapped_column(String(8))
    override_id: Mapped[int | None] = mapped_column(
        ForeignKey("cs_health_overrides.id", ondelete="SET NULL")
    )
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class HealthOverride(Base):
    """A CSM's score for an account until ``expires_at``; revoked or expired ones are kept."""

    __tablename__ = "cs_health_overrides"
    __table_args__ = (
        CheckConstraint("score >= 0 AND score <= 100", name="score_range"),
        Index("ix_cs_health_overrides_org", "organization_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk())
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(_user_fk())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class HealthAlert(Base):
    __tablename__ = "cs_health_alerts"
    __table_args__ = (
        Index(
            "uq_cs_health_alerts_open",
            "organization_id",
            "kind",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk(), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # a health alert kind, or "rule:<id>"
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("cs_alert_rules.id", ondelete="SET NULL")
    )
    severity: Mapped[str] = mapped_column(String(12), default="warning")
    channel: Mapped[str | None] = mapped_column(String(64), index=True)
    day: Mapped[date] = mapped_column(Date)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(8), default=AlertStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class ImportJob(Base):
    """One CSV import; the file itself is kept at ``UPLOAD_DIR/imports/<id>.csv``."""

    __tablename__ = "cs_import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_valid: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(_user_fk())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class RecomputeRun(Base):
    """One health recompute of every account: the nightly one, or one a CSM asked for after
    an import. Its progress is committed while it runs, so the portal can show it."""

    __tablename__ = "cs_recompute_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    requested_by_id: Mapped[int | None] = mapped_column(_user_fk())  # None: nightly or CLI
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    accounts_done: Mapped[int] = mapped_column(Integer, default=0)
    accounts_total: Mapped[int] = mapped_column(Integer, default=0)
    alerts_raised: Mapped[int | None] = mapped_column(Integer)
    # Of a finished run: scored, no_data, overridden, bands {band: accounts}, model_version.
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(String(500))


# --------------------------------------------------------------------------------------------
# The CSM's working set: settings, tasks, alert rules, referrals, improvement items, targets
# --------------------------------------------------------------------------------------------


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskKind(enum.StrEnum):
    CLOSE_THE_LOOP = "close_the_loop"  # a detractor answered NPS
    ALERT = "alert"  # an alert rule's "create a CSM task" action
    REFERRAL_ASK = "referral_ask"  # a promoter may be asked for a referral
    MANUAL = "manual"


class ReferralStatus(enum.StrEnum):
    ASKED = "asked"
    RECEIVED = "received"
    CONVERTED = "converted"
    DECLINED = "declined"


class ImprovementStatus(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class Department(enum.StrEnum):
    PRODUCT = "product"
    SUPPORT = "support"
    SALES = "sales"
    ENGINEERING = "engineering"
    MARKETING = "marketing"
    FINANCE = "finance"
    LEGAL = "legal"


class CsSetting(Base):
    """One CS setting (own-book visibility, survey cadence, CLV assumptions, ...) as JSON."""

    __tablename__ = "cs_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_by_id: Mapped[int | None] = mapped_column(_user_fk())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CsTask(Base):
    """Work for a CSM about one account: a detractor to call back, an alert to act on."""

    __tablename__ = "cs_tasks"
    __table_args__ = (
        Index("ix_cs_tasks_assignee_status", "assignee_id", "status", "due_on"),
        # One open task per source (an NPS response, an alert): re-running never duplicates.
        Index(
            "uq_cs_tasks_open_source",
            "source_type",
            "source_id",
            unique=True,
            sqlite_where=text("status = 'open' AND source_type IS NOT NULL"),
            postgresql_where=text("status = 'open' AND source_type IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk(), index=True)
    assignee_id: Mapped[int | None] = mapped_column(_user_fk())
    kind: Mapped[str] = mapped_column(String(20), default=TaskKind.MANUAL)
    title: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    due_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default=TaskStatus.OPEN)
    source_type: Mapped[str | None] = mapped_column(String(20))  # "nps_response", "alert"
    source_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(_user_fk())
    outcome: Mapped[str | None] = mapped_column(Text)


class NpsSurveyState(Base):
    """When a customer user last saw, dismissed or answered the in-app NPS survey."""

    __tablename__ = "cs_nps_survey_states"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    last_shown_at: Mapped[datetime | None]
    last_dismissed_at: Mapped[datetime | None]
    last_answered_at: Mapped[datetime | None]


class Referral(Base):
    """A promoter asked for (and maybe giving) a referral; counted in the strategic KPI."""

    __tablename__ = "cs_referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk(), index=True)
    nps_response_id: Mapped[int | None] = mapped_column(
        ForeignKey("cs_nps_responses.id", ondelete="SET NULL")
    )
    csm_id: Mapped[int | None] = mapped_column(_user_fk(), index=True)
    referrer_email: Mapped[str | None] = mapped_column(String(254))
    referred_company: Mapped[str | None] = mapped_column(String(200))
    referred_contact: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(12), default=ReferralStatus.ASKED)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)


class AlertRule(Base):
    """A staff-editable rule: an expression over account metrics and the actions it takes.

    ``key`` names a shipped default (so seeding is idempotent); custom rules have none."""

    __tablename__ = "cs_alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    expression: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(12), default="warning")
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(_user_fk())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertFiring(Base):
    """Every time a rule fired for an account (the audit), with the metrics it saw and what
    its actions did; the open alert it opened or found is ``alert_id``."""

    __tablename__ = "cs_alert_firings"
    __table_args__ = (Index("ix_cs_alert_firings_org", "organization_id", "fired_at"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("cs_alert_rules.id", ondelete="SET NULL"), index=True
    )
    organization_id: Mapped[int] = mapped_column(_org_fk())
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("cs_health_alerts.id", ondelete="SET NULL")
    )
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class AccountTag(Base):
    """A label on an account ("at-risk", "vip"), set by a CSM or an alert rule's action."""

    __tablename__ = "cs_account_tags"
    __table_args__ = (UniqueConstraint("organization_id", "tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk())
    tag: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(20), default="manual")  # or "rule:<id>"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImprovementItem(Base):
    """A cross-department improvement a CSM opened for an account (collaboration KPI)."""

    __tablename__ = "cs_improvement_items"
    __table_args__ = (Index("ix_cs_improvement_items_csm", "csm_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk(), index=True)
    department: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    owner_name: Mapped[str | None] = mapped_column(String(200))  # in the other department
    csm_id: Mapped[int | None] = mapped_column(_user_fk())
    status: Mapped[str] = mapped_column(String(12), default=ImprovementStatus.OPEN)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class KpiTarget(Base):
    """A target for one KPI: for one CSM, or the default for all (``csm_id`` None)."""

    __tablename__ = "cs_kpi_targets"
    __table_args__ = (
        Index(
            "uq_cs_kpi_targets_default",
            "kpi",
            unique=True,
            sqlite_where=text("csm_id IS NULL"),
            postgresql_where=text("csm_id IS NULL"),
        ),
        Index(
            "uq_cs_kpi_targets_csm",
            "csm_id",
            "kpi",
            unique=True,
            sqlite_where=text("csm_id IS NOT NULL"),
            postgresql_where=text("csm_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    csm_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kpi: Mapped[str] = mapped_column(String(40))
    target: Mapped[float] = mapped_column(Float)
    updated_by_id: Mapped[int | None] = mapped_column(_user_fk())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AccountView(Base):
    """A staff member opened an account's CS pages (who, when, which page): the access audit
    vendor admins read."""

    __tablename__ = "cs_account_views"
    __table_args__ = (Index("ix_cs_account_views_org", "organization_id", "viewed_at"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    organization_id: Mapped[int] = mapped_column(_org_fk())
    staff_id: Mapped[int | None] = mapped_column(_user_fk(), index=True)
    page: Mapped[str] = mapped_column(String(200))
    viewed_at: Mapped[datetime] = mapped_column(default=utcnow)
