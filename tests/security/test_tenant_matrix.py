"""Tenant isolation: every route of the URL map x every role x own / other organization's objects.

``ACCESS`` gives every endpoint the rule of who may use it; a route added without an entry
fails ``test_every_route_has_an_access_rule`` by name. ``test_route_matrix`` then requests every
route as every role, with the ids of organization A's private objects (and, for organization
A's admin, organization B's), and checks that whoever the rule leaves out gets 404/403 (or, when
anonymous, the sign-in page or 401), that nobody ever gets 500, and that no response body,
allowed or not, carries another organization's private text.

Every request runs inside a savepoint rolled back after it, so a POST of one role (a
moderator removing an item, an admin deactivating a member) does not change what the next
role sees.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from portal.core.identity import User
from portal.qa.models import Question
from portal.roadmap.models import Idea
from tests.conftest import login
from tests.gallery_factories import manifest_bytes
from tests.security.world import DRAFT_SECRET, SECRET, Side, World, build

pytestmark = pytest.mark.sweep

# --- who may use what -----------------------------------------------------------------------

PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed in"  # any signed-in user
VIEW = "own org or staff"  # the object is private to its organization: its members and staff
AUTHOR = "author or moderator"  # the object's author (A's member) and moderators
MANAGER = "author or staff"  # gallery: the template's author and any vendor staff
ORG_ADMIN = "org admin"  # the organization's own admin, and vendor admins
ORG_ADMIN_OR_SELF = "the person, their org admin, vendor admins"  # user_id: A's member
SELF = "owner only"  # the signed-in user's own object (a token): nobody else
STAFF = "staff"  # any vendor staff
DRAFT = "staff (draft)"  # an unpublished KB article: vendor staff; everybody else 404
MODERATOR = "moderator"  # moderators and vendor admins
PRODUCT = "product staff"  # product managers and vendor admins
PRODUCT_OR_MODERATOR = "product staff or moderator"  # merging duplicate ideas
CS_VIEW = "cs staff"  # CSMs, product managers, vendor admins
CS_MANAGE = "cs manager"  # CSMs and vendor admins
VENDOR_ADMIN = "vendor admin"
DEV_ONLY = "development only"  # off in this app (DEV_OUTBOX=False): 404 for everyone

ACCESS: dict[str, str | tuple[str, str]] = {  # (GET rule, other methods' rule)
    # accounts
    "accounts.accept_invitation": PUBLIC,
    "accounts.change_password": SIGNED_IN,
    "accounts.change_role": ORG_ADMIN,
    "accounts.confirm_email": PUBLIC,
    "accounts.create_token": SIGNED_IN,
    "accounts.forgot_password": PUBLIC,
    "accounts.members": ORG_ADMIN,
    "accounts.profile": SIGNED_IN,
    "accounts.public_profile": SIGNED_IN,
    "accounts.reset_password": PUBLIC,
    "accounts.revoke_invitation": ORG_ADMIN,
    "accounts.revoke_token": SELF,
    "accounts.set_active": ORG_ADMIN,
    "accounts.sign_in": PUBLIC,
    "accounts.sign_out": PUBLIC,
    "accounts.sign_up": PUBLIC,
    "accounts.update_about": SIGNED_IN,
    # main
    "main.dev_outbox": DEV_ONLY,
    "main.favicon": PUBLIC,
    "main.healthz": PUBLIC,
    "main.home": PUBLIC,
    "main.notifications": SIGNED_IN,
    "main.preview": SIGNED_IN,
    "media.image": PUBLIC,
    "media.upload": SIGNED_IN,
    "main.read_notifications": SIGNED_IN,
    "main.set_locale": PUBLIC,
    "main.unsubscribe": PUBLIC,
    "static": PUBLIC,
    "bootstrap.static": PUBLIC,
    # qa
    "qa.accept": AUTHOR,
    "qa.answer_link": VIEW,
    "qa.answer_revisions": VIEW,
    "qa.ask": SIGNED_IN,
    "qa.close": MODERATOR,
    "qa.comment_answer": VIEW,
    "qa.comment_question": VIEW,
    "qa.duplicate": MODERATOR,
    "qa.edit_answer": AUTHOR,
    "qa.edit_question": AUTHOR,
    "qa.follow": VIEW,
    "qa.follow_tag": SIGNED_IN,
    "qa.helpful": VIEW,
    "qa.index": PUBLIC,
    "qa.post_answer": VIEW,
    "qa.question": VIEW,
    "qa.question_revisions": VIEW,
    "qa.reopen": MODERATOR,
    "qa.tagged": PUBLIC,
    "qa.vote_answer": VIEW,
    "qa.vote_question": VIEW,
    # kb
    "kb.article": DRAFT,
    "kb.categories": STAFF,
    "kb.category": PUBLIC,
    "kb.delete_article": STAFF,
    "kb.edit_article": STAFF,
    "kb.feedback": DRAFT,
    "kb.home": PUBLIC,
    "kb.move_category": STAFF,
    "kb.new_article": STAFF,
    "kb.promote": STAFF,
    "kb.rename_category": STAFF,
    "kb.settings": STAFF,
    "kb.versions": STAFF,
    # search
    "search.click": PUBLIC,
    "search.insights": STAFF,
    "search.results": PUBLIC,
    "search.suggest": PUBLIC,
    # roadmap (ideas are public; acting on them needs an account)
    "roadmap.admin": VENDOR_ADMIN,
    "roadmap.board": PUBLIC,
    "roadmap.change_status": PRODUCT,
    "roadmap.changelog": PUBLIC,
    "roadmap.comment": SIGNED_IN,
    "roadmap.feed": PUBLIC,
    "roadmap.idea": PUBLIC,
    "roadmap.impact": CS_VIEW,
    "roadmap.impact_csv": CS_VIEW,
    "roadmap.merge": PRODUCT_OR_MODERATOR,
    "roadmap.new": SIGNED_IN,
    "roadmap.subscribe": SIGNED_IN,
    "roadmap.unmerge": PRODUCT_OR_MODERATOR,
    "roadmap.unvote": SIGNED_IN,
    "roadmap.vote": SIGNED_IN,
    # gallery
    "gallery.download": VIEW,
    "gallery.index": PUBLIC,
    "gallery.manifest_json_schema": PUBLIC,
    "gallery.mine": SIGNED_IN,
    "gallery.new": SIGNED_IN,
    "gallery.new_version": MANAGER,
    "gallery.rate": VIEW,
    "gallery.review": VIEW,
    "gallery.template": VIEW,
    # moderation
    "moderation.approve": MODERATOR,
    "moderation.bulk": MODERATOR,
    "moderation.delete_word": MODERATOR,
    "moderation.flag": VIEW,
    "moderation.flag_content": VIEW,
    "moderation.lock_trust": MODERATOR,
    "moderation.queue": MODERATOR,
    "moderation.reject": MODERATOR,
    "moderation.remove": MODERATOR,
    "moderation.restore": MODERATOR,
    "moderation.settings": (MODERATOR, VENDOR_ADMIN),
    "moderation.stats": MODERATOR,
    "moderation.words": MODERATOR,
    # customer success (staff pages; the NPS survey is the customers' side)
    "cs.account": CS_VIEW,
    "cs.account_export": CS_VIEW,
    "cs.account_override": CS_MANAGE,
    "cs.account_override_revoke": CS_MANAGE,
    "cs.accounts": CS_VIEW,
    "cs.accounts_export": CS_VIEW,
    "cs.alert_channel": CS_VIEW,
    "cs.alerts": CS_VIEW,
    "cs.alerts_csv": CS_VIEW,
    "cs.close_alert": CS_MANAGE,
    "cs.delete_rule": VENDOR_ADMIN,
    "cs.edit_rule": VENDOR_ADMIN,
    "cs.health_model": (CS_VIEW, VENDOR_ADMIN),
    "cs.health_model_export": CS_VIEW,
    "cs.import_errors": CS_VIEW,
    "cs.import_job": CS_VIEW,
    "cs.import_status": CS_VIEW,
    "cs.imports": (CS_VIEW, CS_MANAGE),
    "cs.imports_export": CS_VIEW,
    "cs.recompute_now": CS_MANAGE,
    "cs.recompute_run": CS_VIEW,
    "cs.recompute_status": CS_VIEW,
    "cs.improvement_edit": CS_MANAGE,
    "cs.improvement_new": CS_MANAGE,
    "cs.improvement_status": CS_MANAGE,
    "cs.improvements": CS_VIEW,
    "cs.improvements_csv": CS_VIEW,
    "cs.new_rule": VENDOR_ADMIN,
    "cs.nps": CS_VIEW,
    "cs.nps_csv": CS_VIEW,
    "cs.portfolio": CS_VIEW,
    "cs.portfolio_export": CS_VIEW,
    "cs.referral": CS_VIEW,
    "cs.referral_new": CS_MANAGE,
    "cs.referrals": CS_VIEW,
    "cs.referrals_csv": CS_VIEW,
    "cs.rule": CS_VIEW,
    "cs.rules": CS_VIEW,
    "cs.scorecard": CS_VIEW,
    "cs.scorecard_csv": CS_VIEW,
    "cs.settings": (CS_VIEW, VENDOR_ADMIN),
    "cs.survey_answer": SIGNED_IN,
    "cs.survey_dismiss": SIGNED_IN,
    "cs.targets": VENDOR_ADMIN,  # but targets.csv is for all CS staff (reported)
    "cs.targets_csv": CS_VIEW,
    "cs.task": CS_VIEW,
    "cs.task_cancel": CS_MANAGE,
    "cs.task_complete": CS_MANAGE,
    "cs.task_referral": CS_MANAGE,
    "cs.tasks": CS_VIEW,
    "cs.tasks_csv": CS_VIEW,
    "cs.toggle_rule": VENDOR_ADMIN,
    "cs.audit": VENDOR_ADMIN,
    "cs.audit_csv": VENDOR_ADMIN,
    # privacy: one's own data, the organization's (its admin), erasure
    "accounts.update_consent": SIGNED_IN,
    "accounts.update_mail": SIGNED_IN,
    "privacy.index": SIGNED_IN,
    "privacy.request_export": SIGNED_IN,
    "privacy.request_org_export": ORG_ADMIN,
    "privacy.download": SELF,
    "privacy.erase_self": SIGNED_IN,
    "privacy.erase_member": ORG_ADMIN_OR_SELF,
    "privacy.delete_organization": VENDOR_ADMIN,
    # JSON API (a personal access token per role; anonymous sends none)
    "api.accept": AUTHOR,
    "api.ask": SIGNED_IN,
    "api.change_status": PRODUCT,
    "api.comment": SIGNED_IN,
    "api.create_idea": SIGNED_IN,
    "api.cs_account": CS_VIEW,
    "api.cs_account_health": CS_VIEW,
    "api.cs_account_nps": CS_VIEW,
    "api.cs_accounts": CS_VIEW,
    "api.cs_import": CS_MANAGE,
    "api.cs_import_job": CS_MANAGE,
    "api.cs_recompute": CS_MANAGE,
    "api.cs_recompute_run": CS_VIEW,
    "api.cs_kpis": CS_VIEW,
    "api.cs_nps": CS_VIEW,
    "api.download": VIEW,
    "api.flag_item": VIEW,
    "api.flag_content": VIEW,
    "api.get_idea": SIGNED_IN,
    "api.get_template": VIEW,
    "api.kb_article": DRAFT,
    "api.kb_articles": SIGNED_IN,
    "api.kb_create_article": STAFF,
    "api.kb_feedback": DRAFT,
    "api.kb_update_article": STAFF,
    "api.list_ideas": SIGNED_IN,
    "api.list_questions": SIGNED_IN,
    "api.list_templates": SIGNED_IN,
    "api.me": SIGNED_IN,
    "api.merge": PRODUCT_OR_MODERATOR,
    "api.moderation_decision": MODERATOR,
    "api.moderation_queue": MODERATOR,
    "api.openapi": PUBLIC,
    "api.organization": VIEW,
    "api.organization_members": ORG_ADMIN,
    "api.post_answer": VIEW,
    "api.question": VIEW,
    "api.rate": VIEW,
    "api.search": SIGNED_IN,
    "api.share": SIGNED_IN,
    "api.upload_image": SIGNED_IN,
    "api.unmerge": PRODUCT_OR_MODERATOR,
    "api.unvote": SIGNED_IN,
    "api.update_me": SIGNED_IN,
    "api.upload_version": MANAGER,
    "api.vote": SIGNED_IN,
    "api.vote_answer": VIEW,
    "api.vote_question": VIEW,
}

ROLES = ("anonymous", "member_a", "admin_a", "member_b", "moderator", "csm", "pm", "vendor_admin")
STAFF_ROLES = {"moderator", "csm", "pm", "vendor_admin"}
RULE_ROLES = {
    STAFF: STAFF_ROLES,
    DRAFT: STAFF_ROLES,
    MODERATOR: {"moderator", "vendor_admin"},
    PRODUCT: {"pm", "vendor_admin"},
    PRODUCT_OR_MODERATOR: {"pm", "vendor_admin", "moderator"},
    CS_VIEW: {"csm", "pm", "vendor_admin"},
    CS_MANAGE: {"csm", "vendor_admin"},
    VENDOR_ADMIN: {"vendor_admin"},
    DEV_ONLY: set(),
}


def allowed(rule: str, role: str, side: Side) -> bool:
    """Whether ``role`` may use a route of ``rule`` on ``side``'s objects."""
    own = role.endswith("_" + side.key)
    if rule == PUBLIC:
        return True
    if rule == SIGNED_IN:
        return role != "anonymous"
    if rule == VIEW:
        return own or role in STAFF_ROLES
    if rule == AUTHOR:
        return (own and role.startswith("member")) or role in RULE_ROLES[MODERATOR]
    if rule == MANAGER:
        return (own and role.startswith("member")) or role in STAFF_ROLES
    if rule == ORG_ADMIN:
        return (own and role.startswith("admin")) or role == "vendor_admin"
    if rule == ORG_ADMIN_OR_SELF:
        return own or role == "vendor_admin"
    if rule == SELF:
        return own and role.startswith("member")
    return role in RULE_ROLES[rule]


