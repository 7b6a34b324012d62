"""CS dashboards through HTTP: portfolio, accounts, account page, overrides, imports, the
health model editor and settings; who may reach each CS route; CSV exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cs_metrics import service
from cs_metrics.models import (
    AccountProfile,
    AlertRule,
    Contact,
    CsTask,
    HealthAlert,
    HealthModelVersion,
    HealthOverride,
    HealthSnapshot,
    ImportJob,
    ImprovementItem,
    RecomputeRun,
)
from cs_metrics.settings import set_setting
from cs_metrics.views.portfolio import portfolio_cache
from portal.accounts.service import create_api_token
from portal.core.activity import Activity
from portal.core.db import utcnow
from portal.core.identity import Organization, Role
from portal.core.sessions import SEEN_AT
from tests import cs_factories
from tests.conftest import count_statements, login
from tests.cs_factories import AccountFactory, NpsFactory, SnapshotFactory
from tests.factories import OrganizationFactory, UserFactory, staff

TODAY = utcnow().date()


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def csm(session):
    return staff(Role.CSM, display_name="Carla CSM")


@pytest.fixture
def admin(session):
    return staff(Role.VENDOR_ADMIN)


@pytest.fixture
def pm(session):
    return staff(Role.PRODUCT_MANAGER)


def components(usage_score: float = 20.0) -> list[dict]:
    return [
        {"name": "usage_trend", "raw": -38.0, "score": usage_score, "weight": 20,
         "configured_share": 0.5, "share": 0.5, "contribution": usage_score * 0.5,
         "missing": False},
        {"name": "csat", "raw": 80.0, "score": 66.7, "weight": 20, "configured_share": 0.5,
         "share": 0.5, "contribution": 33.3, "missing": False},
        {"name": "nps", "raw": None, "score": None, "weight": 10, "configured_share": 0.2,
         "share": 0.0, "contribution": 0.0, "missing": True},
    ]  # fmt: skip


def account(session, name: str, *, csm=None, arr="120000", renewal=None, scores=(), **kw):
    """A customer with a profile and one snapshot per score (oldest first, ending today)."""
    org = OrganizationFactory(name=name)
    AccountFactory(
        organization_id=org.id, arr=Decimal(arr), csm_id=csm.id if csm else None,
        renewal_date=renewal, **kw,
    )  # fmt: skip
    for back, score in enumerate(reversed(scores)):
        band = "green" if score >= 85 else "yellow" if score >= 70 else "red"
        SnapshotFactory(
            organization_id=org.id, day=TODAY - timedelta(days=back), score=score, band=band,
            effective_score=score, effective_band=band, complete=False,
            components=components(),
        )  # fmt: skip
    session.flush()
    return org


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


# --- portfolio -----------------------------------------------------------------------------


def test_portfolio_counts_accounts_and_arr_by_band_renewals_and_drops(client, session, csm):
    account(session, "Green Co", arr="100000", scores=(90, 91))
    falling = account(session, "Falling Co", arr="50000", scores=(88, 80, 60),
                      renewal=TODAY + timedelta(days=30))  # fmt: skip
    account(session, "Unscored Co", arr="7000", renewal=TODAY + timedelta(days=120))
    login(client, csm)
    page = client.get("/cs/").get_data(as_text=True)
    assert 'data-band="green"' in page and "Falling Co" in page
    assert "<svg" in page and 'role="img"' in page  # the ARR chart, drawn by the portal
    bands = {r[0]: r[1:] for r in rows_of(client.get("/cs/portfolio/bands.csv"))[1:]}
    assert bands["Green"] == ["1", "100000.00"]
    assert bands["Red"] == ["1", "50000.00"]
    assert bands["No score"] == ["1", "7000.00"]
    renewals = rows_of(client.get("/cs/portfolio/renewals.csv"))
    assert [r[0] for r in renewals[1:]] == ["Falling Co"]  # 120 days out is not listed
    assert renewals[1][1:3] == ["60.0", "Red"]
    drops = rows_of(client.get("/cs/portfolio/drops.csv"))
    assert drops[1][0] == "Falling Co" and drops[1][3] == "28.0"
    assert f"/cs/accounts/{falling.id}" in page


def test_portfolio_statement_count_does_not_grow_with_accounts(client, session, csm, connection):
    login(client, csm)
    for i in range(5):
        account(session, f"Small {i}", csm=csm, scores=(90, 70), renewal=TODAY)
    few = count_statements(client, connection, "/cs/")
    for i in range(45):
        account(session, f"Big {i}", csm=csm, scores=(90, 70), renewal=TODAY)
    many = count_statements(client, connection, "/cs/")
    assert few == many


def test_portfolio_shows_the_soonest_renewals_and_links_to_all_of_them(client, session, csm):
    for i in range(12):
        account(session, f"Renewing {i:02d}", scores=(80,), renewal=TODAY + timedelta(days=i))
    account(session, "Later Co", scores=(80,), renewal=TODAY + timedelta(days=200))
    login(client, csm)
    page = client.get("/cs/").get_data(as_text=True)
    assert "12 accounts renew in the next 90 days." in page
    assert "Renewing 09" in page and "Renewing 10" not in page  # the soonest ten
    assert "/cs/accounts?renewal=90&amp;sort=renewal" in page
    listing = client.get("/cs/accounts?renewal=90&sort=renewal").get_data(as_text=True)
    assert "12 accounts" in listing and "Renewing 11" in listing and "Later Co" not in listing
    assert listing.index("Renewing 00") < listing.index("Renewing 11")
    renewals = rows_of(client.get("/cs/portfolio/renewals.csv"))
    assert [r[0] for r in renewals[1:]] == [f"Renewing {i:02d}" for i in range(12)]
    assert client.get("/cs/accounts?renewal=lots").status_code == 200  # ignored, not a 500


def test_portfolio_compares_with_the_first_scored_day_of_the_window(client, session, csm):
    account(session, "Old Fall Co", scores=(95, *([90] * 34), 50))  # 35 days back: outside
    account(session, "Steady Co", scores=(70, 70))
    login(client, csm)
    drops = rows_of(client.get("/cs/portfolio/drops.csv"))
    assert [r[0] for r in drops[1:]] == ["Old Fall Co"]
    assert drops[1][1:4] == ["90.0", "50.0", "40.0"]
    assert drops[1][4] == (TODAY - timedelta(days=30)).isoformat()


def band_tiles(html: str) -> dict[str, int]:
    return {
        band: int(count)
        for band, count in re.findall(r'data-band="(\w+)">.*?fs-3[^>]*>(\d+)<', html, re.S)
    }


def test_portfolio_is_not_cached_under_testing(client, session, csm):
    account(session, "First Co", scores=(50,))
    login(client, csm)
    assert band_tiles(client.get("/cs/").get_data(as_text=True))["red"] == 1
    account(session, "Flushed Co", scores=(50,))  # flushed by the test, never committed
    assert band_tiles(client.get("/cs/").get_data(as_text=True))["red"] == 2


@pytest.mark.parametrize("app_config", [{"CS_PORTFOLIO_CACHE_SECONDS": 60}])
def test_portfolio_cache_is_cleared_by_an_override_and_by_an_import(
    client, session, csm, connection
):
    portfolio_cache.clear()
    org = account(session, "Cached Co", scores=(50,))
    login(client, csm)
    assert band_tiles(client.get("/cs/").get_data(as_text=True))["red"] == 1
    assert count_statements(client, connection, "/cs/") <= 1  # the signed-in user, no more
    account(session, "Flushed Co", scores=(50,))  # not committed by anyone: the body is kept
    assert band_tiles(client.get("/cs/").get_data(as_text=True))["red"] == 1
    expiry = (TODAY + timedelta(days=30)).isoformat()
    response = client.post(
        f"/cs/accounts/{org.id}/override",
        data={"score": "90", "reason": "Sponsor renewed", "expires_at": expiry},
    )
    assert response.status_code == 302
    tiles = band_tiles(client.get("/cs/").get_data(as_text=True))
    assert tiles["green"] == 1 and tiles["red"] == 1  # the override, and the flushed account
    assert upload(client, ACCOUNTS).status_code == 302  # two new accounts, no score yet
    assert band_tiles(client.get("/cs/").get_data(as_text=True))["none"] == 2
    portfolio_cache.clear()


@pytest.mark.parametrize("app_config", [{"CS_PORTFOLIO_CACHE_SECONDS": 60}])
def test_cached_portfolio_still_keeps_to_each_readers_book(client, session, csm, admin):
    portfolio_cache.clear()
    account(session, "Mine Co", csm=csm, scores=(90,), renewal=TODAY)
    account(session, "Theirs Co", csm=staff(Role.CSM), scores=(50,), renewal=TODAY)
    set_setting(session, admin, "own_book_only", True)
    session.flush()
    login(client, admin)
    assert "Theirs Co" in client.get("/cs/").get_data(as_text=True)
    login(client, csm)
    page = client.get("/cs/").get_data(as_text=True)
    assert "Mine Co" in page and "Theirs Co" not in page
    portfolio_cache.clear()


def test_own_book_limits_lists_and_hides_other_accounts(client, session, csm, admin):
    other = staff(Role.CSM)
    mine = account(session, "Mine Co", csm=csm, scores=(90,))
    theirs = account(session, "Theirs Co", csm=other, scores=(50,))
    set_setting(session, admin, "own_book_only", True)
    session.flush()
    login(client, csm)
    listing = client.get("/cs/accounts").get_data(as_text=True)
    assert "Mine Co" in listing and "Theirs Co" not in listing
    assert "Theirs Co" not in client.get("/cs/").get_data(as_text=True)
    assert client.get(f"/cs/accounts/{mine.id}").status_code == 200
    assert client.get(f"/cs/accounts/{theirs.id}").status_code == 404
    assert client.get(f"/cs/accounts/{theirs.id}/components.csv").status_code == 404
    response = client.post(f"/cs/accounts/{theirs.id}/override", data={"score": "90"})
    assert response.status_code == 404


def test_account_list_searches_filters_sorts_and_pages(client, session, csm):
    for i in range(30):
        account(session, f"Alpha {i:02d}", scores=(50 + i,), segment="smb" if i % 2 else "ent")
    account(session, "Beta", scores=(99,), segment="ent")
    login(client, csm)
    page = client.get("/cs/accounts?q=alpha&sort=-score").get_data(as_text=True)
    assert "Beta" not in page and page.index("Alpha 29") < page.index("Alpha 28")
    assert "Page 1 of 2" in page
    rows = rows_of(client.get("/cs/accounts.csv?band=red&segment=smb"))
    assert {r[2] for r in rows[1:]} == {"Red"} and len(rows) - 1 == 10
    assert client.get("/cs/accounts?page=abc&sort=;drop").status_code == 200


# --- account page and overrides ------------------------------------------------------------


def test_account_page_explains_the_score_and_shows_everything_about_the_account(
    client, session, csm
):
    org = account(session, "Red Co", csm=csm, scores=(80, 60), renewal=TODAY)
    customer = UserFactory(organization=org, display_name="Cora Customer")
    session.add(Activity(actor_id=customer.id, organization_id=org.id, verb="idea.voted"))
    session.add(Activity(actor_id=customer.id, organization_id=org.id, verb="idea.voted"))
    session.add(Activity(actor_id=customer.id, organization_id=org.id,
                         verb="template.downloaded"))  # fmt: skip
    NpsFactory(organization_id=org.id, score=3, comment="slow <b>support</b>")
    NpsFactory(organization_id=org.id, score=10)
    session.add(CsTask(organization_id=org.id, title="Call the champion", due_on=TODAY))
    session.add(ImprovementItem(organization_id=org.id, department="product",
                                title="Faster export"))  # fmt: skip
    rule = AlertRule(name="Usage fell by half", expression="usage_trend < -50")
    session.add(rule)
    session.flush()
    session.add(HealthAlert(organization_id=org.id, kind=f"rule:{rule.id}", rule_id=rule.id,
                            day=TODAY, severity="critical"))  # fmt: skip
    session.flush()
    login(client, csm)
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert 'data-band="red"' in page and "incomplete-badge" in page
    # components: value, score, weight as a percentage, contribution; the missing one marked
    assert 'data-component="usage_trend"' in page and "40%" in page and "no data" in page
    assert "Ideas voted: 2" in page and "Templates adopted: 1" in page
    assert "Cora Customer" in page and "idea.voted" in page
    assert "slow &lt;b&gt;support&lt;/b&gt;" in page  # escaped, never markup
    assert "Call the champion" in page and "Faster export" in page
    # days in sentences as people say them, not ISO keys
    said = f"{TODAY:%b} {TODAY.day}, {TODAY.year}"
    assert f"Computed {said} with health model" in page and f"due {said}" in page
    assert "Usage fell by half" in page
    assert "NPS 0.0 from 2 responses" in page
    assert 'id="clv"' in page and "Gross margin" in page and "80%" in page
    assert page.count("<svg") >= 1  # the trend chart
    components_csv = rows_of(client.get(f"/cs/accounts/{org.id}/components.csv"))
    assert components_csv[1][:5] == ["usage_trend", "-38.0", "20.0", "40.0", "10.0"]
    # the timeline says what people did in words, the CSV keeps the code beside them
    assert '<span title="idea.voted">Voted for an idea</span>' in page
    timeline = rows_of(client.get(f"/cs/accounts/{org.id}/timeline.csv"))
    assert timeline[0][2:] == ["Activity", "Code"]
    assert ["Cora Customer", "Downloaded a template", "template.downloaded"] in [
        row[1:] for row in timeline
    ]
    csm.locale = "zh_CN"
    session.flush()
    assert ">为想法投票</span>" in client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)


def test_the_timeline_says_what_members_did_without_their_reads_sign_ins_and_searches(
    client, session, csm
):
    org = account(session, "Busy Co", csm=csm)
    member = UserFactory(organization=org, display_name="Bea Busy")
    for verb in (
        "question.asked",
        "content.submitted",
        "content.published",
        "content.viewed",
        "content.viewed",
        "account.signed_in",
        "search.performed",
        "idea.voted",
    ):
        session.add(Activity(actor_id=member.id, organization_id=org.id, verb=verb))
    session.flush()
    login(client, csm)
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    timeline = page.split('id="timeline"')[1].split("</ol>")[0]
    assert re.findall(r'title="([^"]+)"', timeline) == ["idea.voted", "question.asked"]
    rows = rows_of(client.get(f"/cs/accounts/{org.id}/timeline.csv"))
    assert sorted(row[3] for row in rows[1:]) == ["idea.voted", "question.asked"]


def test_trend_chart_marks_model_changes(client, session, csm):
    org = account(session, "Changing Co", scores=(80, 82, 84))
    first = session.scalar(
        select(HealthSnapshot).where(HealthSnapshot.organization_id == org.id)
        .order_by(HealthSnapshot.day)
    )  # fmt: skip
    first.model_version = "v1"
    session.flush()
    login(client, csm)
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert "cs-chart-marker" in page and "Model default-1" in page


def test_override_survives_and_is_shown_as_an_override_until_revoked(client, session, csm):
    org = account(session, "Override Co", scores=(60,))
    login(client, csm)
    expiry = (TODAY + timedelta(days=30)).isoformat()
    response = client.post(
        f"/cs/accounts/{org.id}/override",
        data={"score": "88", "reason": "Exec sponsor renewed <early>", "expires_at": expiry},
    )
    assert response.status_code == 302
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert 'id="override-badge"' in page and 'data-band="green"' in page
    assert "Exec sponsor renewed &lt;early&gt;" in page and "Carla CSM" in page
    service.recompute(session)  # the nightly run keeps it
    session.flush()
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert 'id="override-badge"' in page
    assert client.post(f"/cs/accounts/{org.id}/override/revoke").status_code == 302
    session.expire_all()
    assert session.scalar(select(HealthOverride)).revoked_at is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"score": "101", "reason": "x", "expires_at": "2099-01-01"}, "between 0 and 100"),
        ({"score": "50", "reason": "", "expires_at": "2099-01-01"}, "This field is required"),
        ({"score": "50", "reason": "x", "expires_at": ""}, "This field is required"),
        ({"score": "50", "reason": "x", "expires_at": "2001-01-01"}, "must be in the future"),
        ({"score": "abc", "reason": "x", "expires_at": "2099-01-01"}, "Not a valid float"),
    ],
)
def test_override_form_rejects_bad_input_beside_the_field(client, session, csm, data, message):
    org = account(session, "Form Co", scores=(60,))
    login(client, csm)
    response = client.post(f"/cs/accounts/{org.id}/override", data=data)
    assert 400 <= response.status_code < 500
    assert message in response.get_data(as_text=True)
    assert session.scalar(select(HealthOverride)) is None


def test_product_manager_reads_but_cannot_override(client, session, pm):
    org = account(session, "Read Co", scores=(60,))
    login(client, pm)
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert "override-form" not in page
    response = client.post(
        f"/cs/accounts/{org.id}/override",
        data={"score": "90", "reason": "x", "expires_at": "2099-01-01"},
    )
    assert response.status_code == 403


def test_csv_exports_are_formula_safe(client, session, csm):
    account(session, '=HYPERLINK("http://evil")', scores=(50,), segment="@sum")
    login(client, csm)
    rows = rows_of(client.get("/cs/accounts.csv"))
    assert rows[1][0] == '\'=HYPERLINK("http://evil")' and rows[1][7] == "'@sum"


# --- who reaches what: every CS route ------------------------------------------------------

PAGE_METHODS = {"GET", "POST"}
# GET pages that are only a form to change something: a product manager (read only) may be
# refused them. Everything else a product manager reads.
PM_WRITE_ONLY_PAGES = {"cs.targets", "cs.audit", "cs.audit_csv"}


def write_only_page(endpoint: str) -> bool:
    return endpoint in PM_WRITE_ONLY_PAGES or "new" in endpoint or "edit" in endpoint


def cs_rules(app):
    """Every route of the CS blueprint except the customer-facing NPS survey."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("cs.") and not rule.endpoint.startswith("cs.survey")
    ]


