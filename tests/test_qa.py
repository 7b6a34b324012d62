"""Q&A through its public surface: the service rules, the pages, moderation and search hooks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from moderation import service as moderation
from moderation.models import ModerationItem
from portal.core import mail
from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, NotFound, PermissionDenied
from portal.core.identity import Role
from portal.core.notifications import Notification
from portal.qa import search, service, signals
from portal.qa.models import (
    Answer,
    Follow,
    HelpfulMark,
    Question,
    Reputation,
    Revision,
    Tag,
    Vote,
)
from tests.conftest import count_statements, login, statements_during
from tests.factories import OrganizationFactory, staff
from tests.qa_factories import QA, member


@pytest.fixture
def qa(app, session) -> QA:
    return QA(app, session)


@pytest.fixture
def moderator(session):
    return staff(Role.MODERATOR, display_name="Mona Moderator")


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def verbs(session, verb: str) -> list[Activity]:
    session.expire_all()
    return list(session.scalars(select(Activity).where(Activity.verb == verb)))


# --- asking -----------------------------------------------------------------------------------


def test_a_trusted_member_asks_and_it_is_published_with_revision_follow_and_activity(qa, session):
    asker = member()
    question = qa.question(
        asker,
        title="How do I export a report template?",
        tags="Reports  PDF reports",
        private=False,
    )
    assert question.published is True
    assert [t.name for t in question.tags] == ["pdf", "reports"]
    assert count(session, Tag) == 2
    assert count(session, Revision, Revision.question_id == question.id) == 1
    assert count(session, Follow, Follow.user_id == asker.id) == 1
    asked = verbs(session, "question.asked")
    assert len(asked) == 1 and asked[0].data == {"private": False, "title": question.title}
    assert asked[0].subject_id == question.id


def test_a_new_members_question_awaits_review_and_is_hidden_from_others(qa, client, session):
    newcomer = member(trust_level=0)
    question = qa.question(newcomer)
    assert question.published is False
    assert moderation.item_state(session, "question", question.id) == "pending"
    login(client, newcomer)
    page = client.get(f"/questions/{question.id}")
    assert page.status_code == 200 and "Awaiting review" in page.get_data(as_text=True)
    login(client, member())
    assert client.get(f"/questions/{question.id}").status_code == 404
    assert question.title not in client.get("/questions/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"title": "Too short"}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"body": "   "}, "body"),
        ({"tags": "a b c d e f"}, "tags"),
        ({"tags": ["bad tag!"]}, "tags"),
        ({"product_area": "nowhere"}, "product_area"),
    ],
)
def test_bad_questions_name_the_field_and_write_nothing(qa, session, values, field):
    with pytest.raises(DomainError) as error:
        qa.question(member(), **values)
    assert error.value.field == field
    assert count(session, Question) == 0 and count(session, Activity) == 0


# --- private questions --------------------------------------------------------------------


def test_another_orgs_private_question_is_not_found_everywhere(qa, client, session, app):
    acme = OrganizationFactory()
    asker = member(organization=acme)
    secret = qa.question(asker, title="Our private SSO certificate problem", private=True)
    colleague, outsider = member(organization=acme), member()
    for action in (
        lambda: qa(service.get_question, outsider, secret.id),
        lambda: qa(service.answer, outsider, secret.id, "I know!"),
        lambda: qa(service.vote, outsider, 1, question_id=secret.id),
        lambda: qa(service.follow, outsider, secret.id),
    ):
        with pytest.raises(NotFound):
            action()
    assert count(session, Answer) == 0 and count(session, Vote) == 0
    login(client, outsider)
    assert client.get(f"/questions/{secret.id}").status_code == 404
    assert client.post(f"/questions/{secret.id}/vote", data={"value": "1"}).status_code == 404
    assert client.post(f"/questions/{secret.id}/answers", data={"body": "x"}).status_code == 404
    assert "private SSO" not in client.get("/questions/").get_data(as_text=True)
    login(client, colleague)
    assert client.get(f"/questions/{secret.id}").status_code == 200
    assert "private SSO" in client.get("/questions/").get_data(as_text=True)
    client.post("/sign-out")
    assert client.get(f"/questions/{secret.id}").status_code == 404
    login(client, staff(Role.CSM))
    assert client.get(f"/questions/{secret.id}").status_code == 200


# --- answers, comments, closing -------------------------------------------------------------


def test_answering_a_closed_question_is_refused_until_reopened(qa, session, moderator):
    question = qa.question()
    qa(service.close, moderator, question.id, "Off-topic for this community")
    with pytest.raises(Conflict):
        qa.answer(question)
    assert count(session, Answer) == 0
    with pytest.raises(PermissionDenied):
        qa(service.close, member(trust_level=3), question.id, "again")
    qa(service.reopen, moderator, question.id)
    assert qa.answer(question).published is True
    assert [a.verb for a in verbs(session, "question.closed")] == ["question.closed"]
    assert len(verbs(session, "question.reopened")) == 1


def test_a_duplicate_redirects_to_its_original_with_a_notice(qa, client, session, moderator):
    original = qa.question(title="How do I schedule a report by email?")
    copy = qa.question(title="Schedule report emails, how?")
    with pytest.raises(DomainError) as error:
        qa(service.mark_duplicate, moderator, copy.id, copy.id)
    assert error.value.field == "target"
    qa(service.mark_duplicate, moderator, copy.id, original.id)
    login(client, member())
    response = client.get(f"/questions/{copy.id}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/questions/{original.id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "was closed as a duplicate of this question" in page
    # The duplicate itself stays reachable, and its votes still count.
    assert client.get(f"/questions/{copy.id}?original=1").status_code == 200
    assert client.post(f"/questions/{copy.id}/vote", data={"value": "1"}).status_code == 302
    assert count(session, Vote, Vote.question_id == copy.id) == 1
    assert len(verbs(session, "question.duplicate")) == 1


def test_comments_on_questions_and_answers(qa, client, session):
    question = qa.question()
    reply = qa.answer(question)
    login(client, member())
    assert (
        client.post(
            f"/questions/{question.id}/comments", data={"body": "Which version?"}
        ).status_code
        == 302
    )
    assert (
        client.post(
            f"/questions/answers/{reply.id}/comments", data={"body": "Worked, thanks"}
        ).status_code
        == 302
    )
    empty = client.post(f"/questions/{question.id}/comments", data={"body": ""})
    assert empty.status_code == 422 and "Your comment was not saved" in empty.get_data(as_text=True)
    page = client.get(f"/questions/{question.id}").get_data(as_text=True)
    assert "Which version?" in page and "Worked, thanks" in page
    assert len(verbs(session, "comment.posted")) == 2


# --- votes and reputation -------------------------------------------------------------------


def points(session, user) -> int:
    session.expire_all()
    return session.scalar(select(Reputation.points).where(Reputation.user_id == user.id)) or 0


def test_votes_toggle_flip_and_move_reputation(qa, session):
    asker, answerer, voter = member(), member(), member()
    question = qa.question(asker)
    reply = qa.answer(question, answerer)
    assert qa(service.vote, voter, 1, answer_id=reply.id) == service.VoteResult(1, 1)
    assert points(session, answerer) == 10
    assert qa(service.vote, voter, -1, answer_id=reply.id) == service.VoteResult(-1, -1)
    assert points(session, answerer) == -2
    assert qa(service.vote, voter, -1, answer_id=reply.id) == service.VoteResult(0, 0)
    assert points(session, answerer) == 0
    assert qa(service.vote, voter, 1, question_id=question.id).score == 1
    assert points(session, asker) == 2
    assert qa(service.vote, voter, 0, question_id=question.id).score == 0
    assert points(session, asker) == 0
    assert count(session, Vote) == 0
    assert len(verbs(session, "answer.upvoted")) == 1
    assert len(verbs(session, "answer.downvoted")) == 1
    upvote = verbs(session, "question.upvoted")[0]
    assert upvote.data == {"author_id": asker.id}
    assert "question.upvoted" in moderation.LIKE_VERBS and "answer.helpful" in moderation.LIKE_VERBS


def test_no_vote_on_ones_own_post_and_no_odd_values(qa, session):
    asker = member()
    question = qa.question(asker)
    with pytest.raises(DomainError) as error:
        qa(service.vote, asker, 1, question_id=question.id)
    assert error.value.field == "value"
    with pytest.raises(DomainError):
        qa(service.vote, member(), 2, question_id=question.id)
    assert count(session, Vote) == 0 and points(session, asker) == 0


def test_one_vote_per_user_is_the_databases_rule(qa, app, session):
    from sqlalchemy.exc import IntegrityError

    question = qa.question()
    voter = member()
    qa(service.vote, voter, 1, question_id=question.id)
    with app.app_context(), pytest.raises(IntegrityError), session.begin_nested():
        session.add(Vote(user_id=voter.id, question_id=question.id, value=1))


# --- acceptance -----------------------------------------------------------------------------


def test_the_asker_accepts_one_answer_at_a_time_and_can_unaccept(qa, session, moderator):
    asker, first_author, second_author = member(), member(), member()
    question = qa.question(asker)
    first, second = (
        qa.answer(question, first_author),
        qa.answer(question, second_author, "Use the API."),
    )
    heard: list = []
    signals.answer_accepted.connect(
        lambda sender, **kw: heard.append((sender.id, kw["actor"].id)), weak=False
    )
    try:
        with pytest.raises(PermissionDenied):
            qa(service.accept, member(), question.id, first.id)
        assert count(session, Activity, Activity.verb == "answer.accepted") == 0
        qa(service.accept, asker, question.id, first.id)
        assert points(session, first_author) == 15
        qa(service.accept, moderator, question.id, second.id)
        assert points(session, first_author) == 0 and points(session, second_author) == 15
        session.expire_all()
        assert session.get(Question, question.id).accepted_answer_id == second.id
        qa(service.accept, asker, question.id, None)
        assert points(session, second_author) == 0
        session.expire_all()
        assert session.get(Question, question.id).accepted_answer_id is None
    finally:
        signals.answer_accepted.receivers.clear()
    assert heard == [(first.id, asker.id), (second.id, moderator.id)]
    accepted = verbs(session, "answer.accepted")
    assert accepted[0].data == {"author_id": first_author.id, "question_id": question.id}
    other = qa.question()
    with pytest.raises(DomainError) as error:
        qa(service.accept, other.author, other.id, first.id)
    assert error.value.field == "answer_id"


def test_accepted_answer_comes_first_then_by_score(qa, client, session):
    asker = member()
    question = qa.question(asker)
    low = qa.answer(question, body="Low answer text")
    high = qa.answer(question, body="High answer text")
    qa(service.vote, member(), 1, answer_id=high.id)
    view = qa(service.question_view, asker, question.id)
    assert [a.id for a in view.answers] == [high.id, low.id]
    qa(service.accept, asker, question.id, low.id)
    view = qa(service.question_view, asker, question.id)
    assert [a.id for a in view.answers] == [low.id, high.id]


# --- helpful marks, follows, notifications --------------------------------------------------


def test_this_helped_me_once_per_person_counted_per_organization(qa, client, session):
    question = qa.question()
    reply = qa.answer(question)
    org = OrganizationFactory()
    heard: list = []
    signals.answer_marked_helpful.connect(
        lambda sender, **kw: heard.append(sender.helpful_count), weak=False
    )
    try:
        for person in (member(organization=org), member(organization=org), member()):
            login(client, person)
            assert client.post(f"/questions/answers/{reply.id}/helpful").status_code == 302
        assert client.post(f"/questions/answers/{reply.id}/helpful").status_code == 302  # flashed
    finally:
        signals.answer_marked_helpful.receivers.clear()
    assert count(session, HelpfulMark) == 3 and heard == [1, 2, 3]
    page = client.get(f"/questions/{question.id}").get_data(as_text=True)
    assert "helped 3 people in 2 organizations" in page
    assert "You already said this helped you" in page or "You said this helped you" in page
    with pytest.raises(DomainError):
        qa(service.mark_helpful, reply.author, reply.id)
    assert verbs(session, "answer.helpful")[0].data == {
        "author_id": reply.author_id,
        "question_id": question.id,
        "answer_id": reply.id,
    }


def test_followers_hear_about_each_published_answer_once(app, session, outbox, moderator):
    qa = QA(app, session, commit=True)  # followers are told after the commit
    asker, fan = member(locale="en"), member()
    question = qa.question(asker, title="Where do I set the fiscal year start?")
    assert qa(service.follow, fan, question.id) is True
    assert qa(service.follow, fan, question.id) is False
    held = qa.answer(question, member(trust_level=0), "Admin settings, then Calendar.")
    assert outbox(asker.email) == []
    item_id = moderation.item_id(session, "answer", held.id)
    qa(moderation.approve, moderator, item_id)
    mails = outbox(asker.email)
    assert len(mails) == 1 and "fiscal year" in mails[0].subject and "Calendar" in mails[0].body
    assert len(outbox(fan.email)) == 1
    # The task sent again (the task outbox cannot tell a slow run from a lost one): no double.
    assert qa(service.tell_followers, service.ANSWER_KIND, held.id) == 0
    assert len(outbox(asker.email)) == 1 and len(outbox(fan.email)) == 1
    assert (
        count(
            session,
            Notification,
            Notification.user_id == asker.id,
            Notification.kind == "qa_answer",
        )
        == 1
    )
    session.expire_all()
    assert session.get(Question, question.id).answer_count == 1
    qa.answer(question, fan, "Or ask your CSM.")
    assert len(outbox(asker.email)) == 2 and len(outbox(fan.email)) == 1  # not told of one's own
    assert len(verbs(session, "question.followed")) == 1


def notes(session, user, kind: str) -> list[Notification]:
    session.expire_all()
    return list(
        session.scalars(
            select(Notification).where(Notification.user_id == user.id, Notification.kind == kind)
        )
    )


def test_authors_hear_of_comments_on_their_posts_once_published(qa, session, outbox, moderator):
    asker, answerer, newcomer = member(), member(), member(trust_level=0)
    question = qa.question(asker, title="How do I export a dashboard as PDF?")
    reply = qa.answer(question, answerer, "Use the share menu, then Export.")
    qa(service.comment, answerer, "Which version are you on?", question_id=question.id)
    (note,) = notes(session, asker, "qa_comment")
    assert note.message == "New comment on your question “How do I export a dashboard as PDF?”"
    (mail,) = [m for m in outbox(asker.email) if "comment" in m.subject]
    assert "Which version are you on?" in mail.body and "/mail/unsubscribe/" in mail.body

    qa(service.comment, answerer, "Self-reply: it is 5.2.", answer_id=reply.id)
    assert notes(session, answerer, "qa_comment") == []  # one's own post: nothing

    held = qa(service.comment, newcomer, "Does it keep the colors?", answer_id=reply.id)
    assert notes(session, answerer, "qa_comment") == []  # not before it is published
    qa(moderation.approve, moderator, moderation.item_id(session, service.COMMENT_KIND, held.id))
    (note,) = notes(session, answerer, "qa_comment")
    assert note.message.startswith("New comment on your answer to")
    assert note.link.endswith(f"#answer-{reply.id}")


def test_an_answer_s_author_hears_it_was_accepted(qa, session):
    asker, answerer = member(), member()
    question = qa.question(asker, title="Why does the weekly schedule skip Mondays?")
    reply = qa.answer(question, answerer)
    own = qa.answer(question, asker, "I found it myself: the holiday calendar.")
    qa(service.accept, asker, question.id, own.id)
    assert notes(session, asker, "qa_accepted") == []  # accepting one's own: nothing
    qa(service.accept, asker, question.id, reply.id)
    (note,) = notes(session, answerer, "qa_accepted")
    assert (
        note.message == "Your answer to “Why does the weekly schedule skip Mondays?” was accepted."
    )


def test_followers_of_a_tag_hear_of_each_new_question_they_may_see(
    app, client, session, outbox, moderator
):
    qa = QA(app, session, commit=True)  # followers are told after the commit
    fan, insider_fan = member(), member()
    qa.question(member(), tags=["sso", "dashboards"])  # the tags exist once used
    login(client, fan)
    page = client.get("/questions/tagged/SSO").get_data(as_text=True)
    assert "Follow this tag" in page
    client.post("/questions/tagged/sso/follow")
    assert "Following this tag" in client.get("/questions/tagged/sso").get_data(as_text=True)
    profile = client.get("/profile").get_data(as_text=True)
    assert 'href="/questions/tagged/sso">sso</a>' in profile
    assert client.post("/questions/tagged/nosuchtag/follow").status_code == 404
    qa(service.follow_tag, insider_fan, "dashboards")
    qa(service.follow_tag, insider_fan, "sso")

    public = qa.question(
        member(), title="How do I set up SSO with Okta?", tags=["sso", "dashboards"]
    )
    (note,) = notes(session, fan, "qa_tagged")
    assert note.message == "New question tagged dashboards sso: “How do I set up SSO with Okta?”"
    assert len(notes(session, insider_fan, "qa_tagged")) == 1  # two followed tags, one notice
    assert any("Okta" in m.subject for m in outbox(fan.email))

    insider = insider_fan.organization
    private = qa.question(
        member(organization=insider),
        title="Our SSO certificate expired",
        tags=["sso"],
        private=True,
    )
    assert private.is_private
    assert len(notes(session, fan, "qa_tagged")) == 1  # another organization's private question
    assert len(notes(session, insider_fan, "qa_tagged")) == 2

    held = qa.question(
        member(trust_level=0), title="Is SSO included in the basic plan?", tags=["sso"]
    )
    assert len(notes(session, fan, "qa_tagged")) == 1  # not before it is published
    qa(moderation.approve, moderator, moderation.item_id(session, service.QUESTION_KIND, held.id))
    assert len(notes(session, fan, "qa_tagged")) == 2
    assert qa(service.tell_followers, service.QUESTION_KIND, held.id) == 0  # told already
    assert len(notes(session, fan, "qa_tagged")) == 2

    client.post("/questions/tagged/sso/follow", data={"follow": "0"})
    qa.question(member(), title="Which SSO providers are supported?", tags=["sso"])
    assert len(notes(session, fan, "qa_tagged")) == 2
    assert public.id and qa(service.follows_tag, fan, "sso") is False


def test_followers_are_not_told_of_a_post_removed_before_the_telling_ran(qa, session, moderator):
    """Telling runs after the publication's commit (with a broker, in a worker): by then the
    post may be gone or hidden."""
    fan = member()
    qa.question(member(), tags=["billing"])
    qa(service.follow_tag, fan, "billing")
    question = qa.question(member(), title="Can invoices be split?", tags=["billing"])
    qa(moderation.remove, moderator, moderation.item_id(session, "question", question.id), "Spam")
    assert qa(service.tell_followers, service.QUESTION_KIND, question.id) == 0
    assert qa(service.tell_followers, service.QUESTION_KIND, 10**9) == 0
    assert qa(service.tell_followers, service.ANSWER_KIND, 10**9) == 0
    assert notes(session, fan, "qa_tagged") == []


def test_a_tags_followers_are_told_in_the_same_few_statements_however_many_they_are(
    app, qa, session, connection, outbox
):
    """Telling followers was two round trips a person (their mail choices, then the mail's
    INSERT): three seconds inside the publishing request for a thousand followers."""

    def tell(followers: int) -> tuple[int, tuple[int, int], list]:
        tag = f"exports{followers}"
        qa.question(member(), tags=[tag])  # a tag exists once a question used it
        people = [member() for _ in range(followers)]
        for person in people:
            qa(service.follow_tag, person, tag)
        qa(mail.turn_off, people[0].id, service.TAG_MAIL)  # the notice, but no mail
        question = qa.question(member(), title=f"Exports for {followers}", tags=[tag])

        def notify() -> int:  # without the commit, after which each mail is sent on its own
            with app.app_context():
                told = service.notify_tag_followers(session, question)
                session.flush()
                return told

        told, statements = statements_during(connection, notify)
        reads = [sql for sql in statements if not sql.startswith("INSERT")]
        return told, (len(reads), len(statements)), people

    told_few, few, people = tell(3)
    told_many, many, _ = tell(30)
    assert (told_few, told_many) == (3, 30)
    assert few[0] == many[0]  # the reads: the people, their roles, their mail choices
    if session.get_bind().dialect.name == "postgresql":  # SQLite inserts row by row, in process
        assert few[1] == many[1]
    assert notes(session, people[0], "qa_tagged") and not outbox(people[0].email)
    assert all(any("Exports for 3" in m.subject for m in outbox(p.email)) for p in people[1:])


# --- moderation hooks -------------------------------------------------------------------------


def test_rejected_and_removed_posts_leave_counts_and_pages(qa, client, session, moderator):
    question = qa.question()
    held = qa.answer(question, member(trust_level=0), "Pending answer text")
    qa(moderation.reject, moderator, moderation.item_id(session, "answer", held.id), "Spam")
    session.expire_all()
    assert session.get(Answer, held.id).published is False
    assert session.get(Question, question.id).answer_count == 0
    qa(moderation.remove, moderator, moderation.item_id(session, "question", question.id), "Bad")
    login(client, member())
    assert client.get(f"/questions/{question.id}").status_code == 404
    assert search.load_questions(session, [question.id]) == []


def test_search_sources_load_only_indexable_documents(qa, session, moderator):
    asker = member()
    public = qa.question(asker, title="Dashboards refresh slowly at night", tags=["dashboards"])
    private = qa.question(asker, title="Our private dashboard question", private=True)
    held = qa.question(member(trust_level=0), title="A held question about SSO")
    reply = qa.answer(public, body="Turn on the cache for dashboards.")
    docs = {
        d.object_id: d for d in search.load_questions(session, [public.id, private.id, held.id])
    }
    assert set(docs) == {public.id, private.id}
    assert docs[public.id].answered is True and docs[public.id].tags == ("dashboards",)
    assert docs[private.id].private_to_org_id == asker.organization_id
    assert docs[public.id].private_to_org_id is None
    qa(service.accept, asker, public.id, reply.id)
    docs = search.load_questions(session, [public.id])
    assert "cache" in docs[0].body
    answers = search.load_answers(session, [reply.id])
    assert answers[0].url == f"/questions/{public.id}#answer-{reply.id}"
    ids = {i for i, _ in search.catalog_questions(session)}
    assert ids == {public.id, private.id}
    assert {i for i, _ in search.catalog_answers(session)} == {reply.id}


# --- editing and revisions ------------------------------------------------------------------


def test_edits_keep_numbered_revisions_and_the_diff_is_escaped(qa, client, session):
    asker = member()
    question = qa.question(asker, body="First <b>version</b> of the body")
    login(client, member())
    assert client.get(f"/questions/{question.id}/edit").status_code == 403
    login(client, asker)
    form = client.get(f"/questions/{question.id}/edit").get_data(as_text=True)
    assert "First &lt;b&gt;version&lt;/b&gt; of the body</textarea>" in form
    assert 'value="dashboards"' in form
    response = client.post(
        f"/questions/{question.id}/edit",
        data={
            "title": question.title,
            "body": "Second <script>alert(1)</script> version",
            "tags": "dashboards sharing",
            "product_area": "dashboards",
            "comment": "clarified",
        },
    )
    assert response.status_code == 302
    numbers = session.scalars(
        select(Revision.number).where(Revision.question_id == question.id).order_by(Revision.number)
    ).all()
    assert numbers == [1, 2]
    page = client.get(f"/questions/{question.id}/revisions").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "<del>- First &lt;b&gt;version&lt;/b&gt; of the body</del>" in page
    bad = client.post(f"/questions/{question.id}/edit", data={"title": "short", "body": "x"})
    assert bad.status_code == 422 and "10 to 200" in bad.get_data(as_text=True)
    reply = qa.answer(question)
    qa(service.edit_answer, reply.author, reply.id, "Better answer")
    assert count(session, Revision, Revision.answer_id == reply.id) == 2


def test_a_held_edit_hides_the_question_until_approved(qa, client, session, moderator):
    from moderation.models import WatchedWordEntry

    author = member()
    question = qa.question(author)
    assert question.published is True
    session.add(WatchedWordEntry(pattern="free money", action="hold", replacement=""))
    session.flush()
    qa(service.edit_question, author, question.id, question.title, "Get free money here", ["x1"])
    session.expire_all()
    assert session.get(Question, question.id).published is False
    assert moderation.item_state(session, "question", question.id) == "pending"
    login(client, member())
    assert client.get(f"/questions/{question.id}").status_code == 404
    qa(moderation.approve, moderator, moderation.item_id(session, "question", question.id))
    assert client.get(f"/questions/{question.id}").status_code == 200


# --- pages ----------------------------------------------------------------------------------


def test_ask_page_has_the_suggestion_hooks_and_asks(client, session):
    user = member()
    login(client, user)
    html = client.get("/questions/ask").get_data(as_text=True)
    start = html.index('<input name="title"')
    tag = html[start : html.index(">", start) + 1]
    assert tag.endswith('data-suggest-source="ask">')
    assert (
        html[html.index(">", start) + 1 :]
        .lstrip()
        .startswith('<div data-suggest-for="title" class="list-group')
    )
    assert "/static/search.js" in html
    response = client.post(
        "/questions/ask",
        data={
            "title": "How can I restrict a dashboard to one team?",
            "body": "Details",
            "tags": "permissions",
            "product_area": "permissions",
        },
    )
    assert response.status_code == 302
    assert client.get(response.headers["Location"]).status_code == 200
    bad = client.post("/questions/ask", data={"title": "short", "body": "x"})
    assert bad.status_code == 422 and count(session, Question) == 1


def test_list_tabs_filters_and_tag_page(qa, client, session):
    asker = member()
    old = qa.question(asker, title="Old question about SSO login", tags=["sso"], product_area="sso")
    new = qa.question(asker, title="New question about report PDFs", tags=["reports"])
    qa(service.vote, member(), 1, question_id=old.id)
    qa.answer(new)

    def titles(url):
        html = client.get(url).get_data(as_text=True)
        return [t for t in (old.title, new.title) if t in html], html

    assert titles("/questions/")[1].index(new.title) < titles("/questions/")[1].index(old.title)
    votes_html = titles("/questions/?sort=votes")[1]
    assert votes_html.index(old.title) < votes_html.index(new.title)
    assert titles("/questions/?sort=unanswered")[0] == [old.title]
    assert titles("/questions/tagged/sso")[0] == [old.title]
    assert titles("/questions/?area=sso")[0] == [old.title]
    assert client.get("/questions/?sort=bogus").status_code == 400
    assert client.get("/questions/?page=abc").status_code == 200


def test_question_list_counts_read_as_words_in_either_language(qa, client, session):
    asker = member()
    question = qa.question(asker, title="How do I share one dashboard?")
    qa(service.vote, member(), 1, question_id=question.id)
    qa.answer(question)
    row = _list_row(client.get("/questions/", headers={"Accept-Language": "en"}).text, question)
    assert "<strong>1</strong> vote</div>" in row and "1 answer</div>" in row, row
    other = qa.question(asker, title="Can two teams share a template?")
    qa.answer(other)
    qa.answer(other)
    row = _list_row(client.get("/questions/", headers={"Accept-Language": "en"}).text, other)
    assert "<strong>0</strong> votes</div>" in row and "2 answers</div>" in row, row
    chinese = client.get("/questions/", headers={"Accept-Language": "zh-CN"}).text
    assert "2 个回答" in _list_row(chinese, other)


@pytest.mark.parametrize("app_config", [{"QA_LIST_CACHE_SECONDS": 60}])
def test_question_list_dates_are_the_readers_days_in_their_language(qa, client, session):
    from portal.qa import listcache

    listcache.clear()
    question = qa.question(title="Asked late in the UTC evening")
    yesterday = utcnow().date() - timedelta(days=1)
    question.created_at = datetime.combine(yesterday, time(20), UTC)  # 04:00 in Shanghai
    session.flush()
    reader = member(organization=question.author.organization)
    login(client, reader)
    row = _list_row(client.get("/questions/", headers={"Accept-Language": "en"}).text, question)
    assert f">{yesterday:%b} {yesterday.day}, {yesterday.year}</time>" in row, row
    reader.timezone = "Asia/Shanghai"
    session.flush()
    today = yesterday + timedelta(days=1)
    english = client.get("/questions/", headers={"Accept-Language": "en"}).text
    row = _list_row(english, question)  # not the body kept for a reader in UTC
    assert f">{today:%b} {today.day}, {today.year}</time>" in row, row
    reader.locale = "zh_CN"
    session.flush()
    row = _list_row(client.get("/questions/").text, question)
    assert f">{today.year}年{today.month}月{today.day}日</time>" in row, row
    listcache.clear()


def _list_row(html: str, question: Question) -> str:
    start = html.index(f'data-question-id="{question.id}"')
    return html[start : html.index("</li>", start)]


def test_question_list_uses_a_constant_number_of_queries(qa, client, session, connection):
    viewer = member()

    def queries(extra: int) -> int:
        for _ in range(extra):
            question = qa.question(member(), tags=["a1", "b2"])
            qa.answer(question)
        login(client, viewer)
        return count_statements(client, connection, "/questions/?per_page=50")

    few, many = queries(2), queries(12)
    assert few == many
    assert many <= 5


def test_signed_in_reads_are_counted_once_a_day(qa, client, session):
    question = qa.question()
    reader = member()
    login(client, reader)
    client.get(f"/questions/{question.id}")
    client.get(f"/questions/{question.id}")
    viewed = [a for a in verbs(session, "content.viewed") if a.subject_type == "questions"]
    assert len(viewed) == 1 and viewed[0].actor_id == reader.id
    assert session.get(Question, question.id).view_count == 1


def test_reputation_partial_and_service(qa, app, session):
    from flask import render_template

    author = member()
    reply = qa.answer(qa.question(), author)
    qa(service.vote, member(), 1, answer_id=reply.id)
    with app.test_request_context():
        html = render_template(
            "qa/_reputation.html",
            user_id=author.id,
            reputation=service.reputation_of(session, author.id),
        )
    assert "Reputation: 10" in html


def test_unknown_ids_answer_404(client, session):
    login(client, member())
    assert client.get("/questions/999999").status_code == 404
    assert client.post("/questions/answers/999999/vote", data={"value": "1"}).status_code == 404
    assert client.post("/questions/999999/accept", data={"answer_id": "1"}).status_code == 404


def test_demo_data_is_deterministic_idempotent_and_bilingual(app, session):
    from portal.demo import demo_users, load_community
    from portal.qa.demo import load_demo

    with app.app_context():
        users = demo_users(session, load_community(session))
        load_demo(session, users)
        first = count(session, Question), count(session, Answer), count(session, Vote)
        load_demo(session, users)
    assert (count(session, Question), count(session, Answer), count(session, Vote)) == first
    questions, answers, votes = first
    assert questions >= 95 and answers >= 100 and votes >= 100
    published = count(session, Question, Question.published.is_(True))
    assert 0 < questions - published <= 6  # a few wait in the review queue
    assert count(session, Question, Question.is_private.is_(True)) >= 3
    assert count(session, Question, Question.accepted_answer_id.is_not(None)) >= 20
    titles = session.scalars(select(Question.title)).all()
    assert any("报表" in t for t in titles) and any("dashboard" in t for t in titles)
    assert count(session, ModerationItem, ModerationItem.state == "pending") >= 1
    # One published answer shows a screenshot, uploaded as a member's image is.
    (shown,) = session.scalars(select(Answer).where(Answer.body_html.contains("<img"))).all()
    assert shown.published and '<img src="/uploads/' in shown.body_html


@pytest.mark.parametrize("app_config", [{"QA_LIST_CACHE_SECONDS": 60}])
def test_the_list_cache_is_per_scope_and_cleared_by_a_committed_change(qa, client, session):
    from portal.qa import listcache

    listcache.clear()
    org = OrganizationFactory()
    insider = member(organization=org)
    secret = qa.question(insider, title="Private cache question for one org", private=True)
    login(client, insider)
    assert secret.title in client.get("/questions/").get_data(as_text=True)
    client.post("/sign-out")
    assert secret.title not in client.get("/questions/").get_data(as_text=True)  # other scope
    later = qa.question(title="Flushed but not committed by a request")
    assert later.title not in client.get("/questions/").get_data(as_text=True)  # cached
    login(client, member())
    asked = client.post(
        "/questions/ask", data={"title": "Committed through a request now", "body": "Body"}
    )
    assert asked.status_code == 302
    client.post("/sign-out")
    html = client.get("/questions/").get_data(as_text=True)
    assert "Committed through a request now" in html and later.title in html
    listcache.clear()


def test_buttons_say_what_they_did(qa, client, session):
    """Voting the same way again takes the vote back, and the message says so; accepting
    the first answer says it was accepted, not 'changed'."""
    asker, voter = member(), member()
    question = qa.question(asker)
    reply = qa.answer(question)
    login(client, voter)
    first = client.post(
        f"/questions/{question.id}/vote", data={"value": "1"}, follow_redirects=True
    )
    assert "Your vote was saved." in first.get_data(as_text=True)
    again = client.post(
        f"/questions/{question.id}/vote", data={"value": "1"}, follow_redirects=True
    )
    assert "Your vote was removed." in again.get_data(as_text=True)
    login(client, asker)
    accepted = client.post(
        f"/questions/{question.id}/accept", data={"answer_id": reply.id}, follow_redirects=True
    )
    assert "You accepted this answer." in accepted.get_data(as_text=True)


def test_question_page_says_when_in_words_and_labels_the_answer_box_once(qa, client, session):
    question = qa.question(title="When was this asked?")
    question.created_at = datetime(2026, 7, 8, 22, 13, tzinfo=UTC)
    session.flush()
    login(client, member())
    page = client.get(f"/questions/{question.id}", headers={"Accept-Language": "en"}).text
    assert "Asked Jul 8, 2026, 10:13\u202fPM" in page or "Asked Jul 8, 2026, 10:13 PM" in page
    assert "7/8/26" not in page  # the short date: July 8th or 7 August?
    assert '<label class="visually-hidden" for="body">Your answer</label>' in page
