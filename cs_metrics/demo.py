"""Customer-success demo data: seeded CSV files a CSM could import, and a loader that imports
them through the same service path as the upload page and the ``metrics import`` command.

Every account follows one *story* (``STORIES``) so that each band, each default alert and each
KPI has something to show: healthy growing accounts, steady ones, declining ones (usage and
purchases down two months in a row, detractors), an overdue payer with no recent order, a big
order with poor support ratings, accounts that crashed in the last three weeks (a 15-point
drop), and new ones. The same ``seed`` and ``today`` give the same bytes, so loading twice on
one day changes nothing (imports upsert by external id; recompute replaces the day's
snapshots).

The five customer organizations of the portal demo (``portal/demo.py``) get CS attributes
through their slugs: an imported account whose external id is an organization's slug is
linked to it (``service._ensure_orgs``).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from cs_metrics import service
from cs_metrics.models import (
    AccountProfile,
    ImprovementItem,
    JobStatus,
    Referral,
    ReferralStatus,
)
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.identity import Organization, OrgKind, Role, User, UserRole
from portal.core.security import hash_password

DEFAULT_SEED = 2026
DEMO_PASSWORD = "cocreate-demo-2026"  # noqa: S105 - the published demo sign-in (portal/demo.py)  # nosec B105
USAGE_DAYS = 91  # three 30-day windows and today: enough for "down two months in a row"
RECOMPUTE_DAYS = (21, 14, 7, 0)  # days before today: a short history, so drops show as alerts
ACCOUNTS_PER_CSM = 150
MAX_CSMS = 12

# (slug, name, story) of the customer organizations created by portal/demo.py.
PORTAL_DEMO_ACCOUNTS = (
    ("acme", "Acme Analytics", "growing"),
    ("huaxin", "华信科技", "steady"),
    ("globex", "Globex Retail", "declining"),
    ("initech", "Initech Finance", "overdue"),
    ("chenguang", "晨光制造", "crashing"),
)
VENDOR_SLUG, VENDOR_NAME = "vendor", "Cocreate Software"
CSMS = (
    ("csm@vendor.example", "Casey Success", "en"),
    ("csm2@vendor.example", "Jordan Lee", "en"),
    ("csm3@vendor.example", "张伟", "zh_CN"),
    ("csm4@vendor.example", "Sam Rivera", "en"),
    ("csm5@vendor.example", "刘洋", "zh_CN"),
    ("csm6@vendor.example", "Noor Haddad", "en"),
    ("csm7@vendor.example", "Mia Schneider", "en"),
    ("csm8@vendor.example", "陈静", "zh_CN"),
    ("csm9@vendor.example", "Lucas Moreau", "en"),
    ("csm10@vendor.example", "Aiko Tanaka", "en"),
    ("csm11@vendor.example", "王磊", "zh_CN"),
    ("csm12@vendor.example", "Grace Okafor", "en"),
)

# One story per account, cycling through this pattern (so any 20 accounts show every story).
STORIES = (
    "growing", "steady", "declining", "growing", "steady", "overdue", "crashing", "big_unhappy",
    "steady", "growing", "new", "declining", "growing", "steady", "growing", "big_unhappy",
    "steady", "crashing", "growing", "steady",
)  # fmt: skip

FILES = {
    "accounts": "accounts.csv",
    "contacts": "contacts.csv",
    "usage_events": "usage.csv",
    "tickets": "tickets.csv",
    "invoices": "invoices.csv",
    "nps_responses": "nps.csv",
}
HEADERS = {
    "accounts": (
        "external_id", "name", "arr", "plan", "contract_start", "renewal_date", "csm_email",
        "sales_owner_email", "segment", "tier", "industry", "region", "product_version",
        "domain",
    ),
    "contacts": ("external_id", "account_external_id", "email", "name", "role"),
    "usage_events": ("account_external_id", "day", "metric", "value"),
    "tickets": ("external_id", "account_external_id", "opened_at", "closed_at", "severity",
                "csat"),
    "invoices": ("external_id", "account_external_id", "amount", "order_date", "due_date",
                 "paid_date"),
    "nps_responses": ("external_id", "account_external_id", "contact_email", "score",
                      "responded_at", "comment"),
}  # fmt: skip

_EN_FIRST = ("Acme", "Blue", "Cedar", "Delta", "Evergreen", "Falcon", "Granite", "Harbor",
             "Iris", "Juniper", "Kite", "Lumen", "Maple", "Nova", "Orbit", "Pioneer", "Quartz",
             "Redwood", "Summit", "Tidal", "Umbra", "Vertex", "Willow", "Zenith")  # fmt: skip
_EN_SECOND = ("Analytics", "Logistics", "Retail", "Health", "Finance", "Foods", "Energy",
              "Media", "Robotics", "Travel", "Insurance", "Pharma", "Systems", "Labs")  # fmt: skip
_EN_SUFFIX = ("Inc.", "Ltd", "GmbH", "Group", "Co.", "AG", "LLC", "S.A.")
_ZH_CITY = ("北京", "上海", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "广州", "西安")
_ZH_WORD = ("星辰", "宏远", "华创", "金桥", "云帆", "博达", "瑞丰", "恒信", "新航", "天成")
_ZH_KIND = ("科技有限公司", "信息技术有限公司", "制造有限公司", "零售集团", "物流有限公司")
_PEOPLE = ("alex", "bella", "chen", "dana", "eli", "fang", "gabe", "hui", "ivan", "jia", "kim",
           "lei", "maya", "nina", "omar", "ping", "quinn", "rosa", "sven", "tao", "uma",
           "wei", "xin", "yan", "zoe")  # fmt: skip
_SURNAMES = ("li", "wang", "zhang", "liu", "smith", "garcia", "müller", "kim", "rossi", "khan",
             "chen", "yang", "brown", "silva", "novak")  # fmt: skip
_INDUSTRIES = ("retail", "manufacturing", "finance", "healthcare", "logistics", "media",
               "education", "energy")  # fmt: skip
_REGIONS = ("APAC", "China", "EMEA", "North America", "LATAM")
_VERSIONS = ("5.4", "5.3", "5.2", "4.9")
_COMMENTS = {
    "promoter": ("Dashboards save our team hours every week.", "客户成功团队响应非常及时。",
                 "Great product, the new reports are excellent."),
    "passive": ("Works well, a few reports are slow.", "整体不错，希望导出更灵活。", ""),
    "detractor": ("Too many outages this quarter.", "工单处理太慢，考虑更换供应商。",
                  "Hard to get value for the price we pay."),
}  # fmt: skip


@dataclass
class Account:
    external_id: str
    name: str
    story: str
    segment: str
    arr: int
    csm_email: str | None
    domain: str
    contract_start: date
    contacts: list[tuple[str, str, str, str]] = field(default_factory=list)  # id, email, name, role


@dataclass
class DemoData:
    """The rows of each import kind, as the cells a CSV file holds (strings)."""

    today: date
    accounts: list[Account]
    rows: dict[str, list[tuple[str, ...]]]

    def csv_bytes(self, kind: str) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS[kind])
        writer.writerows(self.rows[kind])
        return out.getvalue().encode("utf-8")


def csm_count(accounts: int) -> int:
    """How many CSMs share the book: one per ~150 accounts, at least one, at most 12."""
    return max(1, min(MAX_CSMS, math.ceil(accounts / ACCOUNTS_PER_CSM)))


def generate(accounts: int, *, seed: int = DEFAULT_SEED, today: date | None = None) -> DemoData:
    """Seeded demo rows for ``accounts`` accounts (the first five are the portal demo's)."""
    if accounts < 0:
        raise DomainError(str(_l("The number of accounts cannot be negative.")), field="accounts")
    today = today or utcnow().date()
    rng = random.Random(seed)  # nosec B311
    csms = [email for email, _name, _locale in CSMS[: csm_count(accounts)]]
    data = DemoData(today=today, accounts=[], rows={kind: [] for kind in FILES})
    for i in range(accounts):
        if i < len(PORTAL_DEMO_ACCOUNTS):
            ext, name, story = PORTAL_DEMO_ACCOUNTS[i]
            domain = f"{ext}.example"
        else:
            ext, story = f"CUST-{i:05d}", STORIES[i % len(STORIES)]
            name = _company_name(rng)
            domain = f"cust{i:05d}.example"
        account = _account(rng, ext, name, story, domain, csms, i, today)
        data.accounts.append(account)
        _account_rows(rng, account, data, today)
    return data


def _company_name(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(_ZH_CITY) + rng.choice(_ZH_WORD) + rng.choice(_ZH_KIND)
    return f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_SECOND)} {rng.choice(_EN_SUFFIX)}"