# --- the URLs ---------------------------------------------------------------------------------


def url_values(endpoint: str, arguments: set[str], world: World, side: Side) -> dict[str, Any]:
    """Values for a rule's arguments: ``side``'s private objects, or shared staff objects."""
    cs_item = endpoint.startswith("cs.improvement")
    values = {
        "question_id": side.question_id,
        "answer_id": side.answer_id,
        # The generic flag route: the kind and the id of side's private question.
        "kind": "question",
        "object_id": side.question_id,
        "idea_id": world.merged_idea_id if endpoint.endswith("unmerge") else side.idea_id,
        "template_id": side.template_id,
        "invitation_id": side.invitation_id,
        "token_id": side.token_id,
        "user_id": side.member.id,
        "org_id": side.org.id,
        "item_id": world.improvement_id if cs_item else side.item_id,
        "article_id": world.article_id,
        "category_id": world.category_id,
        "slug": world.category_slug,
        "entry_id": world.word_id,
        "rule_id": world.rule_id,
        "task_id": world.task_id,
        "referral_id": world.referral_id,
        "alert_id": 1,
        "job_id": 1,
        "run_id": 1,
        "tag": "dashboards",
        "channel": "email",
        "token": "not-a-real-token",
        "table": TABLES.get(endpoint, "bands"),
        "filename": "css/bootstrap.min.css" if endpoint == "bootstrap.static" else "app.css",
    }
    # An argument this table does not know yet (a new route) gets a placeholder id.
    return {name: values.get(name, 1) for name in arguments}


