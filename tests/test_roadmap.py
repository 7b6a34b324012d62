"""Roadmap through its public surface: service rules, moderation and search hooks, activity."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cs_metrics.settings import set_setting
from moderation import service as moderation
from moderation.models import ModerationItem
from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, NotFound, PermissionDenied
from portal.core.identity import Role
from portal.core.notifications import Notification
from portal.roadmap import search, service
from portal.roadmap.models import (
    Idea,
    IdeaComment,
    IdeaMerge,
    IdeaSubscription,
    IdeaVote,
    StatusChange,
)
from tests import cs_factories
from tests.factories import OrganizationFactory, staff
from tests.roadmap_factories import Roadmap, member, product_manager


@pytest.fixture
def rm(app, session) -> Roadmap:
    return Roadmap(app, session)


@pytest.fixture
def pm(session):
    return product_manager(display_name="Pat PM")


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def verbs(session, verb: str) -> list[Activity]:
    session.expire_all()
    return list(session.scalars(select(Activity).where(Activity.verb == verb)))


def fresh(session, idea: Idea) -> Idea:
    session.expire_all()
    return session.get(Idea, idea.id)


# --- submitting and moderation --------------------------------------------------------------


def test_a_trusted_member_submits_an_idea_published_subscribed_and_recorded(rm, session):
    author = member()
    idea = rm.idea(author, tags="Exports, PDF")
    assert idea.published is True and idea.status == "open"
    assert idea.tag_names == ["exports", "pdf"]
    assert count(session, IdeaSubscription, IdeaSubscription.user_id == author.id) == 1
    assert [a.subject_id for a in verbs(session, "idea.created")] == [idea.id]
    assert count(session, StatusChange, StatusChange.idea_id == idea.id) == 1
    assert moderation.item_state(session, "idea", idea.id) == "published"


def test_a_new_members_idea_waits_for_a_moderator_and_is_hidden_until_approved(rm, session, client):
    from tests.conftest import login

    idea = rm.idea(member(trust_level=0))
    assert idea.published is False
    assert client.get(f"/roadmap/ideas/{idea.id}").status_code == 404
    with pytest.raises(NotFound):
        rm.vote(member(), idea)
    moderator = staff(Role.MODERATOR)
    item_id = moderation.item_id(session, "idea", idea.id)
    rm(moderation.approve, moderator, item_id)
    assert fresh(session, idea).published is True
    login(client, member())
    assert client.get(f"/roadmap/ideas/{idea.id}").status_code == 200


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"title": "Tiny"}, "title"),
        ({"description": "  "}, "description"),
        ({"tags": "a b c d e f"}, "tags"),
        ({"product_area": "nowhere"}, "product_area"),
    ],
)
def test_bad_ideas_name_the_field_and_write_nothing(rm, session, values, field):
    with pytest.raises(DomainError) as error:
        rm.idea(member(), **values)
    assert error.value.field == field
    assert count(session, Idea) == 0 and count(session, ModerationItem) == 0


def test_ideas_are_indexed_for_search_and_merged_ones_leave(rm, session, pm):
    one, two = rm.idea(title="Export dashboards to Excel"), rm.idea()
    docs = search.load_ideas(session, [one.id, two.id])
    assert {d.object_id for d in docs} == {one.id, two.id}
    assert docs[0].url.startswith("/roadmap/ideas/")
    rm(service.merge, pm, one.id, two.id)
    session.expire_all()
    assert [d.object_id for d in search.load_ideas(session, [one.id, two.id])] == [two.id]
    assert {i for i, _ in search.catalog_ideas(session)} == {two.id}


# --- voting ---------------------------------------------------------------------------------


def test_vote_is_one_per_user_idempotent_removable_and_counted(rm, session):
    idea, voter = rm.idea(), member()
    first = rm.vote(voter, idea, 3)
    assert first.changed and first.vote_count == 1
    again = rm.vote(voter, idea, 3)
    assert not again.changed and again.vote_count == 1
    assert "already" in again.message
    changed = rm.vote(voter, idea, 1)
    assert changed.changed and changed.vote_count == 1
    assert session.scalar(select(IdeaVote.importance)) == 1
    rm.vote(member(), idea)
    assert fresh(session, idea).vote_count == 2
    removed = rm(service.unvote, voter, idea.id)
    assert removed.changed and removed.vote_count == 1
    twice = rm(service.unvote, voter, idea.id)
    assert not twice.changed and twice.vote_count == 1
    assert count(session, IdeaVote) == 1 == fresh(session, idea).vote_count
    assert len(verbs(session, "idea.voted")) == 2 and len(verbs(session, "idea.unvoted")) == 1
    assert count(session, IdeaSubscription, IdeaSubscription.user_id == voter.id) == 1


def test_importance_must_be_one_of_three_levels(rm, session):
    idea = rm.idea()
    for bad in (0, 4, "x", True):
        with pytest.raises(DomainError) as error:
            rm.vote(member(), idea, bad)
        assert error.value.field == "importance"
    assert count(session, IdeaVote) == 0


def test_the_vote_budget_refuses_over_budget_and_shipping_returns_votes(rm, session, pm):
    admin = staff(Role.VENDOR_ADMIN)
    rm(service.set_vote_budget, admin, 2)
    voter = member()
    a, b, c = rm.idea(), rm.idea(), rm.idea()
    rm.vote(voter, a)
    rm.vote(voter, b)
    with pytest.raises(Conflict) as error:
        rm.vote(voter, c)
    assert "2" in error.value.message
    assert count(session, IdeaVote, IdeaVote.user_id == voter.id) == 2
    assert fresh(session, c).vote_count == 0
    rm(service.change_status, pm, a.id, "shipped", "Out in 5.2")
    assert rm.vote(voter, c).changed
    with pytest.raises(PermissionDenied):
        rm(service.set_vote_budget, pm, 5)


def test_staff_vote_on_behalf_of_a_contact_is_marked(rm, session):
    csm, contact = staff(Role.CSM), member()
    idea = rm.idea()
    result = rm.vote(csm, idea, 3, on_behalf_of=contact.id)
    assert result.changed
    row = session.scalars(select(IdeaVote)).one()
    assert (row.user_id, row.organization_id, row.on_behalf_by_id) == (
        contact.id,
        contact.organization_id,
        csm.id,
    )
    with pytest.raises(PermissionDenied):
        rm.vote(member(), idea, 2, on_behalf_of=contact.id)
    with pytest.raises(DomainError) as error:
        rm.vote(csm, idea, 2, on_behalf_of=staff(Role.CSM).id)
    assert error.value.field == "on_behalf_of"


def test_a_vote_on_a_merged_idea_lands_on_its_target(rm, session, pm):
    source, target = rm.idea(), rm.idea()
    rm(service.merge, pm, source.id, target.id)
    result = rm.vote(member(), source)
    assert result.idea_id == target.id
    assert fresh(session, target).vote_count == 1 and fresh(session, source).vote_count == 0


# --- statuses and notifications ------------------------------------------------------------


def test_status_changes_keep_history_notify_subscribers_and_record_shipping(rm, session, pm):
    author = member()
    idea = rm.idea(author)
    voters = [member(), member(organization=OrganizationFactory())]
    reader = member(locale="zh_CN")  # told in their own language, whoever changed it
    for voter in [*voters, reader]:
        rm.vote(voter, idea)
    rm(service.change_status, pm, idea.id, "planned", "On the Q3 roadmap.")
    rm(service.change_status, pm, idea.id, "shipped", "Done.", "Scheduled exports in 5.2")
    idea = fresh(session, idea)
    assert idea.status == "shipped" and idea.shipped_at is not None
    assert "Scheduled exports" in idea.release_notes_html
    history = session.scalars(
        select(StatusChange).where(StatusChange.idea_id == idea.id).order_by(StatusChange.id)
    ).all()
    assert [h.to_status for h in history] == ["open", "planned", "shipped"]
    assert "Q3" in history[1].response_html
    for person in [author, *voters]:
        notes = session.scalars(
            select(Notification.message)
            .where(Notification.user_id == person.id)
            .order_by(Notification.id)
        ).all()
        assert len(notes) == 2 and "Shipped" in notes[1]
    notes = session.scalars(
        select(Notification.message)
        .where(Notification.user_id == reader.id)
        .order_by(Notification.id)
    ).all()
    assert "已计划" in notes[0] and "已发布" in notes[1] and "Shipped" not in notes[1]
    assert count(session, Notification, Notification.user_id == pm.id) == 0
    shipped = verbs(session, "idea.shipped")
    assert len(shipped) == 1
    assert shipped[0].data["organization_ids"] == sorted(
        {v.organization_id for v in [*voters, reader]}
    )
    assert len(verbs(session, "idea.status_changed")) == 2
    assert idea in rm(service.changelog)


def test_customers_cannot_change_status_and_unknown_statuses_are_refused(rm, session, pm):
    idea = rm.idea()
    with pytest.raises(PermissionDenied):
        rm(service.change_status, member(), idea.id, "planned", "")
    with pytest.raises(DomainError) as error:
        rm(service.change_status, pm, idea.id, "someday", "")
    assert error.value.field == "status"
    assert count(session, StatusChange) == 1


def test_a_daily_digest_sends_one_mail_per_user_not_one_per_event(rm, session, pm, outbox):
    voter = member()
    ideas = [rm.idea() for _ in range(3)]
    for idea in ideas:
        rm.vote(voter, idea)
        rm(service.change_status, pm, idea.id, "under_review", "Looking")
    sent = rm(service.send_digests)
    mails = outbox(voter.email)
    assert len(mails) == 1 and sent >= 1
    assert all(idea.title in mails[0].body for idea in ideas)
    assert rm(service.send_digests) == 0  # nothing new since the last run
    assert len(outbox(voter.email)) == 1


# --- merging --------------------------------------------------------------------------------


def _snapshot(session, *ideas):
    session.expire_all()
    out = {}
    for idea in ideas:
        out[idea.id] = (
            session.get(Idea, idea.id).vote_count,
            count(session, IdeaVote, IdeaVote.idea_id == idea.id),
            sorted(session.scalars(select(IdeaVote.user_id).where(IdeaVote.idea_id == idea.id))),
            sorted(session.scalars(select(IdeaComment.id).where(IdeaComment.idea_id == idea.id))),
            sorted(
                session.scalars(
                    select(IdeaSubscription.user_id).where(IdeaSubscription.idea_id == idea.id)
                )
            ),
            session.get(Idea, idea.id).status,
        )
    return out


def test_merge_moves_votes_without_double_counting_and_undo_restores_exactly(rm, session, pm):
    source, target = rm.idea(), rm.idea()
    both, only_source, only_target = member(), member(), member()
    rm.vote(both, source, 3)
    rm.vote(both, target, 1)
    rm.vote(only_source, source)
    rm.vote(only_target, target)
    note = rm(service.comment, member(), source.id, "Same as the other one")
    rm(service.change_status, pm, source.id, "under_review", "")
    before = _snapshot(session, source, target)
    assert before[source.id][0] == 2 and before[target.id][0] == 2

    rm(service.merge, pm, source.id, target.id)
    after = _snapshot(session, source, target)
    assert after[source.id][:2] == (0, 0)
    assert after[target.id][0] == after[target.id][1] == 3  # "both" counted once
    assert after[target.id][2] == sorted([both.id, only_source.id, only_target.id])
    assert note.id in after[target.id][3]
    assert after[source.id][5] == "duplicate"
    # the target keeps its own vote's importance for the person who voted on both
    assert (
        session.scalar(
            select(IdeaVote.importance).where(
                IdeaVote.user_id == both.id, IdeaVote.idea_id == target.id
            )
        )
        == 1
    )

    rm(service.unmerge, pm, source.id)
    assert _snapshot(session, source, target) == before
    assert fresh(session, source).merged_into_id is None
    assert (
        session.scalar(
            select(IdeaVote.importance).where(
                IdeaVote.user_id == both.id, IdeaVote.idea_id == source.id
            )
        )
        == 3
    )
    assert session.scalars(select(IdeaMerge.undone_at)).one() is not None


def test_merge_into_itself_a_merged_idea_or_twice_is_refused(rm, session, pm):
    a, b, c = rm.idea(), rm.idea(), rm.idea()
    with pytest.raises(DomainError):
        rm(service.merge, pm, a.id, a.id)
    rm(service.merge, pm, a.id, b.id)
    with pytest.raises(DomainError):
        rm(service.merge, pm, c.id, a.id)  # a points to b: would chain
    with pytest.raises(Conflict):
        rm(service.merge, pm, a.id, c.id)
    rm(service.merge, pm, b.id, c.id)
    with pytest.raises(DomainError):
        rm(service.merge, pm, c.id, b.id)  # b is merged: no cycle
    with pytest.raises(Conflict):
        rm(service.unmerge, pm, a.id)  # b was merged since: undo that first
    with pytest.raises(PermissionDenied):
        rm(service.merge, member(), c.id, a.id)
    rm(service.unmerge, pm, b.id)
    rm(service.unmerge, pm, a.id)
    assert count(session, Idea, Idea.merged_into_id.is_not(None)) == 0


# --- comments -------------------------------------------------------------------------------


def test_comments_are_moderated_and_counted_when_published(rm, session):
    idea = rm.idea()
    rm(service.comment, member(), idea.id, "We need this for finance.")
    held = rm(service.comment, member(trust_level=0), idea.id, "Me too")
    assert fresh(session, idea).comment_count == 1
    assert held.published is False
    item_id = moderation.item_id(session, "idea_comment", held.id)
    rm(moderation.approve, staff(Role.MODERATOR), item_id)
    assert fresh(session, idea).comment_count == 2


def roadmap_news(session, user) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(
            select(Notification.message)
            .where(Notification.user_id == user.id, Notification.kind == service.NOTIFICATION_KIND)
            .order_by(Notification.id)
        )
    )


def test_the_author_hears_of_comments_and_followers_of_the_vendors(rm, session, pm):
    author, voter, newcomer = member(), member(), member(trust_level=0)
    idea = rm.idea(author, title="Schedule dashboard exports to email")
    rm.vote(voter, idea)  # voters follow the ideas they vote for
    rm(service.comment, voter, idea.id, "We need this for finance.")
    assert roadmap_news(session, author) == [
        "New comment on your idea “Schedule dashboard exports to email”"
    ]
    assert roadmap_news(session, voter) == []  # one's own comment, a customer's

    rm(service.comment, pm, idea.id, "Which formats do you need: PDF or Excel?")
    expected = "The product team commented on “Schedule dashboard exports to email”"
    assert roadmap_news(session, voter) == [expected]
    assert roadmap_news(session, author)[-1] == expected

    held = rm(service.comment, newcomer, idea.id, "Excel please")
    assert len(roadmap_news(session, author)) == 2  # not before it is published
    rm(
        moderation.approve,
        staff(Role.MODERATOR),
        moderation.item_id(session, "idea_comment", held.id),
    )
    assert len(roadmap_news(session, author)) == 3


# --- trending and impact --------------------------------------------------------------------


def test_trending_follows_the_formula_in_sql(rm, session):
    idea = rm.idea()
    for _ in range(3):
        rm.vote(member(), idea)
    rm(service.comment, member(), idea.id, "Yes please")
    session.execute(
        Idea.__table__.update()
        .where(Idea.id == idea.id)
        .values(created_at=utcnow() - timedelta(hours=10))
    )
    rm(service.refresh_trending)
    expected = (3 * 5 + 1 * 3 - 1) / (10 + 2) ** 1.4
    assert fresh(session, idea).trending == pytest.approx(expected, rel=1e-3)


def test_impact_weights_by_arr_and_counts_risk(rm, session):
    cs_factories.bind(session)
    healthy, red, renewing, unknown = (OrganizationFactory() for _ in range(4))
    cs_factories.AccountFactory(organization_id=healthy.id, arr=Decimal("100000"))
    cs_factories.AccountFactory(organization_id=red.id, arr=Decimal("50000"))
    cs_factories.AccountFactory(
        organization_id=renewing.id,
        arr=Decimal("20000"),
        renewal_date=utcnow().date() + timedelta(days=30),
    )
    cs_factories.SnapshotFactory(organization_id=red.id, band="red", effective_band="red")
    cs_factories.SnapshotFactory(
        organization_id=red.id,
        day=utcnow().date() - timedelta(days=5),
        band="green",
        effective_band="green",
    )
    idea, other = rm.idea(), rm.idea()
    for org in (healthy, red, renewing, unknown):
        rm.vote(member(organization=org), idea)
    rm.vote(member(organization=healthy), idea)  # a second voter of the same org
    rm.vote(member(organization=red), other)
    csm = staff(Role.CSM)
    rows = rm(service.impact_rows, csm, "arr_at_risk")
    top = rows[0]
    assert top.idea_id == idea.id
    assert top.revenue_score == Decimal("170000")
    assert top.arr_at_risk == Decimal("70000")
    assert len(top.organizations) == 4
    by_votes = rm(service.impact_rows, csm, "votes")
    assert by_votes[0].vote_count == 5
    with pytest.raises(PermissionDenied):
        rm(service.impact_rows, member())
    with pytest.raises(PermissionDenied):
        rm(service.impact_rows, staff(Role.MODERATOR))


def test_impact_keeps_a_csm_to_their_own_book_when_the_setting_says_so(rm, session):
    cs_factories.bind(session)
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    csm, other_csm, admin = staff(Role.CSM), staff(Role.CSM), staff(Role.VENDOR_ADMIN)
    cs_factories.AccountFactory(organization_id=mine.id, arr=Decimal("10000"), csm_id=csm.id)
    cs_factories.AccountFactory(
        organization_id=theirs.id, arr=Decimal("90000"), csm_id=other_csm.id
    )
    cs_factories.SnapshotFactory(organization_id=theirs.id, band="red", effective_band="red")
    idea = rm.idea()
    for org in (mine, theirs):
        rm.vote(member(organization=org), idea)

    def seen_by(viewer) -> dict[int, tuple]:
        (row,) = rm(service.impact_rows, viewer, "revenue")
        return {o.organization_id: (o.facts.arr, o.facts.health_band) for o in row.organizations}

    everything = {mine.id: (Decimal("10000"), None), theirs.id: (Decimal("90000"), "red")}
    assert seen_by(csm) == everything  # the setting is off: every CSM sees every account
    rm(set_setting, admin, "own_book_only", True)
    assert seen_by(csm) == {mine.id: (Decimal("10000"), None), theirs.id: (None, None)}
    assert seen_by(admin) == everything
    assert rm(service.idea_view, csm, idea.id).impact.revenue_score == Decimal("10000")


def test_impact_works_without_any_cs_data(rm, session):
    idea = rm.idea()
    rm.vote(member(), idea)
    rows = rm(service.impact_rows, product_manager(), "revenue")
    assert rows[0].revenue_score == 0 and rows[0].arr_at_risk == 0


def test_status_labels_are_editable_by_vendor_admins_only(rm, session):
    admin = staff(Role.VENDOR_ADMIN)
    rm(service.set_status_label, admin, "planned", "Coming soon", "#123ABC")
    labels = rm(service.status_labels)
    assert (labels["planned"].label, labels["planned"].color) == ("Coming soon", "#123abc")
    assert labels["open"].label == "Open"
    with pytest.raises(DomainError) as error:
        rm(service.set_status_label, admin, "planned", "X", "red")
    assert error.value.field == "color"
    with pytest.raises(PermissionDenied):
        rm(service.set_status_label, product_manager(), "planned", "Y", "#000000")


# --- demo data ------------------------------------------------------------------------------


def test_demo_data_has_forty_ideas_votes_from_every_org_a_merge_and_a_changelog(app, session):
    from portal.core.identity import Organization
    from portal.demo import demo_users, load_community
    from portal.roadmap import demo

    users = demo_users(session, load_community(session))
    customer_orgs = set(
        session.scalars(select(Organization.id).where(Organization.kind == "customer"))
    )
    with app.app_context():
        assert demo.load_demo(session, users) == 40
        assert demo.load_demo(session, users) == 0  # idempotent
        session.flush()
    assert count(session, Idea, Idea.published.is_(True)) == 40
    titles = session.scalars(select(Idea.title)).all()
    chinese = [t for t in titles if any("\u4e00" <= ch <= "\u9fff" for ch in t)]
    assert len(chinese) == 20
    voting_orgs = set(session.scalars(select(IdeaVote.organization_id)))
    assert len(customer_orgs) == 5 and customer_orgs <= voting_orgs
    assert count(session, Idea, Idea.merged_into_id.is_not(None)) == 1
    assert len(service.changelog(session)) >= 5
    assert {i.status for i in session.scalars(select(Idea))} >= {
        "open",
        "under_review",
        "planned",
        "in_progress",
        "shipped",
        "declined",
        "duplicate",
    }
    for idea in session.scalars(select(Idea)):
        assert idea.vote_count == count(session, IdeaVote, IdeaVote.idea_id == idea.id)