def _account(
    rng: random.Random, ext: str, name: str, story: str, domain: str, csms: list[str], i: int,
    today: date,
) -> Account:  # fmt: skip
    segment = rng.choices(("enterprise", "mid-market", "smb"), (2, 3, 5))[0]
    if story == "big_unhappy":
        segment = "enterprise"
    arr = {
        "enterprise": rng.randrange(250_000, 1_500_000, 1000),
        "mid-market": rng.randrange(60_000, 250_000, 500),
        "smb": rng.randrange(8_000, 60_000, 100),
    }[segment]
    if story == "new":
        start = today - timedelta(days=rng.randint(20, 60))
    elif rng.random() < 0.2:
        start = today - timedelta(days=rng.randint(90, 360))  # in its first year
    else:
        start = today - timedelta(days=rng.randint(400, 1800))
    # 1 in 20 accounts has no CSM yet (an unassigned book); the rest round-robin.
    csm = None if i % 20 == 19 else csms[i % len(csms)]
    return Account(ext, name, story, segment, arr, csm, domain, start)


def _renewal(start: date, today: date) -> date:
    years = max(1, today.year - start.year)
    renewal = _add_years(start, years)
    while renewal <= today:
        years += 1
        renewal = _add_years(start, years)
    return renewal


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _stamp(day: date, rng: random.Random, hour: int = 0) -> str:
    """An ISO time on ``day`` (closing times are in the afternoon, after the opening)."""
    moment = datetime.combine(day, time(hour + rng.randint(0, 10), rng.randint(0, 59)), tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _account_rows(rng: random.Random, a: Account, data: DemoData, today: date) -> None:
    rows = data.rows
    story = a.story
    plan = {"enterprise": "enterprise", "mid-market": "professional", "smb": "team"}[a.segment]
    tier = {"enterprise": "gold", "mid-market": "silver", "smb": "bronze"}[a.segment]
    rows["accounts"].append((
        a.external_id, a.name, f"{a.arr:.2f}", plan, a.contract_start.isoformat(),
        _renewal(a.contract_start, today).isoformat(), a.csm_email or "",
        f"sales{1 + len(a.name) % 4}@vendor.example", a.segment, tier,
        rng.choice(_INDUSTRIES), rng.choice(_REGIONS), rng.choice(_VERSIONS), a.domain,
    ))  # fmt: skip

    # contacts: a decision maker, a champion and one or two users
    roles = ["decision_maker", "champion", "user"] + (["user"] if rng.random() < 0.5 else [])
    for j, role in enumerate(roles, 1):
        first, last = rng.choice(_PEOPLE), rng.choice(_SURNAMES)
        email = f"{first}.{last}{j}@{a.domain}"
        contact = (f"{a.external_id}-C{j}", email, f"{first.title()} {last.title()}", role)
        a.contacts.append(contact)
        rows["contacts"].append((contact[0], a.external_id, email, contact[2], role))

    # usage: daily logins for 91 days and weekly reports, shaped by the story
    seats = max(5, a.arr // 4000)
    first_day = today - timedelta(days=USAGE_DAYS - 1)
    if story == "new":
        first_day = max(first_day, a.contract_start)
    for offset in range((today - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        level = seats * _usage_shape(story, (day - (today - timedelta(days=USAGE_DAYS - 1))).days,
                                     (today - day).days)  # fmt: skip
        weekend = 0.35 if day.weekday() >= 5 else 1.0
        value = round(level * weekend * rng.uniform(0.9, 1.1))
        rows["usage_events"].append((a.external_id, day.isoformat(), "logins", str(value)))
        if day.weekday() == 0:
            reports = round(level * 0.4 * rng.uniform(0.8, 1.2))
            rows["usage_events"].append((a.external_id, day.isoformat(), "reports_run",
                                         str(reports)))  # fmt: skip

    _tickets(rng, a, rows["tickets"], today)
    _invoices(rng, a, rows["invoices"], today)
    _nps(rng, a, rows["nps_responses"], today)


def _usage_shape(story: str, t: int, age: int) -> float:
    """The usage level ``t`` days into the 91-day window (``age`` days before today)."""
    if story == "growing":
        return 1.0 + 0.45 * t / USAGE_DAYS
    if story == "declining":
        return 1.0 - 0.6 * t / USAGE_DAYS  # each 30-day window below the one before
    if story == "overdue":
        return 1.0 - 0.15 * t / USAGE_DAYS
    if story == "crashing":
        return 1.0 if age > 20 else 0.2
    return 1.0


def _tickets(rng: random.Random, a: Account, out: list[tuple[str, ...]], today: date) -> None:
    story = a.story
    n = {"growing": 6, "steady": 9, "declining": 14, "overdue": 8, "crashing": 10,
         "big_unhappy": 12, "new": 3}[story]  # fmt: skip
    age_limit = max(5, (today - a.contract_start).days)
    for j in range(1, n + 1):
        # most tickets of steady accounts are recent, so their CSAT has a few ratings to go on
        recent = story == "steady" and j <= 5
        age = rng.randint(15, min(80 if recent else 365, age_limit))
        severity = rng.choices((1, 2, 3, 4), (1, 2, 5, 4))[0]
        csat: int | None = {
            "growing": rng.choice((4, 5, 5)),
            "steady": rng.choice((3, 4, 4, 5)),
            "declining": rng.choice((1, 2, 3, 4)),
            "overdue": rng.choice((3, 4, 5)),
            "crashing": rng.choice((4, 5)),
            "big_unhappy": rng.choice((2, 3, 3, 4)),
            "new": rng.choice((4, 5)),
        }[story]
        if rng.random() < 0.15:
            csat = None  # not every ticket gets a rating
        still_open = False
        # open severe tickets: one for steady accounts, two for declining ones, and three
        # fresh ones plus poor ratings for accounts that crashed in the last three weeks
        if (story == "steady" and j == 1) or (story == "declining" and j <= 2):
            severity, still_open, csat = 2, True, None
        if story == "crashing" and j <= 3:
            age, severity, still_open, csat = rng.randint(2, 12), 1 + j % 2, True, None
        elif story == "crashing" and j <= 6:
            age, csat = rng.randint(10, 19), rng.choice((1, 2))
        opened = today - timedelta(days=age)
        closed = None if still_open else min(today, opened + timedelta(days=rng.randint(1, 9)))
        out.append((
            f"{a.external_id}-T{j}", a.external_id, _stamp(opened, rng, 0),
            _stamp(closed, rng, 12) if closed else "", str(severity),
            "" if csat is None else str(csat),
        ))  # fmt: skip


def _invoices(rng: random.Random, a: Account, out: list[tuple[str, ...]], today: date) -> None:
    story = a.story
    quarter = a.arr / 4
    orders: list[tuple[date, float, int | None]] = []  # order day, amount, paid after (days)
    if story == "new":
        orders.append((a.contract_start, quarter, rng.randint(5, 20)))
    elif story == "overdue":
        # no order in the last three months, and the last invoice 45 days past due
        orders.append((today - timedelta(days=300), quarter, 20))
        orders.append((today - timedelta(days=210), quarter, 25))
        orders.append((today - timedelta(days=120), quarter, None))
    elif story == "declining":
        orders.append((today - timedelta(days=300), quarter, 15))
        orders.append((today - timedelta(days=200), quarter, 15))
        # purchases down two months in a row: 3, then 2, then 1 order per 30 days
        for age in (85, 75, 65, 55, 40, 10):
            orders.append((today - timedelta(days=age), quarter / 6, 10))
    else:
        for age in (350, 260, 170, 80):
            if today - timedelta(days=age) >= a.contract_start:
                orders.append((today - timedelta(days=age), quarter, rng.randint(3, 25)))
        if story == "growing":
            orders.append((today - timedelta(days=rng.randint(10, 40)), quarter * 0.3, 7))
        if story == "big_unhappy":
            orders.append((today - timedelta(days=rng.randint(20, 50)), 650_000.0, 10))
    for j, (day, amount, paid_after) in enumerate(orders, 1):
        due = day + timedelta(days=75 if story == "overdue" and paid_after is None else 30)
        paid = day + timedelta(days=paid_after) if paid_after is not None else None
        if paid is not None and paid > today:
            paid = None  # not yet paid, and not yet due either
        out.append((
            f"{a.external_id}-I{j}", a.external_id, f"{amount:.2f}", day.isoformat(),
            due.isoformat(), paid.isoformat() if paid else "",
        ))  # fmt: skip


def _nps(rng: random.Random, a: Account, out: list[tuple[str, ...]], today: date) -> None:
    """Responses of the last 180 days (the health signal) and from a year ago (NPS change)."""
    story = a.story
    recent = {
        "growing": (9, 10, 10), "steady": (7, 8, 9), "declining": (2, 4, 5, 6),
        "overdue": (6, 7, 8), "crashing": (2, 3), "big_unhappy": (4, 5, 6), "new": (9,),
    }[story]  # fmt: skip
    older = {"declining": (8, 9), "crashing": (8, 9, 10), "big_unhappy": (7, 8)}.get(
        story, (7, 8, 9)
    )
    responses: list[tuple[int, int]] = []  # (age in days, score)
    for _ in range(rng.randint(1, 3)):
        age = rng.randint(2, 10) if story == "crashing" else rng.randint(5, 170)
        responses.append((age, rng.choice(recent)))
    if story == "crashing":
        responses.append((rng.randint(40, 120), rng.choice(older)))
    if story != "new":
        responses.append((rng.randint(200, 360), rng.choice(older)))
    for j, (age, score) in enumerate(responses, 1):
        contact = a.contacts[j % len(a.contacts)]
        kind = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
        out.append((
            f"{a.external_id}-N{j}", a.external_id, contact[1], str(score),
            _stamp(today - timedelta(days=age), rng), rng.choice(_COMMENTS[kind]),
        ))  # fmt: skip


# --------------------------------------------------------------------------------------------
# Files and loading
# --------------------------------------------------------------------------------------------


def write_csv(
    outdir: Path, accounts: int, *, seed: int = DEFAULT_SEED, today: date | None = None
) -> dict[str, Path]:
    """Write the six CSV files into ``outdir``; returns kind -> path."""
    data = generate(accounts, seed=seed, today=today)
    outdir.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, name in FILES.items():
        path = outdir / name
        path.write_bytes(data.csv_bytes(kind))
        written[kind] = path
    return written


def ensure_csms(session: Session, count: int) -> list[User]:
    """The first ``count`` demo CSMs, created in the vendor organization when missing."""
    vendor = session.scalar(select(Organization).where(Organization.slug == VENDOR_SLUG))
    if vendor is None or vendor.kind != OrgKind.VENDOR:
        vendor = session.scalar(
            select(Organization)
            .where(Organization.kind == OrgKind.VENDOR)
            .order_by(Organization.id)
        )
    if vendor is None:
        vendor = Organization(slug=VENDOR_SLUG, name=VENDOR_NAME, kind=OrgKind.VENDOR)
        session.add(vendor)
        session.flush()
    users = []
    password_hash: str | None = None
    for email, name, locale in CSMS[:count]:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            password_hash = password_hash or hash_password(DEMO_PASSWORD)
            user = User(
                email=email, display_name=name, password_hash=password_hash, locale=locale,
                organization_id=vendor.id, email_confirmed_at=utcnow(),
            )  # fmt: skip
            user.role_grants.append(UserRole(role=str(Role.CSM)))
            session.add(user)
            session.flush()
        users.append(user)
    return users


@dataclass
class LoadResult:
    accounts: int
    rows: dict[str, int]
    csms: list[str]
    bands: dict[str, int]


ProgressFactory = Callable[[str], Callable[[int, int], None] | None]


def load(
    session_factory: Callable[[], Session],
    accounts: int,
    *,
    seed: int = DEFAULT_SEED,
    today: date | None = None,
    progress: ProgressFactory | None = None,
) -> LoadResult:
    """Import the demo files through ``service.queue_import`` / ``run_import`` (what the upload
    page's task and ``cocreate metrics import`` run), then recompute health for a few past days
    and today. Commits (a job runner, like ``run_import``); needs an app context."""
    today = today or utcnow().date()
    data = generate(accounts, seed=seed, today=today)
    with session_factory() as s:
        csms = [u.email for u in ensure_csms(s, csm_count(accounts))]
        s.commit()
    rows: dict[str, int] = {}
    for kind, name in FILES.items():
        payload = data.csv_bytes(kind)
        with session_factory() as s:
            job = service.queue_import(s, kind, name, io.BytesIO(payload), max_bytes=None)
            s.commit()
            job_id = job.id
        callback = progress(f"Importing {name}") if progress else None
        job = service.run_import(session_factory, job_id, progress_callback=callback)
        if job.status != JobStatus.DONE or job.error_count:
            raise DomainError(
                str(_l("The demo file %(name)s did not import cleanly.", name=name)), field=kind
            )
        rows[kind] = job.rows_done
    with session_factory() as s:
        _worklist(s, data)
        s.commit()
    bands: dict[str, int] = {}
    for days_back in RECOMPUTE_DAYS:
        day = today - timedelta(days=days_back)
        callback = progress(f"Health on {day.isoformat()}") if progress else None
        with session_factory() as s:
            run_id = service.queue_recompute(s, day=day).id
            s.commit()
        bands = service.run_recompute(session_factory, run_id, callback).summary["bands"]
    return LoadResult(accounts=accounts, rows=rows, csms=csms, bands=bands)


def _worklist(session: Session, data: DemoData) -> None:
    """A few referrals from promoters and improvement items for troubled accounts (the
    strategic and collaboration KPIs), once per account."""
    ids = dict(
        session.execute(select(AccountProfile.external_id, AccountProfile.organization_id)).all()
    )
    csm_ids = dict(session.execute(select(User.email, User.id)).all())
    have_referral = set(session.scalars(select(Referral.organization_id)))
    have_item = set(session.scalars(select(ImprovementItem.organization_id)))
    now = utcnow()
    for n, a in enumerate(data.accounts):
        org_id = ids.get(a.external_id)
        if org_id is None:
            continue
        csm_id = csm_ids.get(a.csm_email) if a.csm_email else None
        if a.story == "growing" and n % 3 == 0 and org_id not in have_referral:
            status = (ReferralStatus.CONVERTED, ReferralStatus.RECEIVED, ReferralStatus.ASKED)[
                n % 9 // 3
            ]
            session.add(
                Referral(
                    organization_id=org_id, csm_id=csm_id, referrer_email=a.contacts[1][1],
                    referred_company=f"Referred by {a.name}"[:200], status=status,
                    asked_at=now - timedelta(days=30 + n % 40),
                    received_at=None if status == ReferralStatus.ASKED else now - timedelta(
                        days=10 + n % 15
                    ),
                )
            )  # fmt: skip
        if a.story in ("declining", "big_unhappy", "crashing") and org_id not in have_item:
            department = ("support", "product", "engineering", "finance")[n % 4]
            session.add(
                ImprovementItem(
                    organization_id=org_id, department=department, csm_id=csm_id,
                    title=f"Recovery plan for {a.name}"[:300],
                    status=("open", "in_progress", "closed")[n % 3],
                    opened_at=now - timedelta(days=20 + n % 30),
                    closed_at=now - timedelta(days=n % 10) if n % 3 == 2 else None,
                )
            )  # fmt: skip
    session.flush()