TABLES = {"cs.account_export": "history", "cs.nps_csv": "segment", "cs.scorecard_csv": "kpis"}
# Arguments that name no real row: an allowed role may get 404.
PLACEHOLDERS = {"alert_id", "job_id", "run_id", "token"}
KNOWN_ARGUMENTS = {
    "question_id", "answer_id", "idea_id", "template_id", "invitation_id", "token_id",
    "user_id", "org_id", "item_id", "article_id", "category_id", "slug", "entry_id", "rule_id",
    "task_id", "referral_id", "alert_id", "job_id", "run_id", "tag", "channel", "token", "table",
    "filename", "kind", "object_id",
}  # fmt: skip
PLACEHOLDERS |= {"export_id"}  # no export in the world: its owner gets 404 too


# Fields a form might read, valid where they can be, so that a view that forgot a check would
# act (and be caught) rather than refuse the input.
def form_data(world: World, side: Side) -> dict[str, str]:
    return {
        "title": "A perfectly ordinary title for the matrix",
        "body": "A perfectly ordinary body of text for the tenant matrix test.",
        "description": "A perfectly ordinary description for the tenant matrix test.",
        "text": "Some text for the matrix",
        "comment": "A comment for the matrix",
        "reason": "spam",
        "note": "A note",
        "name": "Matrix",
        "email": "someone@example.com",
        "role": "member",
        "status": "planned",
        "response": "Planned for next quarter.",
        "value": "1",
        "stars": "5",
        "score": "9",
        "importance": "2",
        "helpful": "yes",
        "target": str(world.public_question_id),
        "target_id": str(world.target_idea_id),
        "answer_id": str(side.answer_id),
        "scope": "read",
        "active": "0",
        "department": "product",
        "outcome": "Called them",
        "done-outcome": "Called them",
        "cancel-outcome": "Not needed",
        "org_id": str(side.org.id),
    }