def build(app, rule, known) -> tuple[str, bool]:
    """The rule's URL with real ids where this test knows them; ``exact`` is False when some
    argument had to be guessed (an object id of another area's route)."""
    from werkzeug.routing import AnyConverter, IntegerConverter

    values, exact = {}, True
    for name in rule.arguments:
        converter = rule._converters[name]
        if name in known:
            values[name] = known[name]
        elif isinstance(converter, AnyConverter):
            values[name] = converter.regex.split("|")[0].strip("(?:)")
        elif rule.endpoint == "cs.account_export":
            values[name] = "components"
        elif isinstance(converter, IntegerConverter):
            values[name], exact = 1, False
        else:
            values[name], exact = "x", False
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values), exact


@pytest.fixture
def known_ids(session, csm, app):
    org = account(session, "Route Co", csm=csm, scores=(60,))
    job = ImportJob(kind="accounts", filename="a.csv", status="done", report={})
    session.add(job)
    run = service.queue_recompute(session)
    return {"org_id": org.id, "job_id": job.id, "run_id": run.id}


def test_every_cs_route_is_for_staff_only(app, client, session, known_ids, pm):
    rules = cs_rules(app)
    assert len(rules) >= 10
    member = UserFactory(roles=[Role.MEMBER])
    org_admin = UserFactory(roles=[Role.ORG_ADMIN])
    checked, wrong = 0, []
    for rule in rules:
        url, exact = build(app, rule, known_ids)
        for method in sorted(rule.methods & PAGE_METHODS):
            client.get("/sign-out")  # anonymous
            with client.session_transaction() as s:
                s.clear()
            response = client.open(url, method=method)
            assert response.status_code == 302, (method, url)
            assert "/sign-in" in response.headers["Location"], (method, url)
            for customer in (member, org_admin):
                login(client, customer)
                assert client.open(url, method=method).status_code == 403, (customer, method, url)
            login(client, pm)
            status = client.open(url, method=method).status_code
            if method == "POST":
                if status not in ((403,) if exact else (403, 404)):
                    wrong.append(("product manager", method, url, status))
            elif write_only_page(rule.endpoint):
                if status not in (200, 403, 404):
                    wrong.append(("product manager", method, url, status))
            elif status not in ((200,) if exact else (200, 404)):
                wrong.append(("product manager", method, url, status))
            checked += 1
    assert not wrong
    assert checked >= len(rules)


