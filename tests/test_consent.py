"""Consent for NPS surveys and marketing email: the profile checkboxes, the history they
leave, the survey staying away from whoever withdrew, and an answer recording consent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cs_metrics import surveys
from portal.core import consent as core_consent
from portal.core.consent import Consent
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.privacy import consent
from tests import cs_factories
from tests.conftest import login
from tests.cs_factories import AccountFactory
from tests.factories import OrganizationFactory, UserFactory

CARD = 'data-testid="nps-survey"'


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def customer(session):
    org = OrganizationFactory(name="Acme")
    AccountFactory(organization_id=org.id)
    return UserFactory(organization=org, created_at=utcnow() - timedelta(days=60))


def rows(session, user):
    session.expire_all()
    return list(
        session.scalars(select(Consent).where(Consent.user_id == user.id).order_by(Consent.id))
    )


def checkbox(page: str, name: str) -> str:
    start = page.index(f'name="{name}"')
    return page[page.rindex("<input", 0, start) : page.index(">", start)]


def test_defaults_marketing_off_and_nps_on_until_a_choice_is_made(app_ctx, session, customer):
    assert consent.current(session, customer, "marketing_email") is None
    assert consent.current(session, customer, "nps_survey") is None
    assert consent.effective(session, customer, "marketing_email") is False
    assert consent.effective(session, customer, "nps_survey") is True


def test_the_latest_choice_counts_and_unchanged_choices_add_no_row(app_ctx, session, customer):
    assert consent.record(session, customer, "marketing_email", True, "profile")
    assert not consent.record(session, customer, "marketing_email", True, "profile")
    assert consent.record(session, customer, "marketing_email", False, "profile")
    assert consent.current(session, customer, "marketing_email") is False
    assert [(r.purpose, r.granted, r.source) for r in rows(session, customer)] == [
        ("marketing_email", True, "profile"),
        ("marketing_email", False, "profile"),
    ]


def test_unknown_purpose_or_source_is_a_field_error(app_ctx, session, customer):
    with pytest.raises(DomainError) as error:
        consent.record(session, customer, "telemarketing", True)
    assert "purpose" in error.value.fields
    with pytest.raises(DomainError):
        consent.record(session, customer, "nps_survey", True, "guess")
    assert rows(session, customer) == []


def test_profile_shows_the_defaults_and_saves_both_choices(client, session, customer):
    login(client, customer)
    page = client.get("/profile").get_data(as_text=True)
    assert "checked" not in checkbox(page, "marketing_email")
    assert "checked" in checkbox(page, "nps_survey")

    response = client.post("/profile/consent", data={"marketing_email": "y"})
    assert response.status_code == 302
    assert {(r.purpose, r.granted, r.source) for r in rows(session, customer)} == {
        ("marketing_email", True, "profile"),
        ("nps_survey", False, "profile"),
    }
    page = client.get("/profile").get_data(as_text=True)
    assert "checked" in checkbox(page, "marketing_email")
    assert "checked" not in checkbox(page, "nps_survey")


def test_withdrawn_nps_consent_hides_the_survey_and_granting_again_restores_it(
    app, client, session, customer
):
    login(client, customer)
    assert CARD in client.get("/").get_data(as_text=True)  # due, and remembered as due
    client.post("/profile/consent", data={"nps_survey": ""})
    assert CARD not in client.get("/").get_data(as_text=True)
    with app.app_context():
        assert surveys.survey_status(session, customer, utcnow()) == (False, None)
        assert not surveys.survey_due(session, customer, utcnow() + timedelta(days=400))
    # An answer posted anyway (an old tab) is still accepted; withdrawal only stops asking.
    client.post("/profile/consent", data={"nps_survey": "y"})
    with app.app_context():
        assert core_consent.nps_allowed(session, customer.id)


def test_answering_the_survey_records_nps_consent_from_the_survey(client, session, customer):
    login(client, customer)
    client.get("/")
    assert client.post("/cs/survey", data={"score": "9", "next": "/"}).status_code == 302
    assert [(r.purpose, r.granted, r.source) for r in rows(session, customer)] == [
        ("nps_survey", True, "survey")
    ]


def test_anonymous_cannot_post_consent(client, session):
    response = client.post("/profile/consent", data={"marketing_email": "y"})
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    assert session.scalars(select(Consent)).all() == []