def api_body(endpoint: str, world: World, side: Side) -> dict[str, Any]:
    """A valid JSON body for each API operation that takes one."""
    return {
        "api.accept": {"answer_id": side.answer_id},
        "api.ask": {"title": "How do I export every dashboard?", "body": "Every Monday."},
        "api.change_status": {"status": "planned", "response": "Next quarter."},
        "api.comment": {"body": "Same here, every week."},
        "api.create_idea": {"title": "Export all dashboards", "description": "Every Monday."},
        "api.flag_item": {"reason": "spam"},
        "api.flag_content": {"kind": "question", "object_id": side.question_id, "reason": "spam"},
        "api.kb_create_article": {"title": "Matrix", "body": "Steps.", "language": "en"},
        "api.kb_feedback": {"helpful": True},
        "api.kb_update_article": {"title": "Matrix edit"},
        "api.merge": {"target_id": world.target_idea_id},
        "api.moderation_decision": {"action": "approve"},
        "api.post_answer": {"body": "Open the share menu and pick a group."},
        "api.rate": {"stars": 5},
        "api.update_me": {"display_name": "Matrix Name"},
        "api.vote": {"importance": 2},
        "api.vote_answer": {"value": 1},
        "api.vote_question": {"value": 1},
    }.get(endpoint, {})


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(out, "PNG")
    return out.getvalue()