# --- imports ---------------------------------------------------------------------------------


ACCOUNTS = "external_id,name,arr,renewal_date\nA-1,Acme,1000,2026-12-01\nA-2,Beta,2000,2026-11-01\n"
BAD = "external_id,name,arr\nA-1,Acme,1000\nA-2,Beta,lots\n"


def upload(client, text, kind="accounts", **extra):
    data = {"kind": kind, "file": (io.BytesIO(text.encode()), f"{kind}.csv"), **extra}
    return client.post("/cs/imports", data=data, content_type="multipart/form-data")


def test_import_runs_and_the_job_page_reports_progress(client, session, csm):
    login(client, csm)
    response = upload(client, ACCOUNTS)
    assert response.status_code == 302
    job_url = response.headers["Location"]
    with client.session_transaction() as flask_session:  # a page would refresh last-seen
        flask_session[SEEN_AT] -= 120
    polled = client.get(job_url + "/status.json")
    assert "Set-Cookie" not in polled.headers  # a poll beside a form post must not undo it
    status = polled.get_json()
    assert status["status"] == "done" and status["finished"] and status["percent"] == 100
    assert status["rows_done"] == 2
    page = client.get(job_url).get_data(as_text=True)
    assert "All rows were imported." in page and "cs_progress.js" in page
    assert "Acme" in client.get("/cs/accounts").get_data(as_text=True)
    assert "accounts.csv" in client.get("/cs/imports").get_data(as_text=True)
    jobs = rows_of(client.get("/cs/imports.csv"))
    assert jobs[1][:4] == ["accounts.csv", "accounts", "done", "2"]


