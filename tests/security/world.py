"""A small world of two customer organizations and vendor staff, with one object of every kind
a route takes an id of, for the tenant-isolation matrix and the API fuzzing.

Each organization's private objects carry a marker string in their text, so a test can look
for another organization's data in any response body whatever the page looks like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from cs_metrics import playbooks, worklist
from moderation import service as moderation
from portal.accounts import service as accounts
from portal.core.db import utcnow
from portal.core.identity import Organization, Role, User
from portal.kb import service as kb
from portal.qa import service as qa
from portal.roadmap import service as roadmap
from tests import cs_factories, kb_factories
from tests.cs_factories import AccountFactory, NpsFactory
from tests.factories import OrganizationFactory, UserFactory, VendorFactory, staff
from tests.gallery_factories import Gallery

# Text only the owning organization (and vendor staff) may ever see.
SECRET = {"a": "Zqx7SecretAlpha", "b": "Zqx7SecretBravo"}
DRAFT_SECRET = "Zqx7SecretDraft"  # an unpublished KB article: staff only


@dataclass
class Side:
    """One customer organization: a member (author of every object), an org admin, and the
    organization's private objects."""

    key: str
    org: Organization
    member: User
    admin: User
    question_id: int
    answer_id: int
    idea_id: int
    template_id: int
    invitation_id: int
    token_id: int
    item_id: int  # the moderation item of the private question


@dataclass
class World:
    a: Side
    b: Side
    moderator: User
    csm: User
    pm: User
    vendor_admin: User
    category_id: int
    category_slug: str
    article_id: int
    word_id: int
    rule_id: int
    task_id: int
    referral_id: int
    improvement_id: int
    public_question_id: int  # a duplicate target
    target_idea_id: int  # a merge target
    merged_idea_id: int  # an idea merged into target_idea_id (for unmerge)
    tokens: dict[str, str]  # role name -> raw write token

    def users(self) -> dict[str, User]:
        return {
            "member_a": self.a.member,
            "admin_a": self.a.admin,
            "member_b": self.b.member,
            "moderator": self.moderator,
            "csm": self.csm,
            "pm": self.pm,
            "vendor_admin": self.vendor_admin,
        }


def call(app: Flask, session: Session, function: Any, *args: Any, **kwargs: Any) -> Any:
    """A service call in an app context popped again before the next request."""
    with app.app_context():
        result = function(session, *args, **kwargs)
        session.flush()
        return result


def _side(app: Flask, session: Session, key: str) -> Side:
    secret = SECRET[key]
    org = OrganizationFactory(name=f"Org {key.upper()}")
    member = UserFactory(organization=org, trust_level=3, display_name=f"Member {key.upper()}")
    admin = UserFactory(
        organization=org, trust_level=3, roles=[Role.ORG_ADMIN], display_name=f"Admin {key}"
    )
    question = call(
        app,
        session,
        qa.ask,
        member,
        title=f"Private question {secret} about our dashboards",
        body=f"Our internal numbers {secret} must stay within the organization.",
        tags=["dashboards"],
        private=True,
    )
    answer = call(
        app, session, qa.answer, member, question.id, f"Private answer {secret} with details."
    )
    idea = call(
        app,
        session,
        roadmap.submit_idea,
        member,
        title=f"Schedule exports for org {key}",
        description="We export dashboards by hand every Monday.",
        product_area="dashboards",
        tags=["exports"],
    )
    template = Gallery(app, session).template(
        member, title=f"Private template {secret}", visibility="organization"
    )
    invitation = call(
        app,
        session,
        accounts.invite,
        admin,
        org,
        f"invitee-{secret.lower()}@example.com",
        str(Role.MEMBER),
    )
    token, _raw = call(app, session, accounts.create_api_token, member, "matrix", "write")
    item_id = moderation.item_id(session, qa.QUESTION_KIND, question.id)
    assert item_id is not None
    return Side(
        key=key,
        org=org,
        member=member,
        admin=admin,
        question_id=question.id,
        answer_id=answer.id,
        idea_id=idea.id,
        template_id=template.id,
        invitation_id=invitation.id,
        token_id=token.id,
        item_id=item_id,
    )


def build(app: Flask, session: Session) -> World:
    kb_factories.bind(session)
    cs_factories.bind(session)
    vendor = VendorFactory()
    moderator = staff(Role.MODERATOR, organization=vendor, display_name="Mo Moderator")
    csm = staff(Role.CSM, organization=vendor, display_name="Carla CSM")
    pm = staff(Role.PRODUCT_MANAGER, organization=vendor, display_name="Pat PM")
    vendor_admin = staff(Role.VENDOR_ADMIN, organization=vendor, display_name="Val Admin")
    a, b = _side(app, session, "a"), _side(app, session, "b")

    category = call(app, session, kb.create_category, vendor_admin, "setup", "Setup", "设置")
    article = call(
        app,
        session,
        kb.create_article,
        vendor_admin,
        title=f"Draft {DRAFT_SECRET}",
        body=f"Unreleased steps {DRAFT_SECRET}.",
        language="en",
        category_id=category.id,
        tags="setup",
        published=False,
    )
    word = call(app, session, moderation.add_watched_word, moderator, "spamword", "block")

    for side in (a, b):
        AccountFactory(organization_id=side.org.id, csm_id=csm.id)
    NpsFactory(organization_id=a.org.id, score=2, comment="Support never answers")
    call(app, session, worklist.open_loop_tasks, utcnow() - timedelta(days=30))
    from cs_metrics.models import CsTask

    task_id = session.query(CsTask.id).order_by(CsTask.id.desc()).limit(1).scalar()
    referral = call(app, session, worklist.ask_referral, csm, a.org.id)
    improvement = call(
        app,
        session,
        worklist.create_improvement,
        csm,
        a.org.id,
        department="sales",
        title="Pricing",
    )
    rule = call(
        app,
        session,
        playbooks.create_rule,
        vendor_admin,
        name="Low health",
        expression="health_score < 40",
    )
    public_question = call(
        app,
        session,
        qa.ask,
        b.member,
        title="How do I share a dashboard with another team?",
        body="A public question other questions can duplicate.",
        tags=["dashboards"],
    )
    target_idea = call(
        app,
        session,
        roadmap.submit_idea,
        b.member,
        title="Export dashboards on a schedule",
        description="A public idea other ideas merge into.",
        product_area="dashboards",
        tags=["exports"],
    )
    merged_idea = call(
        app,
        session,
        roadmap.submit_idea,
        a.member,
        title="Weekly scheduled dashboard exports",
        description="Same wish in other words.",
        product_area="dashboards",
        tags=["exports"],
    )
    call(app, session, roadmap.merge, pm, merged_idea.id, target_idea.id)
    tokens = {}
    for name, user in {
        "member_a": a.member,
        "admin_a": a.admin,
        "member_b": b.member,
        "moderator": moderator,
        "csm": csm,
        "pm": pm,
        "vendor_admin": vendor_admin,
    }.items():
        _token, raw = call(app, session, accounts.create_api_token, user, "matrix", "write")
        tokens[name] = raw
    return World(
        a=a,
        b=b,
        moderator=moderator,
        csm=csm,
        pm=pm,
        vendor_admin=vendor_admin,
        category_id=category.id,
        category_slug=category.slug,
        article_id=article.id,
        word_id=word.id,
        rule_id=rule.id,
        task_id=task_id,
        referral_id=referral.id,
        improvement_id=improvement.id,
        public_question_id=public_question.id,
        target_idea_id=target_idea.id,
        merged_idea_id=merged_idea.id,
        tokens=tokens,
    )