def api_files(endpoint: str) -> dict[str, Any] | None:
    """Multipart bodies: a valid template file (or CSV) and the required fields."""
    if endpoint == "api.share":
        return {"title": "Matrix template", "file": (io.BytesIO(manifest_bytes()), "t.json")}
    if endpoint == "api.upload_version":
        return {"changelog": "Faster.", "file": (io.BytesIO(manifest_bytes("9.9.9")), "t.json")}
    if endpoint == "api.upload_image":
        return {"file": (io.BytesIO(png_bytes()), "chart.png")}
    if endpoint == "api.cs_import":
        return {"kind": "accounts", "file": (io.BytesIO(b"external_id,name\nX-1,X\n"), "a.csv")}
    return None


@dataclass
class Outcome:
    method: str
    status: int
    location: str
    body: str
    flashes: list[tuple[str, str]]


def request(
    client: FlaskClient,
    endpoint: str,
    method: str,
    url: str,
    token: str | None,
    world: World,
    side: Side,
) -> Outcome | Exception:
    api = url.startswith("/api/")
    headers = {"Authorization": f"Bearer {token}"} if token and api else {}
    try:
        if method == "GET":
            response = client.get(url, headers=headers)
        elif api and (files := api_files(endpoint)) is not None:
            response = client.open(url, method=method, data=files, headers=headers)
        elif api:
            response = client.open(
                url, method=method, json=api_body(endpoint, world, side), headers=headers
            )
        else:
            response = client.open(url, method=method, data=form_data(world, side))
    except Exception as error:  # noqa: BLE001 - TESTING re-raises what would be a 500
        return error
    body = response.get_data(as_text=True) if not response.is_streamed else ""
    response.close()
    flashes: list[tuple[str, str]] = []
    if response.status_code == 302:
        with client.session_transaction() as flask_session:
            flashes = list(flask_session.pop("_flashes", []))
    return Outcome(method, response.status_code, response.location or "", body, flashes)


