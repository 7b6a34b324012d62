"""A member's public profile lists their recent posts of every kind, as each viewer may see
them: another organization's member never learns of a private question or an
organization-only template."""

from __future__ import annotations

import re

from sqlalchemy import select

from moderation import service as moderation
from moderation.models import ModerationItem
from portal.core.identity import Role
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.gallery_factories import Gallery
from tests.qa_factories import QA, member
from tests.roadmap_factories import Roadmap


def recent_posts(client, user_id: int) -> list[str]:
    html = client.get(f"/users/{user_id}").get_data(as_text=True)
    section = html.split('aria-labelledby="recent-posts"')[1].split("</section>")[0]
    return re.findall(r'class="recent-post-summary[^"]*">([^<]+)</a>', section)


def test_the_profile_lists_recent_posts_each_viewer_may_see_newest_first(app, client, session):
    qa = QA(app, session)
    author = member(display_name="Pat Poster")
    asked = qa.question(author, title="How do I schedule a dashboard export?")
    private = qa.question(author, title="Our contract renewal terms", private=True)
    qa.answer(qa.question(), author, body="Use the schedule button on the dashboard.")
    Roadmap(app, session).idea(author, title="Export dashboards to PDF")
    Gallery(app, session).template(author, title="Internal board pack", visibility="organization")
    hidden = qa.question(author, title="A question a moderator hid")
    item_id = session.scalar(
        select(ModerationItem.id).where(
            ModerationItem.kind == "question", ModerationItem.object_id == hidden.id
        )
    )
    qa(moderation.hide, staff(Role.MODERATOR), item_id, "off topic")

    outsider = UserFactory()
    login(client, outsider)
    seen = recent_posts(client, author.id)
    assert [s.split(":")[0] for s in seen] == [
        "Export dashboards to PDF",
        "Use the schedule button on the dashboard.",
        asked.title,
    ]
    page = client.get(f"/users/{author.id}").get_data(as_text=True)
    assert private.title not in page and "Internal board pack" not in page
    assert f'href="http://localhost/questions/{asked.id}"' in page

    colleague = UserFactory(organization=author.organization)
    login(client, colleague)
    seen = recent_posts(client, author.id)
    assert seen[0].startswith("Internal board pack") and len(seen) == 5
    assert any(s.startswith(private.title) for s in seen)


def test_a_member_without_posts_is_said_to_have_none_in_their_language(app, client, session):
    quiet = UserFactory(display_name="Quinn Quiet")
    reader = UserFactory(locale="zh_CN")
    login(client, reader)
    page = client.get(f"/users/{quiet.id}").get_data(as_text=True)
    assert "最近的帖子" in page and "还没有公开的帖子。" in page


def test_authors_names_lead_to_their_profiles_while_their_accounts_are_active(app, client, session):
    qa = QA(app, session)
    author = member(display_name="Pat Poster")
    question = qa.question(author)
    replier = member(display_name="Rory Replier")
    qa.answer(question, replier)
    replier.active = False  # deactivated: the profile is gone for members, so no link
    session.flush()
    login(client, UserFactory())
    page = client.get(f"/questions/{question.id}").get_data(as_text=True)
    assert f'href="/users/{author.id}">Pat Poster</a>' in page
    assert "Rory Replier" in page and f'href="/users/{replier.id}"' not in page
    listed = client.get("/questions/").get_data(as_text=True)
    assert f'href="/users/{author.id}">Pat Poster</a>' in listed
    replier_question = qa.question(replier)
    listed = client.get("/questions/").get_data(as_text=True)
    assert replier_question.title in listed and f'href="/users/{replier.id}"' not in listed
    idea = Roadmap(app, session).idea(author)
    page = client.get(f"/roadmap/ideas/{idea.id}").get_data(as_text=True)
    assert f'href="/users/{author.id}">Pat Poster</a>' in page
    board = client.get("/roadmap/").get_data(as_text=True)
    assert f'href="/users/{author.id}">Pat Poster</a>' in board
    leaver = member(display_name="Lee Leaver")
    Roadmap(app, session).idea(leaver, title="An idea whose author left")
    leaver.active = False
    session.flush()
    board = client.get("/roadmap/").get_data(as_text=True)
    assert "An idea whose author left" in board and f'href="/users/{leaver.id}"' not in board
