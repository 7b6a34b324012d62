"""No page's SQL grows with the data it lists: every page, as every role sees it.

The pages the suite already counts (the question list, the board, the queue, the gallery...)
have their own tests; this covers the rest, and the next page someone adds. Every GET route
of the URL map is opened with the objects of the security world (``tests/security/world.py``)
as each signed-in role, after one round of growth (one more of everything a page can list:
answers, comments, votes, questions, ideas, templates and their ratings, articles,
notifications, held posts and flags, members and invitations, customer accounts, NPS
responses, tasks, improvements, referrals) and again after a second round. A page that runs
more statements the second time runs a query per row: the kind of page that is fast in a demo
and slow for a vendor with a thousand customers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from cs_metrics import service as cs_service
from cs_metrics import worklist
from moderation import service as moderation
from moderation.models import ModerationSetting
from portal.accounts import service as accounts
from portal.core.db import utcnow
from portal.core.identity import User
from portal.core.notifications import notify
from portal.gallery import service as gallery
from portal.kb import service as kb
from portal.qa import service as qa
from portal.roadmap import service as roadmap
from tests.conftest import login, statements_during
from tests.cs_factories import AccountFactory, NpsFactory
from tests.factories import OrganizationFactory, UserFactory
from tests.gallery_factories import Gallery
from tests.security.test_tenant_matrix import url_values
from tests.security.world import World, build, call

pytestmark = pytest.mark.sweep

ROLES = ("member_a", "admin_a", "vendor_admin", "moderator", "csm", "pm")
NOT_PAGES = {"accounts.sign_out", "main.favicon", "static", "bootstrap.static"}
# Pages known to read a row at a time, with what bounds them; each is a fix still to make.
BOUNDED = {
    # moderation.recent_posts loads each of the person's newest published posts through its
    # kind (ModeratableKind.load, one statement each, more for a URL through a parent): at
    # most 30 of them. A batch load per kind would make it constant.
    "accounts.public_profile",
}


def grow(app: Flask, session: Session, world: World, round_: int) -> None:
    """One more of everything a page lists, around organization A's objects and the shared
    ones (organization B's pages are A's seen from outside, and are not opened here)."""
    a = world.a
    peer = UserFactory(organization=a.org, trust_level=3, display_name=f"Peer {round_}")
    newcomer = UserFactory(organization=a.org, trust_level=0, display_name=f"New {round_}")
    # Q&A: an answer, comments and votes on A's private question; a question of its own.
    answer = call(app, session, qa.answer, peer, a.question_id, f"Another way, take {round_}.")
    call(
        app,
        session,
        qa.comment,
        peer,
        f"Does this still work? ({round_})",
        question_id=a.question_id,
    )
    call(app, session, qa.comment, a.member, f"It does, thanks ({round_}).", answer_id=answer.id)
    call(app, session, qa.vote, peer, 1, question_id=a.question_id)
    call(app, session, qa.vote, a.member, 1, answer_id=answer.id)
    call(app, session, qa.vote, peer, 1, answer_id=a.answer_id)
    call(app, session, qa.follow, peer, a.question_id)
    question = call(
        app,
        session,
        qa.ask,
        peer,
        title=f"How do I schedule report number {round_}?",
        body=f"The scheduler only offers daily runs; we need hourly ones ({round_}).",
        tags=["dashboards", f"round-{round_}"],
    )
    call(
        app, session, qa.answer, a.member, question.id, f"Hourly runs come with the API ({round_})."
    )
    # Held work for the queue: a newcomer's post with a link, and a flag on a published one.
    call(
        app,
        session,
        qa.ask,
        newcomer,
        f"Where is export {round_}?",
        f"See https://example.com/{round_}",
    )
    item_id = moderation.item_id(session, qa.QUESTION_KIND, question.id)
    call(app, session, moderation.flag, a.member, item_id, "spam")
    # Roadmap: an idea of its own, and a vote, a comment and a follower on A's idea.
    idea = call(
        app,
        session,
        roadmap.submit_idea,
        peer,
        title=f"Hourly schedules, wish {round_}",
        description=f"Daily is too slow for the operations team ({round_}).",
        product_area="dashboards",
        tags=["exports"],
    )
    call(app, session, roadmap.vote, a.member, idea.id)
    call(app, session, roadmap.vote, peer, a.idea_id)
    call(app, session, roadmap.comment, peer, a.idea_id, f"We need this too ({round_}).")
    call(app, session, roadmap.subscribe, peer, a.idea_id)
    # Gallery: a template of its own with a second version, rated, reviewed and downloaded.
    factory = Gallery(app, session)
    template = factory.template(peer, title=f"Hourly report {round_}", visibility="organization")
    factory.version(template, "1.1.0", author=peer)
    for template_id in (template.id, a.template_id):
        rater = a.member if template_id == template.id else peer
        call(app, session, gallery.rate, rater, template_id, 4)
        call(app, session, gallery.review, rater, template_id, f"Saved us an hour ({round_}).")
        call(app, session, gallery.download, rater, template_id)
    # Knowledge base: a published article in the world's category.
    call(
        app,
        session,
        kb.create_article,
        world.vendor_admin,
        title=f"Scheduling reports, part {round_}",
        body=f"Open the report, choose Schedule, pick the hours ({round_}).",
        language="en",
        category_id=world.category_id,
        tags="setup",
        published=True,
    )
    # People: a notification for every signed-in role, an invitation, a token.
    for user in world.users().values():
        notify(session, user, "test", f"Something happened ({round_}).", "/questions/")
    call(app, session, accounts.invite, a.admin, a.org, f"new-{round_}@example.com", "member")
    call(app, session, accounts.create_api_token, peer, f"token {round_}", "read")
    # Customer success: another account in the CSM's book, NPS, tasks, improvements.
    org = OrganizationFactory(name=f"Customer {round_}")
    AccountFactory(organization_id=org.id, csm_id=world.csm.id)
    contact = UserFactory(organization=org)
    for org_id, score in ((a.org.id, 3), (org.id, 9)):
        NpsFactory(organization_id=org_id, score=score, comment=f"Round {round_}")
    call(app, session, worklist.open_loop_tasks, utcnow() - timedelta(days=30))
    call(app, session, worklist.ask_referral, world.csm, org.id)
    call(
        app,
        session,
        worklist.create_improvement,
        world.csm,
        a.org.id,
        department="support",
        title=f"Faster replies {round_}",
    )
    call(app, session, roadmap.vote, contact, a.idea_id)
    call(app, session, cs_service.recompute, utcnow().date())
    session.flush()


def _pages(app: Flask, world: World) -> Iterator[str]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES | BOUNDED:
            continue
        if rule.rule.startswith(("/api/", "/static")):
            continue
        with app.test_request_context():
            values = url_values(rule.endpoint, set(rule.arguments), world, world.a)
            yield url_for(rule.endpoint, **values)


def _count(client: FlaskClient, connection: Connection, url: str) -> int | None:
    """Statements of a GET of ``url`` the second time (the first fills what a process
    remembers, as any page after a deploy); None unless it is a page (200, HTML)."""
    client.get(url).close()
    response, statements = statements_during(connection, lambda: client.get(url))
    page = response.status_code == 200 and response.mimetype == "text/html"
    response.close()
    return len(statements) if page else None


def _counts(
    app: Flask, connection: Connection, world: World, users: dict[str, User]
) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for role in ROLES:
        client = login(app.test_client(), users[role])
        for url in _pages(app, world):
            count = _count(client, connection, url)
            if count is not None:
                counts[(role, url)] = count
    return counts


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"DEV_OUTBOX": False}


def test_no_page_runs_more_statements_when_it_has_more_to_show(
    app: Flask, session: Session, connection: Connection
) -> None:
    world = build(app, session)
    users = world.users()
    # Two rounds of posts within a minute, by the same few people: no posting limit applies.
    limits = {str(level): [1000, 10000] for level in range(5)}
    session.add(ModerationSetting(key="rules", value={"rate_limits": limits}))
    session.flush()
    grow(app, session, world, 1)
    once = _counts(app, connection, world, users)
    grow(app, session, world, 2)
    twice = _counts(app, connection, world, users)
    grown = [
        f"{url} as {role}: {once[(role, url)]} statements, then {twice[(role, url)]}"
        for role, url in sorted(once)
        if (role, url) in twice and twice[(role, url)] > once[(role, url)]
    ]
    pages = {url for _role, url in once}
    print(f"\n{len(pages)} pages, {len(once)} page views counted twice")
    assert len(pages) >= 60, sorted(pages)  # the world reached its pages
    assert not grown, "pages whose statements grow with their rows:\n" + "\n".join(grown)