SIGN_IN = re.compile(r"/sign-in(\?|$)")


def judge(outcome: Outcome, rule: str, role: str, side: Side, placeholder: bool) -> str | None:
    """What is wrong with ``outcome``, or None. A refusal may be 403/404 (a page), a redirect
    to sign-in (anonymous), or, from a button, a redirect with an error message and no
    success message (``portal.core.web.perform``)."""
    status = outcome.status
    if status >= 500:
        return f"{status}"
    if rule == DEV_ONLY:
        return None if status == 404 else f"{status}, expected 404"
    to_sign_in = status == 302 and bool(SIGN_IN.search(outcome.location))
    if not allowed(rule, role, side):
        if role == "anonymous" and (to_sign_in or status in (401, 403, 404)):
            return None
        if role != "anonymous" and status in (403, 404):
            return None
        categories = {category for category, _message in outcome.flashes}
        if status == 302 and not to_sign_in and categories and "success" not in categories:
            return None
        if status in (400, 409, 422):
            return f"NOTE {status}: input checked before permission (nothing changed)"
        return f"{status} {outcome.location} {outcome.flashes}, expected a refusal"
    if outcome.method == "GET" and (status in (401, 403, 404) or to_sign_in):
        if status == 404 and placeholder:
            return None
        return f"{status} {outcome.location}, expected the page (allowed)"
    return None


def leaked(outcome: Outcome, role: str) -> str | None:
    """Private text of an organization the role is not part of."""
    body = outcome.body.lower()
    for key, secret in SECRET.items():
        if role.endswith("_" + key) or role in STAFF_ROLES:
            continue
        if secret.lower() in body:
            return f"shows organization {key.upper()}'s private text"
    if role not in STAFF_ROLES and DRAFT_SECRET.lower() in body:
        return "shows an unpublished KB article"
    return None


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"DEV_OUTBOX": False}


def _rules(app: Flask) -> list[Any]:
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint, r.rule))


def test_every_route_has_an_access_rule(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - ACCESS.keys())
    assert not missing, (
        "Routes without an access rule in tests/security/test_tenant_matrix.py ACCESS: "
        + ", ".join(missing)
    )
    stale = sorted(ACCESS.keys() - endpoints)
    assert not stale, "ACCESS entries for routes that no longer exist: " + ", ".join(stale)
    blueprints = {e.split(".")[0] for e in endpoints if "." in e}
    assert {
        "accounts",
        "main",
        "qa",
        "kb",
        "search",
        "roadmap",
        "gallery",
        "moderation",
        "cs",
        "api",
    } <= blueprints