def test_import_with_errors_imports_nothing_and_offers_a_row_report(client, session, csm):
    login(client, csm)
    job_url = upload(client, BAD).headers["Location"]
    page = client.get(job_url).get_data(as_text=True)
    assert "Nothing was imported" in page and "errors-download" in page
    report = rows_of(client.get(job_url + "/errors.csv"))
    assert any(row[:2] == ["3", "arr"] for row in report[1:])
    assert "Acme" not in client.get("/cs/accounts").get_data(as_text=True)
    job_url = upload(client, BAD, skip_invalid="y").headers["Location"]
    assert "The valid rows were imported" in client.get(job_url).get_data(as_text=True)
    assert "Acme" in client.get("/cs/accounts").get_data(as_text=True)


def test_import_report_is_worded_in_the_readers_language(client, session, csm):
    csm.locale = "zh_CN"
    session.flush()
    login(client, csm)
    rows = "external_id,name,arr,extra\nA-1,Acme,-5,x\nA-1,Beta,lots,y\n,Gamma,1,z\n"
    page = client.get(upload(client, rows).headers["Location"]).get_data(as_text=True)
    assert "不得为负数。" in page and "不是数字。" in page and "必填。" in page
    assert "与第 2 行的编号相同。" in page and "已忽略的列：extra。" in page
    for english in ("must not be negative", "not a number", "required", "same external_id"):
        assert english not in page
    job_url = upload(client, rows).headers["Location"]
    report = rows_of(client.get(job_url + "/errors.csv"))
    assert report[0] == ["行", "列", "代码", "原因", "数值"]
    assert ["3", "arr", "not_a_number", "不是数字。", "lots"] in report
    assert not any("not a number" in cell for row in report for cell in row)
    job_url = upload(client, "arr\n1\n").headers["Location"]
    page = client.get(job_url).get_data(as_text=True)
    assert "缺少必需的列：external_id, name。" in page
    assert rows_of(client.get(job_url + "/errors.csv"))[1][2:4] == [
        "missing_columns",
        "缺少必需的列：external_id, name。",
    ]
    assert "required columns missing" not in page
    usage = "account_external_id,day,metric,value\nA-1,2099-01-01,logins,3\n"
    page = client.get(upload(client, usage, kind="usage_events").headers["Location"])
    assert "日期在未来。" in page.get_data(as_text=True)
    # a report stored before the parameters were: the stored words
    job = session.scalars(select(ImportJob).order_by(ImportJob.id.desc())).first()
    job.report = {"file_error": {"code": "missing_columns", "message": "old words"}}
    session.flush()
    assert "old words" in client.get(f"/cs/imports/{job.id}").get_data(as_text=True)


