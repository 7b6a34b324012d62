"""Moderation through its public surface: profile text as the first kind, the queue, flags,
watched words, trust levels and the API."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from moderation import service as moderation
from moderation.models import AuditEntry, Flag, ModerationItem, ModerationSetting, WatchedWordEntry
from portal.accounts.models import UserProfile
from portal.core import pagecache
from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.identity import Role, User
from portal.core.notifications import Notification
from tests.conftest import count_statements, login
from tests.factories import UserFactory, staff


@pytest.fixture
def moderator(session):
    return staff(Role.MODERATOR, display_name="Mona Moderator")


def post_about(client, user, text):
    login(client, user)
    return client.post("/profile/about", data={"about": text})


def item_for(session, user) -> ModerationItem:
    session.expire_all()
    return session.scalar(select(ModerationItem).where(ModerationItem.author_id == user.id))


def csrf_value(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]*)"', html).group(1)


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_new_users_text_waits_for_review_then_is_published_and_author_notified(
    client, session, moderator, outbox
):
    author = UserFactory(trust_level=0, display_name="Nora New")
    assert post_about(client, author, "Hello, I build **dashboards**.").status_code == 302
    item = item_for(session, author)
    assert item.state == "pending" and "new_user" in item.held_reasons
    profile_page = client.get(f"/users/{author.id}").get_data(as_text=True)
    assert "Awaiting review" in profile_page

    reader = UserFactory(organization=author.organization)
    login(client, reader)
    assert "dashboards" not in client.get(f"/users/{author.id}").get_data(as_text=True)

    login(client, moderator)
    queue = client.get("/moderation/queue").get_data(as_text=True)
    assert "Nora New" in queue and "<strong>dashboards</strong>" in queue
    assert client.post(f"/moderation/items/{item.id}/approve").status_code == 302

    login(client, reader)
    assert "<strong>dashboards</strong>" in client.get(f"/users/{author.id}").get_data(as_text=True)
    assert (
        count(
            session,
            Notification,
            Notification.user_id == author.id,
            Notification.kind == "moderation",
        )
        == 1
    )
    assert any("approved" in m.subject for m in outbox(author.email))
    verbs = set(session.scalars(select(Activity.verb)))
    assert {"content.submitted", "content.published"} <= verbs
    decision = session.scalar(
        select(Activity).where(Activity.verb == "content.published", Activity.actor_id == author.id)
    )
    assert decision.data["moderator_id"] == moderator.id and decision.data["minutes_waited"] >= 0
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["submitted", "published"]


def test_reject_needs_a_reason_and_tells_the_author(client, session, moderator, outbox):
    author = UserFactory(trust_level=0)
    post_about(client, author, "Buy cheap watches")
    item = item_for(session, author)
    login(client, moderator)
    client.post(f"/moderation/items/{item.id}/reject", data={"reason": "  "})
    assert item_for(session, author).state == "pending"
    client.post(
        f"/moderation/items/{item.id}/reject", data={"reason": "Advertising is not allowed."}
    )
    assert item_for(session, author).state == "rejected"
    note = session.scalar(select(Notification).where(Notification.user_id == author.id))
    assert "Advertising is not allowed." in note.message
    assert any("not published" in m.subject for m in outbox(author.email))


def test_second_decision_is_refused_naming_the_first_moderator(client, session, moderator):
    other = staff(Role.MODERATOR, organization=moderator.organization, display_name="Otto Other")
    author = UserFactory(trust_level=0)
    post_about(client, author, "Some text")
    item = item_for(session, author)
    login(client, moderator)
    client.post(f"/moderation/items/{item.id}/approve")
    login(client, other)
    response = client.post(
        f"/moderation/items/{item.id}/reject", data={"reason": "no"}, follow_redirects=True
    )
    assert "Already decided by Mona Moderator" in response.get_data(as_text=True)
    assert item_for(session, author).state == "published"
    assert count(session, AuditEntry, AuditEntry.action.in_(["published", "rejected"])) == 1


def test_edit_and_approve_keeps_before_and_after(client, session, moderator):
    author = UserFactory(trust_level=0)
    post_about(client, author, "I love this produkt")
    item = item_for(session, author)
    login(client, moderator)
    client.post(f"/moderation/items/{item.id}/approve", data={"text": "I love this product"})
    session.expire_all()
    assert session.get(UserProfile, author.id).about_source == "I love this product"
    edit = session.scalar(select(AuditEntry).where(AuditEntry.action == "edited"))
    assert (edit.before_text, edit.after_text) == ("I love this produkt", "I love this product")


def test_an_edit_of_published_text_shows_a_diff_in_the_queue(client, session, moderator):
    session.add(ModerationSetting(key="rules", value={"rate_limits": {"0": [10, 100]}}))
    author = UserFactory(trust_level=0)
    post_about(client, author, "first version of my text")
    login(client, moderator)
    client.post(f"/moderation/items/{item_for(session, author).id}/approve")
    post_about(client, author, "second version of my text")
    login(client, moderator)
    html = client.get("/moderation/queue").get_data(as_text=True)
    assert "<del>first</del>" in html and "<ins>second</ins>" in html


def test_staff_and_trusted_users_are_published_at_once(client, session, moderator):
    trusted = UserFactory(trust_level=2)
    post_about(client, trusted, "Trusted words")
    assert item_for(session, trusted).state == "published"
    post_about(client, moderator, "Staff words")
    assert item_for(session, moderator).state == "published"


def test_bulk_approve_and_keyboard_markup(client, session, moderator):
    authors = [UserFactory(trust_level=0) for _ in range(3)]
    for index, author in enumerate(authors):
        post_about(client, author, f"Text number {index}")
    ids = [str(item_for(session, a).id) for a in authors]
    login(client, moderator)
    html = client.get("/moderation/queue").get_data(as_text=True)
    assert html.count('class="card mb-3 mod-item" tabindex="0"') == 3
    assert "moderation.js" in html
    decided = client.post(
        "/moderation/bulk", data={"action": "approve", "ids": ids[:1]}, follow_redirects=True
    )
    assert "1 item decided." in decided.get_data(as_text=True)
    client.post("/moderation/bulk", data={"action": "approve", "ids": ids[1:]})
    assert count(session, ModerationItem, ModerationItem.state == "published") == 3


def test_queue_filters_by_kind_reason_and_org(client, session, moderator):
    one, two = UserFactory(trust_level=0), UserFactory(trust_level=0)
    post_about(client, one, "from org one")
    post_about(client, two, "from org two")
    login(client, moderator)
    html = client.get(f"/moderation/queue?org={one.organization_id}").get_data(as_text=True)
    assert "from org one" in html and "from org two" not in html
    # Each kind is offered by its name, in the reader's language.
    assert '<option value="profile_about" >profile text</option>' in html
    assert not re.search(r"<option value=\"\w+\" (?:selected)?></option>", html)
    assert "from org two" in client.get("/moderation/queue?reason=new_user").get_data(as_text=True)
    assert "from org two" not in client.get("/moderation/queue?reason=upload").get_data(
        as_text=True
    )


def test_customers_cannot_reach_the_queue_or_decide(client, session):
    author = UserFactory(trust_level=0)
    post_about(client, author, "text")
    item = item_for(session, author)
    member = UserFactory(roles=[Role.ORG_ADMIN])
    login(client, member)
    assert client.get("/moderation/queue").status_code == 403
    assert client.post(f"/moderation/items/{item.id}/approve").status_code == 403
    assert item_for(session, author).state == "pending"


QUEUE_CACHE = pytest.mark.parametrize(
    "app_config",
    [{}, {"MODERATION_QUEUE_CACHE_SECONDS": 30}],
    ids=["body-rendered-each-time", "body-kept"],
)
KEPT_QUEUE = pytest.mark.parametrize(
    "app_config",
    [{"MODERATION_QUEUE_CACHE_SECONDS": 30, "MODERATION_QUEUE_SYNC_SECONDS": 60}],
)


def waiting_in_queue(client) -> str:
    html = client.get("/moderation/queue").get_data(as_text=True)
    return re.search(r'data-testid="queue-total">(\d+)<', html).group(1)


@QUEUE_CACHE
def test_queue_page_uses_a_constant_number_of_queries(
    client, session, moderator, connection, app_config
):
    def queries_for_queue(extra_items: int) -> int:
        for index in range(extra_items):
            post_about(client, UserFactory(trust_level=0), f"queued text {index} {extra_items}")
        login(client, moderator)
        return count_statements(client, connection, "/moderation/queue")

    few, many = queries_for_queue(2), queries_for_queue(15)
    assert few == many
    assert many <= 6
    if app_config:  # nothing changed since: the kept body, after the user and the change key
        assert count_statements(client, connection, "/moderation/queue") == 2


@QUEUE_CACHE
def test_queue_count_and_history_follow_decisions_taken_in_another_worker(
    client, session, moderator, app_config
):
    """The page caches the count, the authors' history and (when on) its body per process;
    a decision taken elsewhere (here: through the service, not this client) shows on the
    next request."""
    author = UserFactory(trust_level=0, display_name="Hana Held")
    post_about(client, author, "my profile text")
    earlier = ModerationItem(
        kind="profile_about", object_id=10**6, author_id=author.id, held_reasons=["new_user"]
    )
    session.add(earlier)
    other = UserFactory(trust_level=0)
    post_about(client, other, "someone else's text")
    login(client, moderator)

    def queue_page() -> str:
        return client.get("/moderation/queue").get_data(as_text=True)

    queue_page()  # shows (and so clears) the flashed "awaiting review" of the posts above
    html = queue_page()
    assert 'data-testid="queue-total">3<' in html
    assert "Hana Held" in html and "0 published, 0 rejected before" in html
    again = queue_page()
    assert again == html.replace(csrf_value(html), csrf_value(again))
    with client.application.test_request_context():
        moderation.reject(session, moderator, earlier.id, "Not here.")
        moderation.approve(session, moderator, item_for(session, other).id)
        session.flush()
    html = queue_page()
    assert 'data-testid="queue-total">1<' in html and 'data-testid="queue-count">1<' in html
    assert "0 published, 1 rejected before" in html  # Hana's record, one decision later
    filtered = client.get("/moderation/queue?order=newest&reason=new_user").get_data(as_text=True)
    assert 'data-testid="queue-count">1<' in filtered  # the badge counts the whole queue


@KEPT_QUEUE
def test_a_kept_change_key_shows_this_workers_decisions_at_once_and_others_within_its_seconds(
    client, session, moderator, monkeypatch, app_config
):
    first, second, third = (UserFactory(trust_level=0) for _ in range(3))
    for author in (first, second, third):
        post_about(client, author, f"text of {author.display_name}")
    login(client, moderator)

    assert waiting_in_queue(client) == "3"
    # This worker's decision: the next view shows it.
    assert (
        client.post(f"/moderation/items/{item_for(session, first).id}/approve").status_code == 302
    )
    assert waiting_in_queue(client) == "2"
    # Another worker's (here: written on the same database without committing through this
    # process): shown once the kept change key is older than the setting's seconds.
    with client.application.test_request_context():
        moderation.approve(session, moderator, item_for(session, second).id)
        session.flush()
    assert waiting_in_queue(client) == "2"
    later = pagecache.time.monotonic() + 61
    monkeypatch.setattr(pagecache.time, "monotonic", lambda: later)
    assert waiting_in_queue(client) == "1"


@KEPT_QUEUE
def test_a_post_submitted_in_this_worker_shows_in_the_kept_queue_at_once(
    client, session, moderator, app_config
):
    """``submit`` writes its rows as plain statements, not through the unit of work: the
    kept change key must still see them."""
    post_about(client, UserFactory(trust_level=0), "the first waiting text")
    login(client, moderator)

    assert waiting_in_queue(client) == "1"
    post_about(client, UserFactory(trust_level=0), "the second waiting text")
    login(client, moderator)
    assert waiting_in_queue(client) == "2"


@KEPT_QUEUE
def test_a_kept_queue_page_shows_each_flash_once_and_its_own_user(
    client, session, moderator, app_config
):
    """The kept page holds the layout: the messages flashed for this request, the navigation
    and the CSRF token are filled in per request, never kept."""
    post_about(client, UserFactory(trust_level=0), "a waiting text")
    login(client, moderator)
    client.get("/moderation/queue")  # whatever was flashed before is shown and gone
    first = client.get("/moderation/queue").get_data(as_text=True)
    assert "flash-messages" not in first and "Mona Moderator" in first
    answer = client.post("/moderation/bulk", data={"action": "approve"})  # nothing selected
    assert answer.status_code == 302
    flashed = client.get("/moderation/queue").get_data(as_text=True)
    assert '<div class="alert alert-warning">Select items and an action.</div>' in flashed
    assert "&lt;div" not in flashed
    assert "flash-messages" not in client.get("/moderation/queue").get_data(as_text=True)
    other = staff(Role.MODERATOR, display_name="Otto Other")
    login(client, other)
    theirs = client.get("/moderation/queue").get_data(as_text=True)
    assert "Otto Other" in theirs and "Mona Moderator" not in theirs
    assert all("slot-" not in page for page in (first, flashed, theirs))  # every slot filled
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', theirs).group(1)
    assert meta == csrf_value(theirs)
    assert f'content="{other.id}"' in theirs  # the draft owner: the user asking


@pytest.mark.parametrize(
    "app_config",
    [{"MODERATION_QUEUE_CACHE_SECONDS": 30, "MODERATION_QUEUE_SYNC_SECONDS": 60,
      "WTF_CSRF_ENABLED": True}],
)  # fmt: skip
def test_a_kept_queue_page_carries_each_sessions_own_csrf_token(app, session, moderator):
    """Two sign-ins of the same moderator share the kept page, never a token."""
    clients = [login(app.test_client(), moderator) for _ in range(2)]
    tokens = []
    for client in clients:
        page = client.get("/moderation/queue").get_data(as_text=True)
        tokens.append(re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1))
        assert csrf_value(page) == tokens[-1]
    assert clients[0].post("/sign-out", data={"csrf_token": tokens[1]}).status_code == 400
    for client, token in zip(clients, tokens, strict=True):
        assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302


def test_a_resubmitted_item_held_by_the_session_reads_its_new_state(client, session, app_ctx):
    from portal.accounts import service as accounts
    from portal.core.db import db

    db.session.add(ModerationSetting(key="rules", value={"rate_limits": {"0": [10, 100]}}))
    author = db.session.merge(UserFactory(trust_level=2))
    accounts.update_about(db.session, author, "the first words")
    db.session.commit()
    item = db.session.scalar(select(ModerationItem).where(ModerationItem.author_id == author.id))
    assert (item.state, item.source) == ("published", "the first words")
    author.trust_level = 0  # the next post is held
    accounts.update_about(db.session, author, "the second words")
    assert (item.state, item.source, item.previous_source) == (
        "pending",
        "the second words",
        "the first words",
    )
    audit = db.session.scalars(
        select(AuditEntry.from_state).where(AuditEntry.item_id == item.id).order_by(AuditEntry.id)
    ).all()
    assert audit == [None, "published"]
    db.session.rollback()


def test_settings_and_word_changes_apply_to_the_next_submit(client, session):
    """Rule settings and the compiled words are cached per process, keyed by what is read
    from the database, so a change saved by any process applies to the very next post."""
    author = UserFactory(trust_level=0)
    rules_row = ModerationSetting(
        key="rules", value={"new_user_hold_posts": 0, "rate_limits": {"0": [10, 100]}}
    )
    session.add(rules_row)
    session.flush()
    post_about(client, author, "plain words here")
    assert item_for(session, author).state == "published"

    rules_row.value = {**rules_row.value, "new_user_hold_posts": 5}
    session.flush()
    post_about(client, author, "plain words again")
    item = item_for(session, author)
    assert item.state == "pending" and item.held_reasons == ["new_user"]

    rules_row.value = {**rules_row.value, "new_user_hold_posts": 0}
    add_word(session, "gizmo", "hold")
    post_about(client, author, "a gizmo for everyone")
    item = item_for(session, author)
    assert item.state == "pending" and item.held_reasons == ["watched_word"]

    session.delete(session.scalar(select(WatchedWordEntry)))
    add_word(session, "widget", "censor")  # the same count, maybe the same rowid
    post_about(client, author, "a gizmo and a widget")
    item = item_for(session, author)
    assert item.state == "published"
    assert "gizmo" in item.source and "widget" not in item.source


# --- watched words and rules ------------------------------------------------------------


def add_word(session, pattern, action, replacement=""):
    session.add(WatchedWordEntry(pattern=pattern, action=action, replacement=replacement))
    session.flush()


def test_blocked_word_refuses_with_its_name_and_writes_nothing(client, session):
    add_word(session, "scamcoin", "block")
    author = UserFactory(trust_level=2)
    response = post_about(client, author, "Try SCAMCOIN today")
    assert response.status_code == 400
    assert "scamcoin" in response.get_data(as_text=True).lower()
    assert count(session, ModerationItem) == 0
    assert (
        session.get(UserProfile, author.id) is None
        or session.get(UserProfile, author.id).about_source == ""
    )


def test_censored_and_held_words(client, session):
    add_word(session, "darn", "censor")
    add_word(session, "竞争对手", "hold")
    author = UserFactory(trust_level=2)
    post_about(client, author, "darn it")
    session.expire_all()
    assert "darn" not in session.get(UserProfile, author.id).about_source
    chinese = UserFactory(trust_level=2)
    post_about(client, chinese, "我们在比较竞争对手的产品")
    item = item_for(session, chinese)
    assert item.state == "pending" and "watched_word" in item.held_reasons


def test_watched_word_regexes_are_safe(client, session):
    admin = staff(Role.VENDOR_ADMIN)
    login(client, admin)
    for unsupported in [r"(a+)\1", "(unclosed", r"(?=look)ahead"]:
        response = client.post(
            "/moderation/words", data={"pattern": unsupported, "action": "hold", "is_regex": "1"}
        )
        assert response.status_code == 400, unsupported
    assert count(session, WatchedWordEntry) == 0
    # Nested quantifiers cannot backtrack in the linear-time engine: accepted, and fast.
    assert (
        client.post(
            "/moderation/words", data={"pattern": "(a+)+$", "action": "hold", "is_regex": "1"}
        ).status_code
        == 302
    )
    author = UserFactory(trust_level=2)
    import time

    started = time.thread_time()  # CPU: a busy machine's wait does not count
    post_about(client, author, "a" * 4000 + "!")
    assert time.thread_time() - started < 2
    assert item_for(session, author).state == "published"
    login(client, admin)
    ok = client.post("/moderation/words", data={"pattern": "敏感词", "action": "block"})
    assert ok.status_code == 302 and count(session, WatchedWordEntry) == 2


def test_identical_text_twice_within_ten_minutes_is_refused(client, session, app_ctx):
    author = UserFactory(trust_level=2)
    from portal.accounts import service as accounts
    from portal.core.db import db

    accounts.update_about(db.session, db.session.merge(author), "same words")
    db.session.commit()
    profile = UserProfile(user_id=UserFactory(trust_level=2).id, about_source="same words")
    db.session.add(profile)
    db.session.flush()
    with pytest.raises(Exception, match="same text"):
        moderation.submit(
            db.session, "profile_about", profile, db.session.merge(author), "same words"
        )
    db.session.rollback()


def test_identical_text_is_accepted_again_once_the_window_has_passed(client, session, app_ctx):
    from portal.accounts import service as accounts
    from portal.core.db import db

    author = UserFactory(trust_level=2)
    accounts.update_about(db.session, db.session.merge(author), "Same words, twice.")
    db.session.commit()

    def submit_elsewhere(text):
        profile = UserProfile(user_id=UserFactory(trust_level=2).id, about_source=text)
        db.session.add(profile)
        db.session.flush()
        return moderation.submit(
            db.session, "profile_about", profile, db.session.merge(author), text
        )

    with pytest.raises(Exception, match="same text"):
        submit_elsewhere("same   WORDS, twice.")  # compared as folded, normalized text
    db.session.rollback()

    first = db.session.scalar(select(ModerationItem).where(ModerationItem.author_id == author.id))
    first.submitted_at -= timedelta(minutes=11)  # the default window is 10 minutes
    db.session.commit()
    assert submit_elsewhere("same   WORDS, twice.").published
    db.session.rollback()


@pytest.mark.parametrize(
    "payload",
    [
        "about=" + "x" * 6000,
        "about=bad%00byte",
        "about=%ED%A0%80lone-surrogate",
        "about=%FF%FEnot-utf8",
        "about=" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E" * 50,
    ],
)
def test_any_payload_gets_a_clear_answer_never_a_500(client, session, payload):
    author = UserFactory(trust_level=2)
    login(client, author)
    response = client.post(
        "/profile/about", data=payload.encode(), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code in (302, 400, 422)
    page = client.get(f"/users/{author.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page


# --- flags ------------------------------------------------------------------------------


def published_about(client, session, text="Published text"):
    author = UserFactory(trust_level=2)
    post_about(client, author, text)
    return author, item_for(session, author)


def test_three_new_users_flagging_hide_the_post_until_a_moderator_decides(
    client, session, moderator
):
    author, item = published_about(client, session)
    flaggers = [UserFactory(organization=author.organization) for _ in range(3)]
    for flagger in flaggers[:2]:
        login(client, flagger)
        client.post(f"/moderation/items/{item.id}/flag", data={"reason": "spam"})
    assert item_for(session, author).state == "published"
    login(client, flaggers[2])
    client.post(f"/moderation/items/{item.id}/flag", data={"reason": "offensive"})
    assert item_for(session, author).state == "hidden"
    login(client, flaggers[0])
    assert "Published text" not in client.get(f"/users/{author.id}").get_data(as_text=True)

    login(client, moderator)
    assert "Hidden by flags" in client.get("/moderation/queue").get_data(as_text=True)
    client.post(f"/moderation/items/{item.id}/restore")
    assert item_for(session, author).state == "published"
    assert count(session, Flag, Flag.upheld.is_(False)) == 3


def test_upheld_flags_make_the_next_flag_weigh_more(client, session, moderator):
    _author, item = published_about(client, session, "first")
    flagger = UserFactory()
    login(client, flagger)
    client.post(f"/moderation/items/{item.id}/flag", data={"reason": "spam"})
    first_weight = session.scalar(select(Flag.weight))
    login(client, moderator)
    client.post(f"/moderation/items/{item.id}/remove", data={"reason": "spam"})
    _author2, item2 = published_about(client, session, "second")
    login(client, flagger)
    client.post(f"/moderation/items/{item2.id}/flag", data={"reason": "spam"})
    second_weight = session.scalar(select(Flag.weight).where(Flag.item_id == item2.id))
    assert second_weight > first_weight


def test_flag_twice_own_post_and_unknown_reason_are_refused(client, session):
    author, item = published_about(client, session)
    login(client, author)
    own = client.post(
        f"/moderation/items/{item.id}/flag", data={"reason": "spam"}, follow_redirects=True
    )
    assert "cannot flag your own" in own.get_data(as_text=True)
    flagger = UserFactory()
    login(client, flagger)
    client.post(f"/moderation/items/{item.id}/flag", data={"reason": "spam"})
    again = client.post(
        f"/moderation/items/{item.id}/flag", data={"reason": "spam"}, follow_redirects=True
    )
    assert "already flagged" in again.get_data(as_text=True)
    client.post(f"/moderation/items/{item.id}/flag", data={"reason": "nonsense"})
    assert count(session, Flag) == 1
    assert client.post("/moderation/items/999999/flag", data={"reason": "spam"}).status_code == 404


# --- trust levels -----------------------------------------------------------------------


def test_user_reaches_trust_level_one_and_sees_what_is_missing(client, session):
    session.add(
        ModerationSetting(key="trust", value={"1": {"minutes_since_sign_up": 0, "items_read": 2}})
    )
    reader = UserFactory(trust_level=0)
    others = [UserFactory() for _ in range(2)]
    login(client, reader)
    page = client.get("/profile").get_data(as_text=True)
    assert re.search(r'data-testid="trust-level">0', page)
    assert "Posts and profiles read: 0 / 2" in page
    session.add(
        Activity(
            actor_id=reader.id,
            organization_id=reader.organization_id,
            verb="account.signed_in",
            data={},
        )
    )
    session.flush()
    for other in others:
        client.get(f"/users/{other.id}")
    page = client.get("/profile").get_data(as_text=True)
    assert re.search(r'data-testid="trust-level">1', page)
    session.expire_all()
    assert session.get(User, reader.id).trust_level == 1
    assert count(session, Activity, Activity.verb == "trust.promoted") == 1


def test_periodic_promotion_respects_locks(app_ctx, session):
    from portal.core.db import db

    session.add(
        ModerationSetting(
            key="trust",
            value={"1": {"minutes_since_sign_up": 0, "items_read": 0, "days_visited": 0}},
        )
    )
    free, locked = UserFactory(trust_level=0), UserFactory(trust_level=0)
    moderator = staff(Role.MODERATOR)
    session.commit()
    moderation.lock_trust_level(db.session, db.session.merge(moderator), locked.id, 0)
    assert moderation.promote_all(db.session) == 2  # the free user and the (unlocked) moderator
    db.session.commit()
    session.expire_all()
    assert session.get(User, free.id).trust_level == 1
    assert session.get(User, locked.id).trust_level == 0


# --- API --------------------------------------------------------------------------------


def test_moderation_api_lists_and_decides_for_moderators_only(client, session, moderator):
    from tests.test_api import assert_error, bearer, make_token

    author = UserFactory(trust_level=0)
    post_about(client, author, "via the api")
    item = item_for(session, author)
    customer_token = make_token(client, session, UserFactory(), scope="write")
    assert_error(client.get("/api/v1/moderation/queue", headers=bearer(customer_token)), 403)
    token = make_token(client, session, moderator, scope="write")
    body = client.get("/api/v1/moderation/queue", headers=bearer(token)).get_json()
    assert [i["id"] for i in body["items"]] == [item.id]
    error = assert_error(
        client.post(
            f"/api/v1/moderation/items/{item.id}/decision",
            json={"action": "reject"},
            headers=bearer(token),
        ),
        400,
    )
    assert error["fields"] == {"reason": [error["message"]]}
    ok = client.post(
        f"/api/v1/moderation/items/{item.id}/decision",
        json={"action": "approve"},
        headers=bearer(token),
    )
    assert ok.status_code == 200 and ok.get_json()["state"] == "published"
    again = client.post(
        f"/api/v1/moderation/items/{item.id}/decision",
        json={"action": "approve"},
        headers=bearer(token),
    )
    assert "Already decided" in assert_error(again, 409)["message"]
    assert_error(
        client.post(
            f"/api/v1/moderation/items/{item.id}/decision",
            json={"action": "explode"},
            headers=bearer(token),
        ),
        422,
    )


# --- two moderators at once, with real commits and real HTTP requests --------------------


def test_concurrent_decisions_change_an_item_once(tmp_root):
    import http.client
    import json

    from werkzeug.serving import make_server

    from portal.accounts.service import create_api_token, create_user, update_about
    from portal.core.db import db
    from tests.conftest import committing_app, vendor_and_customer

    app = committing_app("concurrency", tmp_root)
    url = app.config["DATABASE_URL"]
    with app.app_context():
        vendor, customer = vendor_and_customer(db.session)
        tokens = []
        for i in range(2):
            moderator = create_user(
                db.session,
                vendor,
                f"m{i}@v.example",
                f"Mod {i}",
                "long-password-xyz",
                roles=(Role.MODERATOR,),
            )
            tokens.append(create_api_token(db.session, moderator, "t", "write")[1])
        author = create_user(db.session, customer, "a@c.example", "Author", "long-password-xyz")
        update_about(db.session, author, "Concurrent text")
        db.session.commit()
        item_id = db.session.scalar(select(ModerationItem.id))

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    barrier = threading.Barrier(2)
    answers: list[tuple[int, dict]] = []

    def decide(token: str, action: dict) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        body = json.dumps(action)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        barrier.wait()
        connection.request("POST", f"/api/v1/moderation/items/{item_id}/decision", body, headers)
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())))

    threads = [
        threading.Thread(target=decide, args=(tokens[0], {"action": "approve"})),
        threading.Thread(target=decide, args=(tokens[1], {"action": "reject", "reason": "no"})),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        server.shutdown()
    statuses = sorted(status for status, _body in answers)
    # PostgreSQL: the loser waits for the winner's row lock, then finds the item decided.
    # SQLite: the loser may instead lose the race for the write lock ("busy, try again").
    assert statuses[0] == 200
    loser = next(body for status, body in answers if status != 200)["error"]
    if url.startswith("postgresql"):
        assert statuses[1] == 409 and "Already decided by Mod" in loser["message"]
    else:
        assert statuses[1] in (409, 503)
    with app.app_context():
        decisions = db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action.in_(["published", "rejected"]))
        )
        state = db.session.get(ModerationItem, item_id).state
        db.session.remove()
    assert decisions == 1 and state in ("published", "rejected")
    app.extensions["cocreate_engine"].dispose()


def test_statistics_show_queue_decisions_and_flags(client, session, moderator):
    held = [UserFactory(trust_level=0) for _ in range(3)]
    for author in held:
        post_about(client, author, f"text of {author.display_name}")
    ids = [item_for(session, a).id for a in held]
    for item_id in ids[:2]:  # both waited three days
        session.get(ModerationItem, item_id).submitted_at -= timedelta(days=3)
    session.flush()
    login(client, moderator)
    client.post(f"/moderation/items/{ids[0]}/approve")
    client.post(f"/moderation/items/{ids[1]}/reject", data={"reason": "spam"})
    html = client.get("/moderation/stats").get_data(as_text=True)
    assert re.search(r'data-testid="stat-queue">1<', html)
    assert "50%" in html and "Mona Moderator" in html
    assert re.search(r'title="43\d\d[.\d]*">3 days<', html)  # in words, exact on hover
    moderator.locale = "zh_CN"
    session.flush()
    assert ">3天<" in client.get("/moderation/stats").get_data(as_text=True)
    customer = UserFactory()
    login(client, customer)
    assert client.get("/moderation/stats").status_code == 403


def test_statistics_name_each_day_in_the_readers_words(client, session, moderator):
    author = UserFactory(trust_level=0)
    post_about(client, author, "text to decide on")
    item_id = item_for(session, author).id
    login(client, moderator)
    client.post(f"/moderation/items/{item_id}/approve")
    today = utcnow().date()

    def day_cell() -> str:
        html = client.get("/moderation/stats").get_data(as_text=True)
        return html.split('aria-labelledby="ttd"')[1].split("<tbody>")[1].split("</time>")[0]

    # The day was the raw ISO key ("2026-11-27"), where other pages say days as people do.
    cell = day_cell()
    assert today.isoformat() not in cell.split(">")[-1]
    assert cell.endswith(f"{today:%b} {today.day}, {today.year}"), cell
    moderator.locale = "zh_CN"
    session.flush()
    assert day_cell().endswith(f"{today.year}年{today.month}月{today.day}日")


def test_statistics_count_days_in_the_moderators_time_zone(client, session, moderator):
    author = UserFactory(trust_level=0)
    post_about(client, author, "decided late in the UTC evening")
    item = item_for(session, author)
    login(client, moderator)
    client.post(f"/moderation/items/{item.id}/approve")
    yesterday = utcnow().date() - timedelta(days=1)
    decided = datetime.combine(yesterday, time(20), UTC)  # 04:00 the next day in Shanghai
    item.submitted_at = decided - timedelta(hours=2)
    for entry in session.scalars(select(AuditEntry).where(AuditEntry.item_id == item.id)):
        entry.created_at = decided
    session.flush()

    def decision_days() -> list[str]:
        html = client.get("/moderation/stats").get_data(as_text=True)
        table = html.split('aria-labelledby="ttd"')[1].split("</tbody>")[0]
        return re.findall(r'<time datetime="([0-9-]+)"', table)

    assert decision_days() == [yesterday.isoformat()]
    moderator.timezone = "Asia/Shanghai"
    session.flush()
    assert decision_days() == [(yesterday + timedelta(days=1)).isoformat()]


def test_vendor_admin_changes_rules_and_moderators_lock_trust(client, session, moderator):
    admin = staff(Role.VENDOR_ADMIN, organization=moderator.organization)
    login(client, admin)
    form = {
        "new_user_hold_posts": "0",
        "upload_auto_publish_level": "3",
        "new_user_links_allowed": "1",
    }
    form.update({f"rate_{level}_minute": "5" for level in range(5)})
    form.update({f"rate_{level}_day": "50" for level in range(5)})
    for level, facts in {
        "1": ("minutes_since_sign_up", "days_visited", "items_read"),
        "2": ("days_visited", "items_read", "published_posts", "likes_given", "likes_received"),
    }.items():
        form.update({f"trust_{level}_{fact}": "1" for fact in facts})
    assert (
        client.post("/moderation/settings", data={**form, "new_user_hold_posts": "-1"}).status_code
        == 422
    )
    assert client.post("/moderation/settings", data=form).status_code == 302
    author = UserFactory(trust_level=0)
    post_about(client, author, "published at once now")
    assert item_for(session, author).state == "published"

    login(client, moderator)  # moderators may read the settings but not change them
    assert client.post("/moderation/settings", data=form).status_code == 403
    client.post(f"/moderation/users/{author.id}/trust", data={"level": "4"})
    session.expire_all()
    assert session.get(User, author.id).trust_level == 4
    for nonsense in ("abc", "-1", "7"):
        refused = client.post(
            f"/moderation/users/{author.id}/trust", data={"level": nonsense}, follow_redirects=True
        )
        assert "Choose a trust level from 0 to 4." in refused.get_data(as_text=True)
        session.expire_all()
        assert session.get(User, author.id).trust_level == 4


def test_a_moderator_can_hide_then_restore_or_remove(app_ctx, session):
    from portal.accounts import service as accounts
    from portal.core.db import db

    author = UserFactory(trust_level=2)
    mod = staff(Role.MODERATOR)
    session.commit()
    accounts.update_about(db.session, db.session.merge(author), "visible text")
    item_id = db.session.scalar(select(ModerationItem.id))
    moderator_in_db = db.session.merge(mod)
    assert moderation.hide(db.session, moderator_in_db, item_id, "checking").state == "hidden"
    assert moderation.restore(db.session, moderator_in_db, item_id).state == "published"
    moderation.hide(db.session, moderator_in_db, item_id, "again")
    assert moderation.remove(db.session, moderator_in_db, item_id, "gone").state == "removed"
    assert db.session.get(UserProfile, author.id).about_visible is False


def test_emptying_pending_text_withdraws_it_from_the_queue(client, session, moderator):
    author = UserFactory(trust_level=0)
    post_about(client, author, "Text a moderator has not seen yet")
    item = item_for(session, author)
    assert item.state == "pending"
    cleared = client.post("/profile/about", data={"about": "  "}, follow_redirects=True)
    assert "Your profile text was removed." in cleared.get_data(as_text=True)
    item = item_for(session, author)
    assert (item.state, item.needs_review) == ("removed", False)
    audit = session.scalars(select(AuditEntry).where(AuditEntry.item_id == item.id)).all()
    assert [(a.action, a.actor_id) for a in audit][-1] == ("withdrawn", author.id)
    unchanged = client.post("/profile/about", data={"about": ""}, follow_redirects=True)
    assert "Your profile text is unchanged." in unchanged.get_data(as_text=True)

    login(client, moderator)
    assert "Text a moderator has not seen yet" not in client.get("/moderation/queue").get_data(
        as_text=True
    )
    late = client.post(f"/moderation/items/{item.id}/approve")
    assert late.status_code in (404, 409)
    session.expire_all()
    assert session.get(UserProfile, author.id).about_visible is False
    assert "Flag this text" not in client.get(f"/users/{author.id}").get_data(as_text=True)


def test_rereading_the_same_profile_counts_once(client, session):
    reader, other = UserFactory(), UserFactory()
    login(client, reader)
    for _ in range(3):
        client.get(f"/users/{other.id}")
    with client.application.app_context():
        facts = moderation.trust_facts(session, session.get(User, reader.id))
    assert facts.items_read == 1