def test_route_matrix(app: Flask, session: Session, connection: Connection) -> None:
    world = build(app, session)
    users: dict[str, User] = world.users()
    clients: dict[str, FlaskClient] = {"anonymous": app.test_client()}
    for name, user in users.items():
        clients[name] = login(app.test_client(), user)

    problems: list[str] = []
    notes: list[str] = []
    spent: Counter[str] = Counter()
    checked: Counter[str] = Counter()
    routes = 0
    for rule in _rules(app):
        access = ACCESS[rule.endpoint]
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        has_objects = bool(rule.arguments - {"filename", "tag", "token", "table", "channel"})
        placeholder = bool(rule.arguments & PLACEHOLDERS or rule.arguments - KNOWN_ARGUMENTS)
        routes += len(methods)
        for role in ROLES:
            # Customers of organization A also try organization B's objects (the admin is
            # the strongest customer); everybody else uses A's, which are B's "other".
            sides = [world.a, world.b] if has_objects and role.endswith("_a") else [world.a]
            for side in sides:
                with app.test_request_context():
                    url = url_for(
                        rule.endpoint,
                        **url_values(rule.endpoint, set(rule.arguments), world, side),
                    )
                for method in methods:
                    method_rule = access if isinstance(access, str) else access[method != "GET"]
                    if role != "anonymous":  # sign-out, deactivation, a password change...
                        login(clients[role], users[role])
                    nested = connection.begin_nested()
                    started = time.perf_counter()
                    try:
                        result = request(
                            clients[role],
                            rule.endpoint,
                            method,
                            url,
                            world.tokens.get(role),
                            world,
                            side,
                        )
                    finally:
                        nested.rollback()
                        session.expire_all()
                    checked[role] += 1
                    spent[rule.endpoint] += time.perf_counter() - started
                    where = (
                        f"{method} {url} as {role} (objects of {side.key.upper()}, {method_rule})"
                    )
                    if isinstance(result, Exception):
                        problems.append(f"{where}: 500 {type(result).__name__}: {result}")
                        continue
                    verdict = judge(result, method_rule, role, side, placeholder)
                    for problem in (verdict, leaked(result, role)):
                        if problem and problem.startswith("NOTE"):
                            notes.append(f"{where}: {problem}")
                        elif problem:
                            problems.append(f"{where}: {problem}")
    # Controls: the marker is on the pages its own organization sees, so its absence means something.
    own = login(clients["member_a"], users["member_a"]).get(f"/questions/{world.a.question_id}")
    assert SECRET["a"] in own.get_data(as_text=True)
    total = sum(checked.values())
    print(
        f"\ntenant matrix: {routes} route-methods ({len(ACCESS)} endpoints) x {len(ROLES)} roles,"
        f" {total} requests checked, {len(problems)} problems, {len(notes)} notes"
    )
    print("\n".join(notes))
    print("slowest:", [(e, round(t, 2)) for e, t in spent.most_common(15)])
    assert not problems, "\n".join(problems)


# --- mass assignment ---------------------------------------------------------------------------

OWNER_FIELDS = {
    "organization_id": None,  # filled with organization B's id
    "author_id": None,  # filled with B's member
    "user_id": None,
    "role": "vendor_admin",
    "is_staff": True,
    "trust_level": 4,
}


