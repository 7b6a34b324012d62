"""The in-app NPS survey: who sees it and when, answering and dismissing through HTTP, what an
answer sets in motion, and what the survey costs a page."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from cs_metrics import surveys
from cs_metrics.models import (
    CsTask,
    NpsResponse,
    NpsSurveyState,
    TaskKind,
    TaskStatus,
)
from cs_metrics.settings import set_setting
from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.identity import Role
from portal.core.notifications import Notification
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.cs_factories import AccountFactory
from tests.factories import OrganizationFactory, UserFactory, staff

CARD = 'data-testid="nps-survey"'
FRIDAY = datetime(2026, 3, 6, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def csm(session):
    return staff(Role.CSM, display_name="Carla CSM")


@pytest.fixture
def org(session, csm):
    org = OrganizationFactory(name="Acme")
    AccountFactory(organization_id=org.id, csm_id=csm.id)
    return org


@pytest.fixture
def customer(session, org):
    """A customer user whose account is older than the 14-day minimum."""
    return UserFactory(organization=org, created_at=utcnow() - timedelta(days=60))


def call(app, function, *args, **kwargs):
    """A service call in its own app context (popped before the next request)."""
    with app.app_context():
        return function(*args, **kwargs)


def state(session, user) -> NpsSurveyState | None:
    session.expire_all()
    return session.get(NpsSurveyState, user.id)


def tasks(session, org_id) -> list[CsTask]:
    session.expire_all()
    return list(session.scalars(select(CsTask).where(CsTask.organization_id == org_id)))


# --- who is due ----------------------------------------------------------------------------


def test_due_customer_sees_the_card_and_not_again_within_90_days_after_dismissing(
    app, client, session, customer
):
    login(client, customer)
    page = client.get("/").get_data(as_text=True)
    assert CARD in page
    assert "Not at all likely" in page and "Extremely likely" in page and "<legend" in page
    assert state(session, customer).last_shown_at is not None  # the showing counts

    response = client.post("/cs/survey/dismiss", data={"next": "/kb/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/kb/")
    assert CARD not in client.get("/").get_data(as_text=True)
    assert state(session, customer).last_dismissed_at is not None

    # Another browser (no remembered answer) asks the database: still not due.
    other = app.test_client()
    login(other, customer)
    assert CARD not in other.get("/").get_data(as_text=True)
    now = utcnow()
    assert not call(app, surveys.survey_due, session, customer, now + timedelta(days=89))
    assert call(app, surveys.survey_due, session, customer, now + timedelta(days=91))


def test_answering_stores_an_in_app_response_and_hides_the_card_for_90_days(
    app, client, session, customer, org
):
    login(client, customer)
    assert CARD in client.get("/").get_data(as_text=True)
    response = client.post("/cs/survey", data={"score": "8", "comment": " Good tool ", "next": "/"})
    assert response.status_code == 302
    saved = session.scalars(select(NpsResponse)).one()
    assert (saved.score, saved.comment, saved.source, saved.user_id) == (
        8,
        "Good tool",
        "in_app",
        customer.id,
    )
    assert saved.contact_email == customer.email and saved.organization_id == org.id
    assert saved.external_id is None
    activity = session.scalars(select(Activity).where(Activity.verb == "nps.answered")).one()
    assert activity.organization_id == org.id and activity.data["score"] == 8
    assert tasks(session, org.id) == []  # a passive opens nothing
    assert CARD not in client.get("/").get_data(as_text=True)

    # A second answer within the cadence is refused (JSON for fetch).
    again = client.post("/cs/survey", data={"score": "2"}, headers={"Accept": "application/json"})
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"
    assert session.scalars(select(NpsResponse)).all() == [saved]
    assert not call(app, surveys.survey_due, session, customer, utcnow() + timedelta(days=89))


def test_ignored_card_counts_as_shown_and_stays_for_the_rest_of_the_day(
    app, client, session, customer
):
    login(client, customer)
    assert CARD in client.get("/").get_data(as_text=True)
    assert CARD in client.get("/kb/").get_data(as_text=True)  # same browser, same showing
    fresh = app.test_client()
    login(fresh, customer)
    assert CARD not in fresh.get("/").get_data(as_text=True)


def test_staff_and_anonymous_never_see_it_and_staff_cannot_answer(app, client, session, csm):
    assert CARD not in client.get("/").get_data(as_text=True)
    admin = staff(Role.VENDOR_ADMIN, created_at=utcnow() - timedelta(days=400))
    for person in (csm, admin):
        login(client, person)
        assert CARD not in client.get("/").get_data(as_text=True)
        assert not call(app, surveys.survey_due, session, person, utcnow())
        assert client.post("/cs/survey", data={"score": "9"}).status_code == 403
        assert client.post("/cs/survey/dismiss").status_code == 403
    assert session.scalars(select(NpsResponse)).all() == []
    client.post("/accounts/sign-out")


def test_anonymous_post_is_sent_to_sign_in(client):
    response = client.post("/cs/survey", data={"score": "9"})
    assert response.status_code == 302 and "sign-in" in response.headers["Location"]


def test_new_users_disabled_survey_and_the_90_day_floor(app, session, org):
    admin = staff(Role.VENDOR_ADMIN)
    now = utcnow()
    newcomer = UserFactory(organization=org, created_at=now - timedelta(days=3))
    veteran = UserFactory(organization=org, created_at=now - timedelta(days=300))
    assert not call(app, surveys.survey_due, session, newcomer, now)
    assert call(app, surveys.survey_due, session, newcomer, now + timedelta(days=12))
    assert call(app, surveys.survey_due, session, veteran, now)

    # A 30-day cadence setting is raised to 90 days.
    call(app, set_setting, session, admin, "nps_survey", {"cadence_days": 30})
    session.add(NpsSurveyState(user_id=veteran.id, last_answered_at=now - timedelta(days=60)))
    session.flush()
    assert not call(app, surveys.survey_due, session, veteran, now)
    assert call(app, surveys.survey_due, session, veteran, now + timedelta(days=31))

    call(app, set_setting, session, admin, "nps_survey", {"enabled": False})
    assert not call(app, surveys.survey_due, session, veteran, now + timedelta(days=400))

    inactive = UserFactory(organization=org, created_at=now - timedelta(days=300), active=False)
    assert not call(app, surveys.survey_due, session, inactive, now)


# --- what an answer does -----------------------------------------------------------------------


def test_friday_detractor_opens_a_close_the_loop_task_for_the_csm_due_tuesday(
    app, session, customer, org, csm
):
    response = call(app, surveys.record_answer, session, customer, 3, "Too slow", FRIDAY)
    [task] = tasks(session, org.id)
    assert task.kind == TaskKind.CLOSE_THE_LOOP and task.status == TaskStatus.OPEN
    assert task.assignee_id == csm.id
    assert task.due_on == date(2026, 3, 10)  # Friday + 2 business days = Tuesday
    assert (task.source_type, task.source_id) == ("nps_response", response.id)
    assert session.scalars(select(Notification).where(Notification.user_id == csm.id)).all()


def test_promoter_opens_a_referral_ask_task(app, session, customer, org, csm):
    call(app, surveys.record_answer, session, customer, 10, None, FRIDAY)
    [task] = tasks(session, org.id)
    assert task.kind == TaskKind.REFERRAL_ASK and task.assignee_id == csm.id
    assert task.due_on is None


def test_bad_scores_are_refused_with_the_field_named(app, client, session, customer):
    login(client, customer)
    for bad in ("11", "-1", "ten", ""):
        response = client.post(
            "/cs/survey", data={"score": bad}, headers={"Accept": "application/json"}
        )
        assert response.status_code == 422, bad
        assert "score" in response.json["error"]["fields"]
    html = client.post("/cs/survey", data={"score": "42", "next": "/"})
    assert html.status_code == 302  # a form post goes back with a message
    with pytest.raises(Exception, match="0 to 10"):
        call(app, surveys.record_answer, session, customer, 7.0, None)
    assert session.scalars(select(NpsResponse)).all() == []


def test_answer_json_and_unsafe_next(client, session, customer):
    login(client, customer)
    ok = client.post("/cs/survey", data={"score": "9"}, headers={"Accept": "application/json"})
    assert ok.status_code == 200 and ok.json["status"] == "answered"
    login(
        client,
        UserFactory(organization=customer.organization, created_at=utcnow() - timedelta(days=99)),
    )
    response = client.post("/cs/survey/dismiss", data={"next": "//evil.example/x"})
    assert response.status_code == 302 and "evil" not in response.headers["Location"]


# --- cost -------------------------------------------------------------------------------------


def test_the_survey_check_costs_no_query_for_a_customer_who_is_not_due(
    client, connection, session, customer
):
    session.add(NpsSurveyState(user_id=customer.id, last_answered_at=utcnow() - timedelta(days=5)))
    session.flush()
    login(client, customer)
    first = count_statements(client, connection, "/")  # checks once, then remembers
    second = count_statements(client, connection, "/")
    third = count_statements(client, connection, "/")
    assert second == third
    assert second <= first - 2  # the setting and the survey state are no longer read


def test_staff_pages_pay_nothing_for_the_survey(client, connection, session, csm):
    login(client, csm)
    first = count_statements(client, connection, "/")
    assert count_statements(client, connection, "/") == first


def test_pages_work_with_empty_survey_tables(client, session, customer):
    login(client, customer)
    assert client.get("/").status_code == 200
    assert client.get("/kb/").status_code == 200
