"""Deterministic demo data: ``cocreate demo load`` runs it any number of times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from moderation.models import ReasonTemplate, WatchedWordEntry
from moderation.service import date_item, promote_all
from portal.accounts.models import UserProfile
from portal.accounts.service import ABOUT_KIND, create_user, find_user, update_about
from portal.core.db import utcnow
from portal.core.history import Backdate
from portal.core.identity import Organization, OrganizationDomain, OrgKind, Role, User
from portal.core.notifications import Notification
from portal.gallery.demo import load_demo as load_gallery_demo
from portal.kb.demo import load_demo as load_kb_demo
from portal.qa.demo import load_demo as load_qa_demo
from portal.roadmap.demo import load_demo as load_roadmap_demo

DEMO_PASSWORD = "cocreate-demo-2026"  # noqa: S105 - printed demo sign-in, by design  # nosec B105
# The feature demos date their content back up to 120 days: their people joined before that.
JOINED_BEFORE_HISTORY_DAYS = 150


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: Role
    locale: str = "en"
    # Days since the person joined: newcomers (days < the demo's history) take no part in
    # it; they ask the questions that wait in the review queue as a new user's do.
    joined_days_ago: int = JOINED_BEFORE_HISTORY_DAYS


@dataclass(frozen=True)
class DemoOrg:
    slug: str
    name: str
    kind: OrgKind
    domain: str
    users: tuple[DemoUser, ...]


DEMO_ORGS: tuple[DemoOrg, ...] = (
    DemoOrg(
        "vendor",
        "Cocreate Software",
        OrgKind.VENDOR,
        "vendor.example",
        (
            DemoUser("admin@vendor.example", "Vera Admin", Role.VENDOR_ADMIN),
            DemoUser("moderator@vendor.example", "Mo Derator", Role.MODERATOR),
            DemoUser("csm@vendor.example", "Casey Success", Role.CSM),
            DemoUser("pm@vendor.example", "Priya Product", Role.PRODUCT_MANAGER),
        ),
    ),
    DemoOrg(
        "acme",
        "Acme Analytics",
        OrgKind.CUSTOMER,
        "acme.example",
        (
            DemoUser("alice@acme.example", "Alice Admin", Role.ORG_ADMIN),
            DemoUser("bob@acme.example", "Bob Builder", Role.MEMBER),
            DemoUser("nina@acme.example", "Nina Novak", Role.MEMBER, joined_days_ago=10),
        ),
    ),
    DemoOrg(
        "huaxin",
        "华信科技",
        OrgKind.CUSTOMER,
        "huaxin.example",
        (
            DemoUser("wang@huaxin.example", "王芳", Role.ORG_ADMIN, "zh_CN"),
            DemoUser("li@huaxin.example", "李雷", Role.MEMBER, "zh_CN"),
            DemoUser("chen@huaxin.example", "陈晨", Role.MEMBER, "zh_CN", joined_days_ago=9),
        ),
    ),
    DemoOrg(
        "globex",
        "Globex Retail",
        OrgKind.CUSTOMER,
        "globex.example",
        (
            DemoUser("gina@globex.example", "Gina Globex", Role.ORG_ADMIN),
            DemoUser("hank@globex.example", "Hank Hill", Role.MEMBER),
            DemoUser("gus@globex.example", "Gus Grant", Role.MEMBER, joined_days_ago=8),
        ),
    ),
    DemoOrg(
        "initech",
        "Initech Finance",
        OrgKind.CUSTOMER,
        "initech.example",
        (
            DemoUser("peter@initech.example", "Peter Gibbons", Role.ORG_ADMIN),
            DemoUser("joanna@initech.example", "Joanna Flair", Role.MEMBER),
        ),
    ),
    DemoOrg(
        "chenguang",
        "晨光制造",
        OrgKind.CUSTOMER,
        "chenguang.example",
        (
            DemoUser("zhao@chenguang.example", "赵敏", Role.ORG_ADMIN, "zh_CN"),
            DemoUser("sun@chenguang.example", "孙悟", Role.MEMBER, "zh_CN"),
        ),
    ),
)


DEMO_WATCHED_WORDS = (
    ("scamcoin", "block", ""),
    ("free money", "hold", ""),
    ("damn", "censor", ""),
    ("competitorx", "replace", "another vendor"),
    ("赌博", "block", ""),
    ("代开发票", "hold", ""),
    ("傻瓜", "censor", ""),
)
DEMO_REASON_TEMPLATES = (
    ("Advertising", "Advertising and self-promotion are not allowed in the community."),
    ("Off-topic", "This does not fit here; please post it in the right place."),
    ("Personal data", "Please do not post personal data such as phone numbers or contracts."),
)
# (email, trust level, about text): the newcomers' held for review as a new user's posts are,
# the others' published at once.
DEMO_ABOUT = (
    (
        "nina@acme.example",
        0,
        "New on Acme's analytics team: I build the monthly KPI reports. Ask me about "
        "**cohort charts**.",
    ),
    ("chen@huaxin.example", 0, "华信科技数据分析师，负责**客户成功**报表。"),
    ("gus@globex.example", 0, "Retail analytics. See my write-up at https://globex.example/blog"),
    ("alice@acme.example", 2, "Acme's admin for Cocreate. Happy to share our dashboard templates."),
    ("wang@huaxin.example", 3, "华信科技管理员，欢迎交流行业解决方案。"),
)


def load_demo(session: Session) -> list[tuple[str, str, str, str]]:
    """Create what is missing; return (organization, email, role, password) for every sign-in."""
    sign_ins = load_community(session)
    users = demo_users(session, sign_ins)
    load_qa_demo(session, users)
    load_kb_demo(session, users)
    load_roadmap_demo(session, users)
    load_gallery_demo(session, users)
    # The hourly promotion, as a running portal does: the levels the history earned.
    promote_all(session)
    # Members read their notifications as they came: only the last week's are still new.
    read_by = utcnow() - timedelta(days=7)
    session.execute(
        update(Notification)
        .where(Notification.read_at.is_(None), Notification.created_at < read_by)
        .values(read_at=read_by)
    )
    return sign_ins


def load_community(session: Session) -> list[tuple[str, str, str, str]]:
    """The demo organizations, their people and the moderation set-up (watched words, trust
    levels, profile texts), without any feature's content: what each feature's demo builds
    on, so a test of one feature's demo need not load the others'. Returns the sign-ins."""
    sign_ins: list[tuple[str, str, str, str]] = []
    for spec in DEMO_ORGS:
        org = session.scalar(select(Organization).where(Organization.slug == spec.slug))
        if org is None:
            org = Organization(slug=spec.slug, name=spec.name, kind=spec.kind)
            org.domains.append(OrganizationDomain(domain=spec.domain, verified=True))
            session.add(org)
            session.flush()
        for person in spec.users:
            if find_user(session, person.email) is None:
                user = create_user(
                    session,
                    org,
                    person.email,
                    person.name,
                    DEMO_PASSWORD,
                    roles=(person.role,),
                    locale=person.locale,
                    confirmed=True,
                )
                user.created_at = utcnow() - timedelta(days=person.joined_days_ago)
            sign_ins.append((spec.name, person.email, str(person.role), DEMO_PASSWORD))
    _load_moderation(session)
    return sign_ins


def demo_users(session: Session, sign_ins: list[tuple[str, str, str, str]]) -> dict[str, User]:
    """The demo's people by email, as the feature demos take them."""
    users = {email: find_user(session, email) for _org, email, _role, _pw in sign_ins}
    return {email: user for email, user in users.items() if user is not None}


def _load_moderation(session: Session) -> None:
    """Watched words in both languages, reason templates, trust levels and a few held items."""
    for pattern, action, replacement in DEMO_WATCHED_WORDS:
        if (
            session.scalar(select(WatchedWordEntry).where(WatchedWordEntry.pattern == pattern))
            is None
        ):
            session.add(WatchedWordEntry(pattern=pattern, action=action, replacement=replacement))
    for title, text in DEMO_REASON_TEMPLATES:
        if session.scalar(select(ReasonTemplate).where(ReasonTemplate.title == title)) is None:
            session.add(ReasonTemplate(title=title, text=text))
    session.flush()
    for email, level, about in DEMO_ABOUT:
        user = find_user(session, email)
        if user is None or session.get(UserProfile, user.id) is not None:
            continue
        user.trust_level = level
        step = Backdate(session)
        update_about(session, user, about)
        # Written on the day they joined, like the rest of their history.
        written = user.created_at + timedelta(hours=1)
        date_item(session, ABOUT_KIND, user.id, written)
        step.to(written)