def _owner_fields(world: World) -> dict[str, Any]:
    return {
        **OWNER_FIELDS,
        "organization_id": world.b.org.id,
        "author_id": world.b.member.id,
        "user_id": world.b.member.id,
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/v1/me", {"display_name": "New name"}),
        (
            "POST",
            "/api/v1/questions",
            {"title": "How do I export all dashboards at once?", "body": "Need every one."},
        ),
        (
            "POST",
            "/api/v1/ideas",
            {"title": "Export all dashboards at once", "description": "Every Monday by hand."},
        ),
    ],
)
def test_api_refuses_owner_fields_with_422(
    app: Flask, session: Session, method: str, path: str, body: dict[str, Any]
) -> None:
    world = build(app, session)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {world.tokens['member_a']}"}
    for name, value in _owner_fields(world).items():
        response = client.open(path, method=method, json={**body, name: value}, headers=headers)
        assert response.status_code == 422, (path, name, response.status_code)
        assert name in response.get_json()["error"]["fields"], (path, name)
    user = session.get(User, world.a.member.id)
    session.refresh(user)
    assert user.organization_id == world.a.org.id and not user.is_staff
    assert user.trust_level == 3 and {g.role for g in user.role_grants} == {"member"}


def test_forms_ignore_owner_fields(app: Flask, session: Session) -> None:
    world = build(app, session)
    member = world.a.member
    client = login(app.test_client(), member)
    extra = {k: str(v) for k, v in _owner_fields(world).items()}

    response = client.post(
        "/questions/ask",
        data={
            "title": "How do I export every dashboard at once?",
            "body": "We need all of them every Monday morning.",
            "tags": "exports",
            **extra,
        },
    )
    assert response.status_code in (200, 302), response.status_code
    question = session.scalars(select(Question).order_by(Question.id.desc())).first()
    assert question.title == "How do I export every dashboard at once?"
    assert (question.organization_id, question.author_id) == (world.a.org.id, member.id)

    response = client.post(
        "/roadmap/new",
        data={
            "title": "Export every dashboard at once",
            "description": "We do it by hand every Monday morning.",
            "product_area": "dashboards",
            **extra,
        },
    )
    assert response.status_code in (200, 302), response.status_code
    idea = session.scalars(select(Idea).order_by(Idea.id.desc())).first()
    assert idea.title == "Export every dashboard at once"
    assert (idea.organization_id, idea.author_id) == (world.a.org.id, member.id)

    client.post("/profile", data={"display_name": "Renamed Member", "locale": "en", **extra})
    client.post("/profile/about", data={"text": "About me", "about": "About me", **extra})
    session.expire_all()
    user = session.get(User, member.id)
    assert user.organization_id == world.a.org.id and not user.is_staff
    assert user.trust_level == 3 and {g.role for g in user.role_grants} == {"member"}


def test_org_admin_cannot_grant_staff_roles(app: Flask, session: Session) -> None:
    world = build(app, session)
    client = login(app.test_client(), world.a.admin)
    member = world.a.member
    for role in ("vendor_admin", "moderator", "csm", "product_manager"):
        response = client.post(
            f"/orgs/{world.a.org.id}/members/{member.id}/role", data={"role": role}
        )
        assert response.status_code in (200, 302, 400, 403, 422), (role, response.status_code)
        response = client.post(
            f"/orgs/{world.a.org.id}/members",
            data={"email": f"new-{role}@example.com", "role": role},
        )
        assert response.status_code in (200, 302, 400, 403, 422), (role, response.status_code)
    session.expire_all()
    user = session.get(User, member.id)
    assert {g.role for g in user.role_grants} <= {"member", "org_admin"} and not user.is_staff
    from portal.accounts.models import Invitation

    roles = set(session.scalars(select(Invitation.role)))
    assert roles <= {"member", "org_admin"}, roles


def test_customers_cannot_vote_on_behalf_of_someone_else(app: Flask, session: Session) -> None:
    from portal.roadmap.models import IdeaVote

    world = build(app, session)
    client = app.test_client()
    for role in ("member_a", "admin_a"):
        response = client.post(
            f"/api/v1/ideas/{world.target_idea_id}/vote",
            json={"importance": 3, "on_behalf_of": world.b.member.id},
            headers={"Authorization": f"Bearer {world.tokens[role]}"},
        )
        assert response.status_code == 403, (role, response.status_code)
    voters = set(session.scalars(select(IdeaVote.user_id)))
    assert world.b.member.id not in voters