def test_import_summary_says_when_the_file_was_refused_or_had_no_rows(client, session, csm):
    login(client, csm)
    page = client.get(upload(client, "colour,size\nred,1\n").headers["Location"])
    text = page.get_data(as_text=True)
    assert "File refused" in text and "The file was refused and nothing was imported:" in text
    assert "rows read" not in text and "0 errors" not in text
    page = client.get(upload(client, "external_id,name\n").headers["Location"])
    text = page.get_data(as_text=True)
    assert "No data rows: nothing imported" in text
    assert "no data rows: nothing was imported" in text
    assert "All rows were imported" not in text and "Done" not in text
    assert "the file has no data rows" not in text  # said once, not as a warning beside it


def test_import_form_errors(client, session, csm):
    login(client, csm)
    response = client.post("/cs/imports", data={"kind": "accounts"},
                           content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422 and "Choose a CSV file." in response.get_data(as_text=True)
    response = upload(client, ACCOUNTS, kind="spreadsheets")
    assert response.status_code == 422 and "Not a valid choice" in response.get_data(as_text=True)


# --- health model and settings ---------------------------------------------------------------


def model_form(rows, green="85", yellow="70"):
    data = {"green_min": green, "yellow_min": yellow}
    for key in ("name", "weight", "scale", "at_0", "at_100", "steps"):
        data[f"{key}[]"] = [r.get(key, "") for r in rows]
    return data


def test_admin_saves_a_new_model_version_with_weights_as_percentages(client, session, admin):
    login(client, admin)
    page = client.get("/cs/health-model").get_data(as_text=True)
    assert "usage_trend" in page and "15.0%" in page  # default weights 20/15/... of 100
    rows = [
        {"name": "usage_trend", "weight": "3", "scale": "linear", "at_0": "-50", "at_100": "10"},
        {"name": "severe_tickets", "weight": "1", "scale": "thresholds", "steps": "0:100, 2:0"},
        {"name": ""},
    ]
    response = client.post("/cs/health-model", data=model_form(rows, green="80"))
    assert response.status_code == 302
    model = service.active_model(session)
    assert model.version == "v1" and model.shares()["usage_trend"] == 0.75
    assert model.bands.green_min == 80
    page = client.get("/cs/health-model").get_data(as_text=True)
    assert "75.0%" in page and 'id="model-versions"' in page
    assert 'id="recompute-now"' in page  # the new version applies from the next recompute
    versions = rows_of(client.get("/cs/health-model/versions.csv"))
    assert [r[0] for r in versions[1:]] == ["v1", "v1"] and versions[1][3] == "usage_trend"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"name": "usage_trend", "weight": "0", "scale": "linear", "at_0": "0", "at_100": "1"}],
         "The weights sum to zero"),
        ([{"name": "usage_trend", "weight": "-2", "scale": "linear", "at_0": "0", "at_100": "1"}],
         "The weights sum to zero"),
        ([{"name": "usage_trend", "weight": "x", "scale": "linear", "at_0": "0", "at_100": "1"}],
         "must be a number above 0"),
        ([{"name": "csat", "weight": "1", "scale": "linear", "at_0": "5", "at_100": "5"}],
         "must differ"),
        ([{"name": "csat", "weight": "1", "scale": "thresholds", "steps": "0:100, 1"}],
         "value:score pairs"),
        ([{"name": "csat", "weight": "1", "scale": "thresholds", "steps": "0:10, 1:90, 2:20"}],
         "not valid"),
        ([{"name": ""}], "at least one component"),
    ],
)  # fmt: skip
def test_health_model_errors_are_shown_in_the_form(client, session, admin, rows, message):
    login(client, admin)
    response = client.post("/cs/health-model", data=model_form(rows))
    assert 400 <= response.status_code < 500
    assert message in response.get_data(as_text=True)
    assert service.active_model(session).version == "default-1"


