"""The search log: page searches and typing bursts, clicks (CSRF), insights and the
self-service rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.core.activity import Activity, record_activity, register_verbs
from portal.core.db import utcnow
from portal.core.identity import Role
from portal.search import service
from portal.search.models import SearchLogEntry
from tests.conftest import login
from tests.factories import UserFactory, staff
from tests.test_search import KIND, Store, index_all
from tests.test_search import store as store  # noqa: F401  (fixture)

# Verbs the Q&A and knowledge-base features record; registered here so this test does not
# depend on those packages being present.
register_verbs("answer.helpful", "article.helpful", "question.asked")


def entries(session) -> list[SearchLogEntry]:
    session.expire_all()
    return list(session.scalars(select(SearchLogEntry).order_by(SearchLogEntry.id)))


def activities(session, verb: str) -> list[Activity]:
    return list(session.scalars(select(Activity).where(Activity.verb == verb)))


@pytest.fixture
def indexed(app, store: Store) -> Store:
    store.put(1, "Renewal checklist", "steps before a renewal call")
    store.put(2, "Renewal pricing", "discounts")
    index_all(app, store)
    return store


def test_page_search_is_logged_with_an_activity(client, session, indexed):
    user = UserFactory()
    login(client, user)
    client.get("/search?q=renewal")
    client.get("/search?q=renewal&page=2")  # paging is not another search
    client.get("/search?q=nothing+here")
    logged = entries(session)
    assert [(e.query, e.result_count, e.source) for e in logged] == [
        ("renewal", 2, "page"),
        ("nothing here", 0, "page"),
    ]
    assert logged[0].session_key and logged[0].session_key == logged[1].session_key
    assert logged[0].user_id == user.id and logged[0].organization_id == user.organization_id
    performed = activities(session, "search.performed")
    assert len(performed) == 2
    assert performed[0].data == {"results": 2, "session": logged[0].session_key, "source": "page"}


def test_anonymous_searches_are_logged_without_a_search_session(client, session, indexed):
    client.get("/search?q=renewal")
    assert [(e.query, e.session_key, e.user_id) for e in entries(session)] == [
        ("renewal", "", None)
    ]


def test_a_typing_burst_is_logged_once_with_its_final_text(client, session, indexed):
    login(client, UserFactory())
    ids = {
        client.get(f"/search/suggest?q={q}").get_json()["log_id"] for q in ("re", "ren", "renew")
    }
    assert len(ids) == 1
    client.get("/search/suggest?q=pricing")  # a new burst
    client.get("/search/suggest?source=ask&q=renewal")  # the ask page is its own source
    logged = entries(session)
    assert [(e.query, e.source) for e in logged] == [
        ("renew", "suggest"),
        ("pricing", "suggest"),
        ("renewal", "ask"),
    ]
    assert logged[0].result_count == 2
    assert len(activities(session, "search.performed")) == 3


def test_click_is_recorded_for_the_visit_only(client, session, indexed):
    user = UserFactory()
    login(client, user)
    log_id = client.get("/search/suggest?q=renewal").get_json()["log_id"]
    response = client.post("/search/click", json={"log_id": log_id, "kind": KIND, "id": 1})
    assert response.status_code == 204
    entry = entries(session)[0]
    assert (entry.clicked_kind, entry.clicked_id) == (KIND, 1) and entry.clicked_at
    clicked = activities(session, "search.clicked")
    assert clicked[0].data == {"kind": KIND, "id": 1, "session": entry.session_key}

    bad = client.post("/search/click", json={"log_id": "x", "kind": KIND, "id": 1})
    assert bad.status_code == 400
    assert (
        client.post("/search/click", json={"log_id": log_id, "kind": "nope", "id": 1}).status_code
        == 400
    )
    assert client.post("/search/click", data="not json").status_code == 400

    other = app_client_for(client, UserFactory())
    assert (
        other.post("/search/click", json={"log_id": log_id, "kind": KIND, "id": 2}).status_code
        == 404
    )


def app_client_for(client, user):
    other = client.application.test_client()
    return login(other, user)


def test_click_needs_the_csrf_header(client, session, indexed):
    client.application.config["WTF_CSRF_ENABLED"] = True  # read on each request
    login(client, UserFactory())
    page = client.get("/search?q=renewal").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    log_id = int(page.split('data-search-log="')[1].split('"')[0])
    body = {"log_id": log_id, "kind": KIND, "id": 1}
    assert client.post("/search/click", json=body).status_code == 400
    assert (
        client.post("/search/click", json=body, headers={"X-CSRFToken": token}).status_code == 204
    )


def test_insights_are_for_staff(client, session, indexed):
    login(client, UserFactory())
    assert client.get("/search/insights").status_code == 403
    login(client, staff(Role.CSM))
    client.get("/search?q=renewal")
    client.get("/search?q=renewal")
    client.get("/search?q=unicorn+sla")
    html = client.get("/search/insights?days=7").get_data(as_text=True)
    assert 'data-testid="searches">3<' in html
    assert "unicorn sla" in html.split('data-testid="zero-results"')[1]
    assert client.get("/search/insights?days=bogus").status_code == 200


def test_insights_without_searches_show_no_rate(client, session):
    login(client, staff(Role.CSM))
    html = client.get("/search/insights?days=7").get_data(as_text=True)
    for figure in ("click-through", "self-service"):
        shown = html.split(f'data-testid="{figure}">')[1].split("</div>")[0]
        assert "%" not in shown and "–" in shown, shown  # not "0%": there was nothing to rate


def _session_of(session, user, key, minutes_ago, clicked_after=None, query="renewal"):
    started = utcnow() - timedelta(minutes=minutes_ago)
    entry = SearchLogEntry(
        searched_at=started,
        user_id=user.id,
        organization_id=user.organization_id,
        session_key=key,
        source="page",
        query=query,
        normalized=query,
        result_count=2,
    )
    if clicked_after is not None:
        entry.clicked_kind, entry.clicked_id = KIND, 1
        entry.clicked_at = started + timedelta(minutes=clicked_after)
    session.add(entry)
    session.flush()
    return started


def _did(session, user, verb, at):
    activity = record_activity(session, user, user.organization, verb)
    activity.occurred_at = at
    session.flush()


def test_self_service_rate(session):
    helped, asked_too, no_click, no_mark, late_question = (UserFactory() for _ in range(5))
    # 1. clicked, marked helpful, no question: served
    t = _session_of(session, helped, "a" * 32, 60, clicked_after=1)
    _did(session, helped, "answer.helpful", t + timedelta(minutes=3))
    # 2. clicked and marked helpful, but asked a question 10 minutes in: not served
    t = _session_of(session, asked_too, "b" * 32, 60, clicked_after=1)
    _did(session, asked_too, "article.helpful", t + timedelta(minutes=2))
    _did(session, asked_too, "question.asked", t + timedelta(minutes=10))
    # 3. marked helpful without clicking a result: not served (not through search)
    t = _session_of(session, no_click, "c" * 32, 60)
    _did(session, no_click, "answer.helpful", t + timedelta(minutes=2))
    # 4. clicked, never marked anything helpful: not served
    _session_of(session, no_mark, "d" * 32, 60, clicked_after=1)
    # 5. clicked, helpful, and a question two hours later (outside 30 minutes): served
    t = _session_of(session, late_question, "e" * 32, 300, clicked_after=1)
    _did(session, late_question, "answer.helpful", t + timedelta(minutes=5))
    _did(session, late_question, "question.asked", t + timedelta(minutes=120))
    # a helpful mark before the click does not count
    _did(session, no_mark, "answer.helpful", utcnow() - timedelta(minutes=61))

    report = service.insights(session, utcnow() - timedelta(days=1))
    assert (report.sessions, report.self_served) == (5, 2)
    assert report.self_service_rate == pytest.approx(0.4)
    assert report.searches == 5 and report.clicked == 4
    assert report.click_through == pytest.approx(0.8)
    assert report.top[0].query == "renewal" and report.top[0].searches == 5
    # a period that holds none of it
    old = service.insights(session, utcnow() - timedelta(days=30), utcnow() - timedelta(days=2))
    assert (old.searches, old.sessions, old.self_service_rate) == (0, 0, 0.0)


def test_searches_are_logged_outside_a_test_transaction(tmp_root, store):
    """As in production, on the app's own engine: an anonymous page's rows (on PostgreSQL one
    statement committing itself) and a signed-in page's (in the request's transaction) are
    both stored, linked to their activity, and the page's click goes to its own entry."""
    from portal import migrate
    from portal.accounts.service import create_user
    from portal.app import create_app
    from portal.core.db import db
    from portal.core.identity import Organization
    from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config

    url = sibling_database(TEST_DATABASE_URL, "search_log", tmp_root)
    migrate.upgrade(url)
    app = create_app(test_config(url, tmp_root))
    store.put(1, "Renewal checklist", "steps before a renewal call")
    index_all(app, store)
    with app.app_context():
        org = Organization(name="C", slug="c", kind="customer")
        db.session.add(org)
        db.session.flush()
        member = create_user(db.session, org, "m@c.example", "M", "long-password-xyz")
        db.session.commit()
        member_id = member.id

    anonymous = app.test_client()
    page = anonymous.get("/search?q=renewal").get_data(as_text=True)
    anonymous_log = int(page.split('data-search-log="')[1].split('"')[0])
    assert anonymous.get("/search?q=renewal").status_code == 200  # remembered results, logged
    signed_in = app.test_client()
    with signed_in.session_transaction() as flask_session:
        flask_session["_user_id"] = str(member_id)
    page = signed_in.get("/search?q=renewal+checklist").get_data(as_text=True)
    member_log = int(page.split('data-search-log="')[1].split('"')[0])
    body = {"log_id": member_log, "kind": KIND, "id": 1}
    assert signed_in.post("/search/click", json=body).status_code == 204

    with app.app_context():
        logged = list(db.session.scalars(select(SearchLogEntry).order_by(SearchLogEntry.id)))
        performed = activities(db.session, "search.performed")
        assert [(e.query, e.user_id, e.result_count) for e in logged] == [
            ("renewal", None, 1),
            ("renewal", None, 1),
            ("renewal checklist", member_id, 1),
        ]
        assert logged[0].id == anonymous_log and logged[2].id == member_log
        assert logged[2].clicked_id == 1 and logged[0].clicked_id is None
        assert sorted((a.subject_type, a.subject_id, a.actor_id) for a in performed) == [
            ("search_log", logged[0].id, None),
            ("search_log", logged[1].id, None),
            ("search_log", logged[2].id, member_id),
        ]
        db.session.remove()
    app.extensions["cocreate_engine"].dispose()


