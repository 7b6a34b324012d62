"""KPI scorecards, targets, company figures and NPS reports (cs_metrics.scorecards) and their
pages, on small hand-made data whose figures are worked out in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event

from cs_metrics import scorecards
from cs_metrics.models import ImprovementItem, KpiTarget, Referral
from portal.core.activity import Activity
from portal.core.errors import DomainError, PermissionDenied
from portal.core.identity import Role
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.cs_factories import (
    AccountFactory,
    InvoiceFactory,
    NpsFactory,
    SnapshotFactory,
    TicketFactory,
)
from tests.factories import OrganizationFactory, UserFactory, VendorFactory, staff

MARCH = scorecards.month(2026, 3)
FEBRUARY = scorecards.month(2026, 2)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def vendor(session):
    return VendorFactory()


@pytest.fixture
def csm(vendor):
    return staff(Role.CSM, organization=vendor, display_name="Alice CSM")


@pytest.fixture
def admin(vendor):
    return staff(Role.VENDOR_ADMIN, organization=vendor, display_name="Vera Admin")


def account(csm=None, **kwargs):
    org = OrganizationFactory()
    AccountFactory(organization_id=org.id, csm_id=csm.id if csm else None, **kwargs)
    return org


def responses(org, day, promoters=0, passives=0, detractors=0):
    for score, n in ((10, promoters), (8, passives), (3, detractors)):
        for _ in range(n):
            NpsFactory(organization_id=org.id, score=score, responded_at=at(day))


def item(session, csm, org, opened, closed=None):
    row = ImprovementItem(
        organization_id=org.id,
        department="product",
        title="Bulk export",
        csm_id=csm.id,
        status="closed" if closed else "open",
        opened_at=at(opened),
        closed_at=at(closed) if closed else None,
    )
    session.add(row)
    session.flush()
    return row


def referral(session, org, *, csm=None, status="received", received=None):
    row = Referral(
        organization_id=org.id,
        csm_id=csm.id if csm else None,
        status=status,
        asked_at=at(date(2026, 2, 1)),
        received_at=at(received) if received else None,
    )
    session.add(row)
    session.flush()
    return row


def card_of(cards, csm):
    return next(c for c in cards if c.csm_id == csm.id)


# --- periods ------------------------------------------------------------------------------


def test_periods_and_their_previous_period():
    assert scorecards.previous(MARCH) == FEBRUARY
    assert scorecards.previous(scorecards.quarter(2026, 1)) == scorecards.quarter(2025, 4)
    week = scorecards.custom(date(2026, 3, 2), date(2026, 3, 8))
    assert scorecards.previous(week) == scorecards.custom(date(2026, 2, 23), date(2026, 3, 1))
    assert [
        scorecards.period_label(m) for m in scorecards.months_of(scorecards.quarter(2026, 1))
    ] == [
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    today = date(2026, 5, 17)
    assert scorecards.parse_period({}, today) == scorecards.month(2026, 5)
    assert scorecards.parse_period({"kind": "quarter", "quarter": "2026-Q1"}, today) == (
        scorecards.quarter(2026, 1)
    )
    with pytest.raises(DomainError) as error:
        scorecards.parse_period(
            {"kind": "custom", "start": "2026-03-09", "end": "2026-03-01"}, today
        )
    assert error.value.field == "end"
    with pytest.raises(DomainError) as error:
        scorecards.parse_period({"a_kind": "month", "a_month": "2026-13"}, today, prefix="a_")
    assert error.value.field == "a_month"


# --- the three tiers ------------------------------------------------------------------------


def test_base_tier_is_the_share_of_accounts_at_85_or_more_at_the_periods_end(session, csm):
    # 4 accounts: 90 and 85 healthy, 60 not, one never scored -> 2/4 = 50% vs 80%
    scores = [90.0, 85.0, 60.0]
    orgs = [account(csm) for _ in range(4)]
    for org, score in zip(orgs, scores, strict=False):
        SnapshotFactory(organization_id=org.id, day=date(2026, 3, 20), score=score)
    # a later snapshot (after March) does not count for March
    SnapshotFactory(organization_id=orgs[2].id, day=date(2026, 4, 5), score=99.0)
    account(None)  # an account of nobody

    card = scorecards.csm_scorecard(session, csm.id, MARCH)

    base = card.scorecard.base
    assert base.actual == 0.5 and base.target == 0.8
    assert base.attainment == pytest.approx(0.625) and not base.met
    assert base.details["accounts"] == 4 and base.details["unscored"] == 1
    assert card.scorecard.tier_reached == 0


def test_collaboration_three_closed_in_a_month_is_150_percent(session, csm):
    org = account(csm)
    for day in (date(2026, 3, 2), date(2026, 3, 15), date(2026, 3, 31)):
        item(session, csm, org, date(2026, 2, 10), day)
    item(session, csm, org, date(2026, 3, 1), date(2026, 4, 1))  # closed in April
    item(session, csm, org, date(2026, 3, 5))  # opened, still open

    collaboration = scorecards.csm_scorecard(session, csm.id, MARCH).scorecard.collaboration

    assert collaboration.actual == 3 and collaboration.target == 2
    assert collaboration.attainment == 1.5 and collaboration.met
    assert collaboration.details["opened"] == 2  # two opened in March


def test_nps_change_with_significance_and_referrals(session, csm, vendor):
    org = account(csm)
    # February: 10 promoters, 10 passives, 20 detractors -> NPS -25
    responses(org, date(2026, 2, 10), promoters=10, passives=10, detractors=20)
    # March: 30 / 5 / 5 -> NPS 62.5; change +87.5 points.
    responses(org, date(2026, 3, 10), promoters=30, passives=5, detractors=5)
    # var Feb = .25 + .5 - .25**2 = .6875; March = .75 + .125 - .625**2 = .484375
    # z = .875 / sqrt(.6875/40 + .484375/40) = 5.11 -> p < 0.001
    referral(session, org, csm=csm, received=date(2026, 3, 3))
    referral(session, org, received=date(2026, 3, 20))  # no CSM on it: the account's CSM
    referral(session, org, csm=csm, status="asked")  # asked only: not counted
    referral(session, org, csm=csm, received=date(2026, 4, 2))  # April

    nps_kpi, referrals = scorecards.csm_scorecard(session, csm.id, MARCH).scorecard.strategic

    assert nps_kpi.actual == pytest.approx(87.5)
    assert nps_kpi.details["z"] == pytest.approx(5.11, abs=0.01)
    assert nps_kpi.details["significant"] and nps_kpi.details["p_value"] < 0.001
    assert nps_kpi.met
    assert referrals.actual == 2
    assert referrals.target == pytest.approx(2 / 3)  # 2 per quarter, one month
    assert referrals.details["promoters"] == 30


def test_a_large_but_insignificant_nps_change_is_not_met(session, csm):
    org = account(csm)
    responses(org, date(2026, 2, 10), promoters=1, passives=1, detractors=1)  # NPS 0
    responses(org, date(2026, 3, 10), promoters=2, passives=1, detractors=1)  # NPS 25

    nps_kpi = scorecards.csm_scorecard(session, csm.id, MARCH).scorecard.strategic[0]

    assert nps_kpi.actual == pytest.approx(25.0)
    assert not nps_kpi.details["significant"] and not nps_kpi.met


def test_the_scorecard_says_why_a_change_above_target_is_not_met(client, session, csm):
    org = account(csm)
    responses(org, date(2026, 2, 10), promoters=1, passives=1, detractors=1)  # NPS 0
    responses(org, date(2026, 3, 10), promoters=2, passives=1, detractors=1)  # NPS 25
    login(client, csm)
    html = client.get(
        "/cs/scorecard?kind=month&month=2026-03", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert html.count('data-testid="not-significant"') == 1  # the NPS change, not referrals
    assert "Not met: not significant" in html
    responses(org, date(2026, 3, 12), promoters=0, detractors=3)  # now below target: plain
    html = client.get("/cs/scorecard?kind=month&month=2026-03").get_data(as_text=True)
    assert 'data-testid="not-significant"' not in html and "Not met" in html


def test_targets_per_csm_override_the_default_row_and_the_built_in_default(
    session, csm, admin, vendor
):
    bob = staff(Role.CSM, organization=vendor, display_name="Bob CSM")
    carol = staff(Role.CSM, organization=vendor, display_name="Carol CSM")
    scorecards.set_target(session, admin, None, "base_healthy_share", 0.5)
    scorecards.set_target(session, admin, bob.id, "base_healthy_share", 0.6)
    scorecards.set_target(session, admin, bob.id, "collaboration_closed", 1)
    scorecards.set_target(session, admin, bob.id, "collaboration_closed", 3)  # updated in place

    cards = scorecards.all_scorecards(session, admin, MARCH)

    alice, bob_card, carol_card = card_of(cards, csm), card_of(cards, bob), card_of(cards, carol)
    assert bob_card.scorecard.base.target == 0.6 and bob_card.target_sources[
        "base_healthy_share"
    ] == ("csm")
    assert bob_card.scorecard.collaboration.target == 3
    assert carol_card.scorecard.base.target == 0.5
    assert carol_card.target_sources["base_healthy_share"] == "default"
    assert alice.scorecard.collaboration.target == 2  # built in
    assert alice.target_sources["collaboration_closed"] == "built_in"
    assert alice.scorecard.strategic[0].target == 5
    # removing Bob's own target falls back to the default row
    scorecards.set_target(session, admin, bob.id, "base_healthy_share", None)
    assert scorecards.csm_scorecard(session, bob.id, MARCH).scorecard.base.target == 0.5


def test_set_target_is_for_vendor_admins_and_validated(session, csm, admin, vendor):
    pm = staff(Role.PRODUCT_MANAGER, organization=vendor)
    with pytest.raises(PermissionDenied):
        scorecards.set_target(session, csm, None, "nps_change", 3)
    with pytest.raises(PermissionDenied):
        scorecards.set_target(session, pm, None, "nps_change", 3)
    with pytest.raises(DomainError) as error:
        scorecards.set_target(session, admin, None, "base_healthy_share", 1.5)
    assert error.value.field == "base_healthy_share"
    with pytest.raises(DomainError) as error:
        scorecards.set_target(session, admin, pm.id, "referrals", 2)
    assert error.value.field == "csm_id"
    with pytest.raises(DomainError) as error:
        scorecards.set_target(session, admin, None, "logins", 2)
    assert error.value.field == "kpi"
    assert session.query(KpiTarget).count() == 0


def test_a_csm_sees_their_own_card_first_and_only_theirs_with_own_book_only(
    session, csm, vendor, admin
):
    from cs_metrics.settings import set_setting

    staff(Role.CSM, organization=vendor, display_name="Aaron CSM")
    zoe = staff(Role.CSM, organization=vendor, display_name="Zoe CSM")

    names = [c.name for c in scorecards.all_scorecards(session, zoe, MARCH)]
    assert names == ["Zoe CSM", "Aaron CSM", "Alice CSM"]

    set_setting(session, admin, "own_book_only", True)
    assert [c.name for c in scorecards.all_scorecards(session, zoe, MARCH)] == ["Zoe CSM"]
    customer = UserFactory()
    with pytest.raises(PermissionDenied):
        scorecards.all_scorecards(session, customer, MARCH)


def test_all_scorecards_statement_count_does_not_grow_with_csms_or_accounts(
    session, connection, vendor, admin
):
    def build(n):
        for _ in range(n):
            csm = staff(Role.CSM, organization=vendor)
            for _ in range(2):
                org = account(csm)
                SnapshotFactory(organization_id=org.id, day=date(2026, 3, 20), score=88.0)
                responses(org, date(2026, 3, 3), promoters=1, detractors=1)
                item(session, csm, org, date(2026, 3, 1), date(2026, 3, 9))
                referral(session, org, received=date(2026, 3, 9))

    def statements():
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        session.expire_all()
        event.listen(connection, "before_cursor_execute", listener)
        try:
            cards = scorecards.all_scorecards(session, admin, MARCH)
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        return len(cards), len(
            [s for s in seen if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
        )

    build(2)
    n_cards, few = statements()
    build(8)
    m_cards, many = statements()
    assert (n_cards, m_cards) == (2, 10)
    assert many == few


# --- company figures ----------------------------------------------------------------------


def activity(session, user, verb, when, subject_id=None, data=None):
    session.add(
        Activity(
            actor_id=user.id,
            organization_id=user.organization_id,
            verb=verb,
            subject_type="x",
            subject_id=subject_id,
            occurred_at=when,
            data=data or {},
        )
    )
    session.flush()


def test_company_figures_on_hand_made_data(session, csm, monkeypatch):
    # the ideas feature is not installed: its figure is "no data", not 0%
    monkeypatch.setattr(scorecards, "VERBS", {"question.asked", "answer.accepted"})
    sam = "sam@vendor.example"
    a, b, c = account(csm, sales_owner_email=sam), account(csm), account(csm, sales_owner_email=sam)
    member_a = UserFactory(organization=a)
    member_b = UserFactory(organization=b)
    # self-service: member A: search + helpful (resolved); member B: search then asks (not)
    activity(session, member_a, "search.performed", at(date(2026, 3, 4), 10))
    activity(session, member_a, "article.helpful", at(date(2026, 3, 4), 10) + timedelta(minutes=5))
    activity(session, member_b, "search.performed", at(date(2026, 3, 5), 10))
    activity(
        session, member_b, "question.asked", at(date(2026, 3, 5), 10) + timedelta(minutes=2), 7
    )
    # questions: #7 (B) accepted after 3 days -> resolved in time; #8 (A) never answered
    activity(session, member_a, "question.asked", at(date(2026, 3, 1)), 8)
    activity(session, member_b, "answer.accepted", at(date(2026, 3, 8)), 99, {"question_id": 7})
    # tickets: March 4 over 3 active accounts (A, B used the portal; all three had invoices in
    # the year before) -> 1.33; February: 3 active, no ticket -> 0
    for org in (a, a, b, c):
        TicketFactory(organization_id=org.id, opened_at=at(date(2026, 3, 10)))
    # revenue: A 100 -> 120 (expansion 20), B 50 -> 30 (contraction 20), C 50 -> gone
    InvoiceFactory(organization_id=a.id, amount=Decimal(100), order_date=date(2025, 3, 15))
    InvoiceFactory(organization_id=a.id, amount=Decimal(120), order_date=date(2026, 3, 15))
    InvoiceFactory(organization_id=b.id, amount=Decimal(50), order_date=date(2025, 3, 25))
    InvoiceFactory(organization_id=b.id, amount=Decimal(30), order_date=date(2026, 3, 25))
    InvoiceFactory(organization_id=c.id, amount=Decimal(50), order_date=date(2025, 3, 20))

    figures = scorecards.company_figures(session, MARCH)

    assert (figures.self_service.numerator, figures.self_service.denominator) == (1, 2)
    march = figures.tickets[-1]
    assert march.period == MARCH and (march.tickets, march.active_accounts) == (4, 3)
    assert march.per_account == pytest.approx(4 / 3) and march.change == pytest.approx(4 / 3)
    assert figures.tickets[-2].per_account == 0
    assert len(figures.tickets) == 6
    # start ARR 200; churned 50, contraction 20, expansion 20: GRR 130/200, NRR 150/200
    assert figures.revenue.grr == pytest.approx(0.65)
    assert figures.revenue.nrr == pytest.approx(0.75)
    assert (figures.logo_churn.numerator, figures.logo_churn.denominator) == (1, 3)
    # first anniversaries all in March: A renewed and C not (sam: 1/2), B renewed (no owner)
    retention = figures.first_year_retention
    assert retention.by_owner[sam].value == 0.5
    assert retention.by_owner[""].value == 1.0
    assert (retention.overall.numerator, retention.overall.denominator) == (2, 3)
    problems = figures.problem_resolution
    assert (problems.questions.numerator, problems.questions.denominator) == (1, 2)
    assert problems.ideas is None and not problems.ideas_installed  # ideas: no data


def test_company_figures_say_no_data_rather_than_zero(session):
    figures = scorecards.company_figures(session, MARCH)
    assert figures.self_service is None
    assert figures.revenue is None and figures.logo_churn is None
    assert figures.first_year_retention is None
    assert figures.problem_resolution.overall is None
    assert all(p.per_account is None for p in figures.tickets)


def test_ideas_count_once_the_feature_records_them(session, csm, monkeypatch):
    monkeypatch.setattr(scorecards, "VERBS", {"idea.created", "idea.status_changed"})
    member = UserFactory(organization=account(csm))
    activity(session, member, "idea.created", at(date(2026, 3, 1)), 1)
    activity(session, member, "idea.created", at(date(2026, 3, 2)), 2)
    activity(
        session,
        csm,
        "idea.status_changed",
        at(date(2026, 3, 3)),
        1,
        {"from": "open", "to": "planned"},
    )
    activity(
        session,
        csm,
        "idea.status_changed",
        at(date(2026, 3, 3)),
        2,
        {"from": "open", "to": "under_review"},
    )

    problems = scorecards.company_figures(session, MARCH).problem_resolution

    assert problems.ideas_installed
    assert (problems.ideas.numerator, problems.ideas.denominator) == (1, 2)
    assert problems.questions is None


# --- NPS reports ----------------------------------------------------------------------------


def test_nps_report_50_promoters_17_detractors_of_100_is_33_plus_minus_15(session, csm, admin):
    big = account(csm, segment="Enterprise")
    small = account(None, segment=None)
    responses(big, date(2026, 3, 5), promoters=40, passives=25, detractors=15)
    responses(small, date(2026, 3, 25), promoters=10, passives=8, detractors=2)
    responses(small, date(2026, 4, 2), detractors=5)  # April: outside the period

    report = scorecards.nps_report(session, admin, MARCH, "segment")

    assert report.overall.n == 100
    assert report.overall.nps == pytest.approx(33.0)
    assert report.overall.margin == pytest.approx(14.7, abs=0.1)
    assert dict(report.distribution)[10] == 50 and dict(report.distribution)[3] == 17
    by_segment = {row.label: row.result for row in report.rows}
    assert by_segment["Enterprise"].n == 80 and by_segment["Enterprise"].nps == pytest.approx(31.25)
    assert by_segment["No segment"].nps == pytest.approx(40.0)
    by_csm = {r.label: r.result.n for r in scorecards.nps_report(session, admin, MARCH, "csm").rows}
    assert by_csm == {"Alice CSM": 80, "No CSM": 20}
    quarter = scorecards.nps_report(session, admin, scorecards.quarter(2026, 2), "month")
    assert [(r.label, r.result.n) for r in quarter.rows] == [
        ("2026-04", 5),
        ("2026-05", 0),
        ("2026-06", 0),
    ]
    with pytest.raises(DomainError):
        scorecards.nps_report(session, admin, MARCH, "colour")


def test_compare_periods_significance(session, csm):
    org = account(csm)
    responses(org, date(2026, 2, 10), promoters=10, passives=10, detractors=20)
    responses(org, date(2026, 3, 10), promoters=30, passives=5, detractors=5)

    result = scorecards.compare_periods(session, FEBRUARY, MARCH)

    assert (result.result_a.nps, result.result_b.nps) == (-25.0, 62.5)
    assert result.comparison.difference == pytest.approx(87.5)
    assert result.comparison.significant and result.comparison.p_value < 0.001
    same = scorecards.compare_periods(session, MARCH, MARCH)
    assert same.comparison.difference == 0 and not same.comparison.significant


# --- pages ----------------------------------------------------------------------------------

PAGES = [
    "/cs/scorecard",
    "/cs/scorecard/kpis.csv",
    "/cs/scorecard/company.csv",
    "/cs/nps",
    "/cs/nps/segment.csv",
    "/cs/targets",
    "/cs/targets.csv",
]


@pytest.mark.parametrize("url", PAGES)
def test_customers_get_403_and_anonymous_visitors_sign_in(client, session, url):
    assert client.get(url).status_code == 302
    login(client, UserFactory(roles=[Role.ORG_ADMIN]))
    assert client.get(url).status_code == 403


def test_product_manager_reads_the_scorecard_and_nps_but_not_the_targets_editor(
    client, session, csm, vendor
):
    org = account(csm, segment="Enterprise")
    responses(org, date(2026, 3, 5), promoters=50, passives=33, detractors=17)
    login(client, staff(Role.PRODUCT_MANAGER, organization=vendor))

    page = client.get("/cs/scorecard?kind=month&month=2026-03")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Alice CSM" in html and "Company figures" in html and "No data" in html

    page = client.get("/cs/nps?kind=month&month=2026-03")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="nps-overall">33 <span class="fs-5">± 15</span>' in html
    assert "n = 100 responses" in html and "Enterprise" in html and "<svg" in html

    assert client.get("/cs/targets").status_code == 403
    assert client.post("/cs/targets", data={"csm_id": "", "nps_change": "3"}).status_code == 403
    assert session.query(KpiTarget).count() == 0


def test_a_csm_cannot_edit_targets_but_a_vendor_admin_can(client, session, csm, admin):
    login(client, csm)
    assert client.post("/cs/targets", data={"csm_id": "", "nps_change": "3"}).status_code == 403

    login(client, admin)
    response = client.post(
        "/cs/targets",
        data={"csm_id": str(csm.id), "base_healthy_share": "60", "collaboration_closed": "3"},
    )
    assert response.status_code == 302
    card = scorecards.csm_scorecard(session, csm.id, MARCH)
    assert card.scorecard.base.target == pytest.approx(0.6)
    assert card.scorecard.collaboration.target == 3
    assert card.target_sources["nps_change"] == "built_in"  # left empty: not overridden
    page = client.get(f"/cs/targets?csm={csm.id}").get_data(as_text=True)
    assert 'value="60"' in page


def test_bad_target_input_is_a_form_error_naming_the_field(client, session, csm, admin):
    login(client, admin)
    response = client.post("/cs/targets", data={"csm_id": "", "collaboration_closed": "lots"})
    assert response.status_code in (400, 422)
    html = response.get_data(as_text=True)
    assert 'id="collaboration_closed-errors"' in html and "Enter a number." in html

    response = client.post("/cs/targets", data={"csm_id": "", "base_healthy_share": "150"})
    assert response.status_code in (400, 422)
    assert 'id="base_healthy_share-errors"' in response.get_data(as_text=True)

    response = client.post("/cs/targets", data={"csm_id": "abc", "referrals": "2"})
    assert response.status_code in (400, 422)
    assert 'id="csm_id-errors"' in response.get_data(as_text=True)
    assert session.query(KpiTarget).count() == 0


def test_a_bad_period_is_a_message_on_the_picker_not_a_500(client, session, csm):
    login(client, csm)
    response = client.get("/cs/scorecard?kind=month&month=2026-13")
    assert response.status_code == 422
    assert 'id="month-error"' in response.get_data(as_text=True)
    response = client.get("/cs/nps?kind=custom&start=2026-03-01&end=nope")
    assert response.status_code == 422
    assert 'id="end-error"' in response.get_data(as_text=True)
    assert client.get("/cs/scorecard/kpis.csv?kind=quarter&quarter=Q9").status_code == 400
    assert client.get("/cs/scorecard/nothing.csv").status_code == 404


def test_tables_export_to_csv(client, session, csm, admin):
    org = account(csm, segment="=cmd")
    responses(org, date(2026, 3, 5), promoters=3, detractors=1)
    item(session, csm, org, date(2026, 3, 1), date(2026, 3, 9))
    login(client, admin)

    response = client.get("/cs/scorecard/kpis.csv?kind=month&month=2026-03")
    assert response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("CSM,Period,Tier,KPI")
    assert "Alice CSM,2026-03,Collaboration,collaboration_closed,1.0,2.0,0.5,false,0," in lines

    text = client.get("/cs/nps/segment.csv?kind=month&month=2026-03").get_data(as_text=True)
    assert "'=cmd,4,50.0" in text  # a formula-like label is defused
    text = client.get("/cs/nps/compare.csv?kind=month&month=2026-03").get_data(as_text=True)
    assert "2026-02,0" in text and "2026-03,4,50.0" in text
    for url in (
        "/cs/scorecard/company.csv",
        "/cs/scorecard/tickets.csv",
        "/cs/scorecard/retention.csv",
        "/cs/nps/csm.csv",
        "/cs/nps/account.csv",
        "/cs/nps/month.csv",
        "/cs/nps/distribution.csv",
        "/cs/targets.csv",
    ):
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype == "text/csv", url
    company = client.get("/cs/scorecard/company.csv").get_data(as_text=True)
    assert "Self-service rate,," in company  # no data: an empty cell, not 0


def test_scorecard_and_nps_pages_run_a_fixed_number_of_statements(
    client, session, connection, vendor, admin
):
    def build(n):
        for _ in range(n):
            csm = staff(Role.CSM, organization=vendor)
            org = account(csm, segment=f"S{csm.id}")
            SnapshotFactory(organization_id=org.id, day=date(2026, 3, 20), score=88.0)
            responses(org, date(2026, 3, 3), promoters=2, detractors=1)
            item(session, csm, org, date(2026, 3, 1), date(2026, 3, 9))
            InvoiceFactory(organization_id=org.id, order_date=date(2025, 6, 1))

    login(client, admin)
    build(1)
    for url in PAGE_URLS:  # warm the caches of the page chrome (the review-queue badge)
        client.get(url)
    few = [count_statements(client, connection, url) for url in PAGE_URLS]
    build(6)
    many = [count_statements(client, connection, url) for url in PAGE_URLS]
    assert many == few


PAGE_URLS = ("/cs/scorecard?kind=month&month=2026-03", "/cs/nps?kind=month&month=2026-03")


def test_the_significance_of_an_nps_change_is_said_in_words(client, session, csm):
    org = account(csm)
    responses(org, date(2026, 2, 10), promoters=10, passives=10, detractors=20)
    responses(org, date(2026, 3, 10), promoters=30, passives=5, detractors=5)
    login(client, csm)

    nps_page = client.get("/cs/nps?kind=month&month=2026-03").get_data(as_text=True)
    assert "Change B − A: +87.5 points. A significant rise (p &lt; 0.001)" in nps_page
    card = client.get("/cs/scorecard?kind=month&month=2026-03").get_data(as_text=True)
    assert "-25 (n=40) → 62 (n=40). A significant rise (p &lt; 0.001)" in card

    same = client.get("/cs/nps?kind=month&month=2026-03&a_kind=month&a_month=2026-03").get_data(
        as_text=True
    )
    assert "Not significant (p = 1.000): the change could be chance." in same
    empty = client.get("/cs/nps?kind=month&month=2025-03").get_data(as_text=True)
    assert "Not enough responses in one of the periods to tell." in empty


def test_scorecard_counts_one_promoter_in_the_singular(client, session, csm):
    org = account(csm)
    responses(org, date(2026, 3, 5), promoters=1, detractors=2)
    login(client, csm)
    html = client.get(
        "/cs/scorecard?kind=month&month=2026-03", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert "1 promoter in the period" in html and "1 promoters" not in html
    csm.locale = "zh_CN"
    session.flush()
    html = client.get("/cs/scorecard?kind=month&month=2026-03").get_data(as_text=True)
    assert "本期推荐者 1 名" in html