def test_health_model_refuses_an_unknown_component_naming_its_row(client, session, admin):
    login(client, admin)
    rows = [
        {"name": "csat", "weight": "1", "scale": "linear", "at_0": "50", "at_100": "95"},
        {"name": ""},
        {"name": "foo_metric", "weight": "1", "scale": "linear", "at_0": "0", "at_100": "1"},
    ]
    response = client.post("/cs/health-model", data=model_form(rows))
    page = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500
    assert "Row 3: Unknown component “foo_metric”: use one of usage_trend," in page
    assert 'value="foo_metric"' in page  # the table is kept to correct
    assert service.active_model(session).version == "default-1"
    assert session.scalar(select(func.count()).select_from(HealthModelVersion)) == 0


def test_health_model_bands_must_be_ordered(client, session, admin):
    login(client, admin)
    rows = [{"name": "csat", "weight": "1", "scale": "linear", "at_0": "50", "at_100": "95"}]
    response = client.post("/cs/health-model", data=model_form(rows, green="60", yellow="70"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "bands.yellow_min" not in page
    assert "Yellow from: must not be above the green cut-off." in page


@pytest.mark.parametrize(
    ("rows", "english", "chinese"),
    [
        ([{"name": "csat", "weight": "1", "scale": "linear", "at_0": "50", "at_100": "95"},
          {"name": "csat", "weight": "1", "scale": "linear", "at_0": "5", "at_100": "9"}],
         "Component 2: names must be unique.", "组件 2：名称必须唯一。"),
        ([{"name": "csat", "weight": "1", "scale": "thresholds", "steps": "0:150, 1:90"}],
         "Component 1, step 1 score: must be from 0 to 100.",
         "组件 1 第 1 步的分数：必须在 0 到 100 之间。"),
    ],
)  # fmt: skip
def test_health_model_errors_are_worded_for_people(client, session, admin, rows, english, chinese):
    login(client, admin)
    page = client.post("/cs/health-model", data=model_form(rows),
                       headers={"Accept-Language": "en"}).get_data(as_text=True)  # fmt: skip
    assert english in page and "components[" not in page
    admin.locale = "zh_CN"
    session.flush()
    page = client.post("/cs/health-model", data=model_form(rows)).get_data(as_text=True)
    assert chinese in page and "components[" not in page


def test_csm_reads_the_model_but_cannot_save(client, session, csm):
    login(client, csm)
    assert "Save as a new version" not in client.get("/cs/health-model").get_data(as_text=True)
    rows = [{"name": "csat", "weight": "1", "scale": "linear", "at_0": "50", "at_100": "95"}]
    assert client.post("/cs/health-model", data=model_form(rows)).status_code == 403


SETTINGS = {
    "own_book_only": "y", "nps_enabled": "y", "nps_cadence_days": "120", "gross_margin": "70",
    "discount_rate": "8", "service_cost_share": "10", "cross_sell_probability": "20",
    "expansion_share": "15", "churn_green": "4", "churn_yellow": "12", "churn_red": "40",
    "churn_unknown": "15",
}  # fmt: skip


def test_admin_changes_settings_and_the_clv_uses_them(client, session, admin):
    from cs_metrics.settings import get_setting

    org = account(session, "Clv Co", arr="100000", scores=(90,))
    login(client, admin)
    assert client.post("/cs/settings", data=SETTINGS).status_code == 302
    assert get_setting(session, "own_book_only") is True
    assert get_setting(session, "nps_survey")["cadence_days"] == 120
    clv = get_setting(session, "clv")
    assert clv["gross_margin"] == 0.7 and clv["churn_by_band"]["red"] == 0.4
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert "70%" in page and "4%" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nps_cadence_days": "30"}, "Number must be between 90 and 3650"),
        ({"gross_margin": "150"}, "Number must be between 0 and 100"),
        ({"discount_rate": "abc"}, "Not a valid float value"),
    ],
)
def test_settings_errors_are_shown_in_the_form(client, session, admin, change, message):
    login(client, admin)
    response = client.post("/cs/settings", data={**SETTINGS, **change})
    assert response.status_code == 422 and message in response.get_data(as_text=True)


def test_csm_cannot_change_settings(client, session, csm):
    login(client, csm)
    assert client.get("/cs/settings").status_code == 200
    assert client.post("/cs/settings", data=SETTINGS).status_code == 403


def test_negative_arr_is_shown_plainly_not_as_a_lifetime_value(client, session, csm):
    org = account(session, "Refund Co", arr="-500", scores=(60,))
    login(client, csm)
    page = client.get(f"/cs/accounts/{org.id}").get_data(as_text=True)
    assert "The ARR is negative." in page
    assert client.get("/cs/").status_code == 200  # the ARR chart draws no negative bar


def test_unknown_account_and_unknown_job_answer_not_found(client, session, csm):
    login(client, csm)
    vendor_org = csm.organization
    assert client.get("/cs/accounts/999999").status_code == 404
    assert client.get(f"/cs/accounts/{vendor_org.id}").status_code == 404  # not a customer
    assert client.get("/cs/accounts/999999/nps.csv").status_code == 404
    assert client.get("/cs/imports/999999").status_code == 404
    assert client.get("/cs/imports/999999/status.json").status_code == 404


# --- charts ----------------------------------------------------------------------------------