def test_background_requests_never_rewrite_the_session_cookie(
    client, session, indexed, monkeypatch
):
    """A suggestion answered after a form was posted must not send back the session as it was
    before the post (its flashed "awaiting review" message was lost): as-you-type requests and
    result clicks never write the cookie, however much time passes, and the search session
    they log is the one the search page then stores."""
    from portal.search import views

    login(client, UserFactory())
    clock = [utcnow().timestamp()]
    monkeypatch.setattr(views, "utcnow", lambda: datetime.fromtimestamp(clock[0], tz=UTC))
    for typed in ("ren", "rene", "renew", "renewal"):
        clock[0] += 5
        answer = client.get(f"/search/suggest?q={typed}")
        assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    clock[0] += 3 * 3600  # past the visit's idle time and the last-seen resolution
    answer = client.get("/search/suggest?q=renewal c")
    assert "Set-Cookie" not in answer.headers
    click = client.post("/search/click", json={"log_id": answer.get_json()["log_id"],
                                               "kind": KIND, "id": 1})  # fmt: skip
    assert click.status_code == 204 and "Set-Cookie" not in click.headers
    page = client.get("/search?q=renewal")
    assert "session=" in page.headers.get("Set-Cookie", "")  # a page stores the visit's key
    keys = {e.session_key for e in entries(session)}
    assert len(keys) == 1 and "" not in keys  # one search session throughout


def test_requests_sent_together_share_the_search_session(client, session, indexed):
    """A suggestion still in flight when the search form is sent carries the same cookie as
    the form; both answer with a new visit key, and the browser keeps whichever cookie comes
    last. The click on a result must match its search either way, and the visit stay one."""
    login(client, UserFactory())
    client.get("/")  # the cookie holds the sign-in time, as after the sign-in form
    twin = client.application.test_client()  # the other request of the pair, same cookie
    twin.set_cookie("session", client.get_cookie("session").value)
    suggested = client.get("/search/suggest?q=renewal").get_json()["log_id"]
    page = twin.get("/search?q=renewal").get_data(as_text=True)
    searched = int(page.split('data-search-log="')[1].split('"')[0])
    assert client.get_cookie("session").value != twin.get_cookie("session").value
    for browser, log_id in ((client, searched), (twin, suggested)):
        response = browser.post("/search/click", json={"log_id": log_id, "kind": KIND, "id": 1})
        assert response.status_code == 204
    keys = {e.session_key for e in entries(session)}
    assert len(keys) == 1 and "" not in keys
    assert all(e.clicked_at for e in entries(session))