def test_line_chart_is_accessible_escaped_and_marks_gaps_bands_and_model_changes():
    from cs_metrics.charts import line_chart

    day = date(2026, 3, 1)
    svg = str(
        line_chart(
            [("<script>x</script>", [(day, 80.0), (day + timedelta(1), None),
                                     (day + timedelta(2), 60.0), (day + timedelta(3), 65.0)])],
            bands=[(0, 70, "red"), (70, 85, "yellow"), (85, 100, "green")],
            markers=[(day + timedelta(2), "v2 <b>")],
            title='Health "trend" & more',
        )
    )  # fmt: skip
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "v2 &lt;b&gt;" in svg
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert 'class="visually-hidden"' in svg and "<td>2026-03-02</td><td>–</td>" in svg
    assert svg.count("<polyline") == 1  # the gap splits the line; a lone point draws none
    assert svg.count("cs-chart-band-") == 3 and "cs-chart-marker" in svg
    assert "style=" not in svg


def test_line_chart_keeps_legend_off_the_dates_and_marker_labels_inside():
    """With an override (two series: a legend) and a model change on the last day."""
    from xml.etree import ElementTree

    from cs_metrics.charts import line_chart

    day = date(2026, 1, 1)
    days = [day + timedelta(i) for i in range(90)]
    svg = str(
        line_chart(
            [("Computed score", [(d, 60.0) for d in days]),
             ("Effective score", [(d, 80.0) for d in days])],
            markers=[(days[-1], "Model v2"), (days[45], "Model v3")],
            title="Health trend",
        )
    )  # fmt: skip
    drawn = svg[svg.index("<svg") : svg.index("</svg>") + len("</svg>")]
    root = ElementTree.fromstring(drawn)  # noqa: S314 - the chart just drawn here
    ns = "{http://www.w3.org/2000/svg}"
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    ticks = [t for t in root.iter(f"{ns}text") if t.text and t.text.startswith("2026-")]
    legend = [t for g in root.iter(f"{ns}g") if g.get("class") == "cs-chart-legend"
              for t in g.iter(f"{ns}text")]  # fmt: skip
    assert len(ticks) == 2 and len(legend) == 2
    lowest_date = max(float(t.get("y")) for t in ticks)
    assert all(float(t.get("y")) - lowest_date >= 11 for t in legend)  # a row of its own
    assert all(float(t.get("y")) <= height for t in [*ticks, *legend])
    assert float(legend[1].get("x")) > float(legend[0].get("x")) + len("Computed score") * 6
    markers = {t.text: t for g in root.iter(f"{ns}g") if g.get("class") == "cs-chart-marker"
               for t in g.iter(f"{ns}text")}  # fmt: skip
    last = markers["Model v2"]
    assert last.get("text-anchor") == "end" and float(last.get("x")) <= width
    assert markers["Model v3"].get("text-anchor") == "middle"  # room on both sides


def test_bar_chart_draws_no_bar_for_negative_or_missing_values():
    from cs_metrics.charts import bar_chart

    svg = str(bar_chart([("A", 100, "green"), ("B", -5, "red"), ("C", None, "none")],
                        title="ARR", label_header="Band", value_format="{:,.0f}"))  # fmt: skip
    assert svg.count('width="0"') == 2 and ">-5<" in svg and ">–<" in svg
    assert "style=" not in svg


HUGE = "99999999999999999999"
OUT_OF_RANGE_URLS = [
    "/cs/scorecard?kind=month&month=9999-12",
    "/cs/scorecard?kind=quarter&quarter=9999-Q4",
    "/cs/scorecard?kind=custom&start=9999-12-01&end=9999-12-31",
    "/cs/scorecard?kind=custom&start=0001-01-01&end=0001-01-31",
    "/cs/nps?kind=month&month=9999-12",
    "/cs/nps?a_kind=month&a_month=9999-12&b_kind=quarter&b_quarter=9999-Q4",
    "/cs/scorecard/kpis.csv?kind=month&month=9999-12",
    "/cs/nps/month.csv?kind=month&month=9999-12",
    "/cs/nps/compare.csv?a_kind=month&a_month=9999-12",
    "/api/v1/cs/kpis?kind=month&month=9999-12",
    "/api/v1/cs/kpis?kind=custom&start=2026-01-01&end=9999-12-31",
    f"/cs/accounts?csm={HUGE}",
    f"/cs/accounts.csv?csm={HUGE}",
    f"/cs/accounts?page={HUGE}",
    f"/cs/tasks?page={HUGE}",
    f"/cs/rules/{{rule}}?page={HUGE}",
    f"/cs/alerts?page={HUGE}",
    f"/cs/improvements?org_id={HUGE}",
    f"/cs/referrals?org_id={HUGE}",
    f"/cs/audit?org_id={HUGE}&staff_id={HUGE}",
    f"/cs/targets?csm={HUGE}",
    f"/api/v1/cs/accounts?csm={HUGE}",
    f"/api/v1/cs/accounts?page={HUGE}",
]


@pytest.mark.parametrize("url", OUT_OF_RANGE_URLS)
def test_out_of_range_values_in_urls_are_4xx_or_clamped_never_500(client, session, admin, url):
    """A far-future period or an integer past what the database holds is a message naming
    the field (or clamped, or simply matches nothing), never an overflow."""
    account(session, "Acme", csm=admin, scores=(80,))
    rule = AlertRule(name="Usage fell by half", expression="usage_trend < -50")
    session.add(rule)
    session.flush()
    url = url.format(rule=rule.id)
    headers = {}
    if url.startswith("/api/"):
        _token, raw = create_api_token(session, admin, "script", "read")
        session.flush()
        headers = {"Authorization": f"Bearer {raw}"}
    else:
        login(client, admin)
    response = client.get(url, headers=headers)
    assert response.status_code < 500
    if "9999-" in url or "0001-" in url:
        assert response.status_code in (400, 422)
        if url.startswith("/api/"):
            assert set(response.get_json()["error"]["fields"]) & {"month", "end"}
        elif ".csv" not in url:
            assert "Choose a year from 1900 to 9998." in response.get_data(as_text=True)
    if "csm=" in url and url.startswith("/api/"):
        assert response.status_code == 422 and "csm" in response.get_json()["error"]["fields"]
    elif "csm=" in url and "/accounts" in url:
        assert response.status_code == 200 and "Acme" not in response.get_data(as_text=True)


def test_account_page_shows_labels_not_codes_in_both_languages(client, session, csm):
    org = account(session, "Label Co", csm=csm, scores=(80,))
    session.add(ImprovementItem(organization_id=org.id, department="support",
                                status="in_progress", title="Faster answers"))  # fmt: skip
    session.add(Contact(external_id="C-1", organization_id=org.id, email="d@example.com",
                        name="Dana", role="decision_maker"))  # fmt: skip
    session.add(HealthAlert(organization_id=org.id, kind="score_drop", day=TODAY,
                            severity="critical"))  # fmt: skip
    session.flush()
    login(client, csm)
    page = client.get(f"/cs/accounts/{org.id}", headers={"Accept-Language": "en"}).text
    assert ">Critical</span>" in page and ">Support</span>" in page and "In progress" in page
    assert "· Decision maker" in page
    for code in (">critical<", ">support<", "in_progress", "decision_maker"):
        assert code not in page
    csm.locale = "zh_CN"
    session.flush()
    page = client.get(f"/cs/accounts/{org.id}").text
    assert ">关键</span>" in page and ">支持</span>" in page and "进行中" in page
    assert "· 决策者" in page and "decision_maker" not in page


def test_health_model_weight_share_column_is_a_proportion_in_chinese(client, session, admin):
    admin.locale = "zh_CN"
    session.flush()
    login(client, admin)
    page = client.get("/cs/health-model").get_data(as_text=True)
    header = page.split("<thead>")[1].split("</thead>")[0]
    assert ">占比</th>" in header and "分享" not in header  # "Share" as in 20%, not "to share"


# --- recompute now ---------------------------------------------------------------------------


def test_recompute_now_scores_the_imported_accounts_and_shows_its_progress(client, session, csm):
    login(client, csm)
    job_page = client.get(upload(client, ACCOUNTS).headers["Location"]).get_data(as_text=True)
    assert 'id="recompute-now"' in job_page  # offered where the CSM has just imported

    response = client.post("/cs/recompute")
    assert response.status_code == 302
    run_url = response.headers["Location"]
    status = client.get(run_url + "/status.json").get_json()
    assert status["status"] == "done" and status["finished"] and status["percent"] == 100
    customers = session.scalar(
        select(func.count()).select_from(Organization).where(Organization.kind == "customer")
    )
    assert status["accounts_done"] == status["accounts_total"] == customers >= 2
    page = client.get(run_url).get_data(as_text=True)
    assert f"{customers} accounts recomputed" in page and "Carla CSM" in page
    assert "cs_progress.js" in page

    session.expire_all()
    acme = session.scalar(select(AccountProfile).where(AccountProfile.external_id == "A-1"))
    scored = select(HealthSnapshot.day).where(
        HealthSnapshot.organization_id == acme.organization_id
    )
    assert session.scalars(scored).all() == [TODAY]
    portfolio = client.get("/cs/").get_data(as_text=True)
    assert "Health scores computed" in portfolio and 'id="recompute-now"' in portfolio


def test_a_recompute_waiting_to_start_is_shown_and_joined_not_doubled(client, session, csm):
    waiting = service.queue_recompute(session, csm)  # its task not run yet
    session.commit()
    login(client, csm)
    portfolio = client.get("/cs/").get_data(as_text=True)
    assert "A health recompute is waiting to start." in portfolio
    assert 'id="recompute-now"' not in portfolio
    assert client.get(f"/cs/recompute/{waiting.id}/status.json").get_json()["percent"] == 0

    response = client.post("/cs/recompute")
    assert response.headers["Location"].endswith(f"/cs/recompute/{waiting.id}")
    assert session.scalar(select(func.count()).select_from(RecomputeRun)) == 1


def test_product_managers_see_when_scores_were_computed_but_cannot_recompute(
    app, client, session, csm, pm
):
    run = service.queue_recompute(session, csm)
    session.commit()
    with app.app_context():
        service.run_recompute(app.extensions["cocreate_sessionmaker"], run.id)
    login(client, pm)
    portfolio = client.get("/cs/").get_data(as_text=True)
    assert "Health scores computed" in portfolio and 'id="recompute-now"' not in portfolio
    assert client.post("/cs/recompute").status_code == 403
    assert client.get(f"/cs/recompute/{run.id}").status_code == 200
    assert client.get("/cs/recompute/999999").status_code == 404
    assert client.get("/cs/recompute/999999/status.json").status_code == 404


def test_a_run_whose_worker_died_shows_as_failed_and_frees_the_button(client, session, csm):
    """A killed worker leaves its run "running": after ``RUN_ABANDONED_AFTER`` the portal says
    it failed and offers a new run instead of waiting forever."""
    run = service.queue_recompute(session, csm)
    run.status = "running"
    run.started_at = utcnow() - service.RUN_ABANDONED_AFTER - timedelta(minutes=1)
    session.commit()
    login(client, csm)
    portfolio = client.get("/cs/").get_data(as_text=True)
    assert "The last health recompute failed" in portfolio and 'id="recompute-now"' in portfolio
    status = client.get(f"/cs/recompute/{run.id}/status.json").get_json()
    assert (status["status"], status["finished"]) == ("failed", True)
    assert "The recompute failed" in client.get(f"/cs/recompute/{run.id}").get_data(as_text=True)
    started = client.post("/cs/recompute").headers["Location"]
    assert re.search(r"/cs/recompute/(\d+)$", started).group(1) != str(run.id)

    run.started_at = utcnow()  # one that is merely slow is still running
    session.commit()
    assert "Health scores are being recomputed." in client.get("/cs/").get_data(as_text=True)
