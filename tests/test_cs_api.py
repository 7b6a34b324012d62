"""The CS JSON API: staff only, book-aware, health with explanation, NPS with margins, CSV
imports queued with a status URL, field-named errors and the OpenAPI document."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest

from cs_metrics import service
from cs_metrics.settings import set_setting
from portal.accounts.service import create_api_token
from portal.core.db import utcnow
from portal.core.identity import Role
from tests import cs_factories
from tests.conftest import login
from tests.cs_factories import AccountFactory, NpsFactory, SnapshotFactory, UsageFactory
from tests.factories import OrganizationFactory, UserFactory, staff


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


def token(app, session, user, scope: str = "read") -> dict[str, str]:
    with app.app_context():
        _token, raw = create_api_token(session, user, "script", scope)
        session.flush()
    return {"Authorization": f"Bearer {raw}"}


def account(name: str, csm=None, segment: str = "enterprise", band: str | None = None):
    org = OrganizationFactory(name=name)
    AccountFactory(organization_id=org.id, csm_id=csm.id if csm else None, segment=segment)
    if band is not None:
        score = {"green": 90.0, "yellow": 75.0, "red": 40.0}[band]
        SnapshotFactory(
            organization_id=org.id, day=date.today() - timedelta(days=1), score=score - 5,
            band=band, effective_score=score, effective_band=band,
        )  # fmt: skip
        SnapshotFactory(
            organization_id=org.id, day=date.today(), score=score, band=band,
            effective_score=score, effective_band=band,
        )  # fmt: skip
    return org


@pytest.fixture
def book(session):
    """Two CSMs, three accounts: Acme (green, csm_a), Globex (red, csm_b), Initech (none)."""
    csm_a = staff(Role.CSM, display_name="Ann CSM")
    csm_b = staff(Role.CSM, organization=csm_a.organization, display_name="Bo CSM")
    acme = account("Acme", csm_a, "enterprise", "green")
    globex = account("Globex", csm_b, "smb", "red")
    initech = account("Initech", None, "smb")
    return {"csm_a": csm_a, "csm_b": csm_b, "acme": acme, "globex": globex, "initech": initech}


def names(body) -> list[str]:
    return [a["name"] for a in body["items"]]


def test_accounts_list_filters_and_paginates(app, client, session, book):
    headers = token(app, session, book["csm_a"])
    body = client.get("/api/v1/cs/accounts", headers=headers).get_json()
    assert names(body) == ["Acme", "Globex", "Initech"]
    acme = body["items"][0]
    assert acme["health"]["band"] == "green" and acme["health"]["score"] == 90.0
    assert acme["csm"]["display_name"] == "Ann CSM" and acme["arr"] == "120000.00"
    assert body["items"][2]["health"]["band"] is None

    def listed(query: str) -> list[str]:
        return names(client.get(f"/api/v1/cs/accounts?{query}", headers=headers).get_json())

    assert listed("band=red") == ["Globex"]
    assert listed("band=none") == ["Initech"]
    assert listed("segment=smb") == ["Globex", "Initech"]
    assert listed(f"csm={book['csm_b'].id}") == ["Globex"]
    page2 = client.get("/api/v1/cs/accounts?per_page=2&page=2", headers=headers).get_json()
    assert names(page2) == ["Initech"] and page2["meta"]["total"] == 3


def test_bad_query_is_422_naming_each_field(app, client, session, book):
    headers = token(app, session, book["csm_a"])
    bad = client.get("/api/v1/cs/accounts?band=purple&per_page=0&csm=x", headers=headers)
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"band", "per_page", "csm"}
    bad = client.get(f"/api/v1/cs/accounts/{book['acme'].id}/health?history_days=0",
                     headers=headers)  # fmt: skip
    assert bad.status_code == 422 and "history_days" in bad.get_json()["error"]["fields"]


def test_customer_token_is_denied_on_every_route(app, client, session, book):
    customer = UserFactory(organization=book["acme"], roles=[Role.ORG_ADMIN])
    headers = token(app, session, customer, "write")
    acme = book["acme"].id
    for url in (
        "/api/v1/cs/accounts",
        f"/api/v1/cs/accounts/{acme}",
        f"/api/v1/cs/accounts/{acme}/health",
        f"/api/v1/cs/accounts/{acme}/nps",
        "/api/v1/cs/nps",
        "/api/v1/cs/imports/1",
        "/api/v1/cs/kpis",
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 403, url
        assert "Acme" not in response.get_data(as_text=True)
    upload = client.post(
        "/api/v1/cs/imports",
        data={"kind": "accounts", "file": (io.BytesIO(b"external_id,name\nX,Y\n"), "a.csv")},
        headers=headers,
    )
    assert upload.status_code == 403
    assert client.get("/api/v1/cs/accounts").status_code == 401


def test_own_book_only_hides_other_accounts_as_not_found(app, client, session, book):
    admin = staff(Role.VENDOR_ADMIN)
    with app.app_context():
        set_setting(session, admin, "own_book_only", True)
        session.flush()
    headers = token(app, session, book["csm_a"])
    assert names(client.get("/api/v1/cs/accounts", headers=headers).get_json()) == ["Acme"]
    globex = book["globex"].id
    for url in (f"/api/v1/cs/accounts/{globex}", f"/api/v1/cs/accounts/{globex}/health",
                f"/api/v1/cs/accounts/{globex}/nps"):  # fmt: skip
        assert client.get(url, headers=headers).status_code == 404, url
    assert client.get(f"/api/v1/cs/accounts/{book['acme'].id}", headers=headers).status_code == 200
    # the admin still sees every account
    admin_headers = token(app, session, admin)
    assert len(client.get("/api/v1/cs/accounts", headers=admin_headers).get_json()["items"]) == 3


def test_detail_and_health_explanation(app, client, session, book):
    headers = token(app, session, book["csm_b"])
    org_id = book["initech"].id
    today = utcnow().date()
    for d in range(60):
        UsageFactory(organization_id=org_id, day=today - timedelta(days=d), value=10.0)
    with app.app_context():
        service.recompute(session)
        session.flush()
    detail = client.get(f"/api/v1/cs/accounts/{org_id}", headers=headers).get_json()
    assert detail["name"] == "Initech" and detail["segment"] == "smb"
    assert detail["plan"] == "enterprise" and detail["contacts"] == 0
    assert detail["health"]["day"] == today.isoformat()
    health = client.get(f"/api/v1/cs/accounts/{org_id}/health", headers=headers).get_json()
    components = {c["name"]: c for c in health["latest"]["components"]}
    assert components["usage_trend"]["raw"] == 0.0 and not components["usage_trend"]["missing"]
    assert components["nps"]["missing"] is True
    assert [p["day"] for p in health["history"]] == [today.isoformat()]
    missing = client.get("/api/v1/cs/accounts/999999", headers=headers)
    assert missing.status_code == 404


def test_nps_overall_and_by_account_with_margin(app, client, session, book):
    now = utcnow()
    for score in (10, 9, 9, 7, 3):
        NpsFactory(organization_id=book["acme"].id, score=score, responded_at=now)
    NpsFactory(organization_id=book["globex"].id, score=0, responded_at=now)
    NpsFactory(organization_id=book["globex"].id, score=10, responded_at=now - timedelta(days=400))
    headers = token(app, session, book["csm_a"])
    body = client.get("/api/v1/cs/nps", headers=headers).get_json()
    assert body["overall"]["n"] == 6
    assert body["overall"]["nps"] == pytest.approx(100 * (3 - 2) / 6)
    assert body["overall"]["margin"] > 0
    assert [g["label"] for g in body["groups"]] == ["Acme", "Globex"]  # largest n first
    acme, globex = body["groups"]
    assert acme["key"] == str(book["acme"].id)
    assert acme["n"] == 5 and acme["nps"] == pytest.approx(40.0)
    assert globex["nps"] == -100.0
    longer = client.get("/api/v1/cs/nps?days=500", headers=headers).get_json()
    assert longer["overall"]["n"] == 7
    by_segment = client.get("/api/v1/cs/nps?group_by=segment", headers=headers).get_json()
    assert {g["label"]: g["n"] for g in by_segment["groups"]} == {"enterprise": 5, "smb": 1}
    bad = client.get("/api/v1/cs/nps?group_by=planet&days=0", headers=headers)
    assert set(bad.get_json()["error"]["fields"]) == {"group_by", "days"}
    one = client.get(f"/api/v1/cs/accounts/{book['initech'].id}/nps", headers=headers)
    assert one.get_json()["account"]["n"] == 0 and one.get_json()["account"]["nps"] is None


def test_import_upload_returns_202_with_status_url(app, client, session, book):
    headers = token(app, session, book["csm_a"], "write")
    csv = b"external_id,name,segment\nNEW-1,Newco,mid\nNEW-2,Otherco,mid\n"
    response = client.post(
        "/api/v1/cs/imports",
        data={"kind": "accounts", "file": (io.BytesIO(csv), "accounts.csv")},
        headers=headers,
    )
    assert response.status_code == 202
    job = response.get_json()
    assert job["status_url"] == f"/api/v1/cs/imports/{job['id']}"
    assert response.headers["Location"].endswith(job["status_url"])
    status = client.get(job["status_url"], headers=headers).get_json()
    assert status["status"] == "done" and status["rows_done"] == 2 and status["progress"] == 1.0
    listed = client.get("/api/v1/cs/accounts?segment=mid", headers=headers).get_json()
    assert names(listed) == ["Newco", "Otherco"]


def test_import_row_errors_are_reported_as_json(app, client, session, book):
    headers = token(app, session, book["csm_a"], "write")
    csv = b"account_external_id,day,metric,value\nNOPE,2026-03-01,logins,3\nACC,2026-13-01,x,1\n"
    response = client.post(
        "/api/v1/cs/imports",
        data={"kind": "usage_events", "file": (io.BytesIO(csv), "usage.csv"),
              "import_valid_rows": "true"},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 202 and response.get_json()["import_valid_rows"] is True
    status = client.get(response.get_json()["status_url"], headers=headers).get_json()
    assert status["error_count"] >= 2
    assert {e["line"] for e in status["report"]["errors"]} == {2, 3}
    assert {e["field"] for e in status["report"]["errors"]} >= {"account_external_id", "day"}


def test_bad_upload_is_4xx_naming_the_field(app, client, session, book):
    headers = token(app, session, book["csm_a"], "write")
    no_file = client.post("/api/v1/cs/imports", data={"kind": "accounts"}, headers=headers)
    assert no_file.status_code == 422 and "file" in no_file.get_json()["error"]["fields"]
    text_file = client.post(
        "/api/v1/cs/imports", data={"kind": "accounts", "file": "not a file"}, headers=headers
    )
    assert text_file.status_code == 422 and "file" in text_file.get_json()["error"]["fields"]
    bad_kind = client.post(
        "/api/v1/cs/imports",
        data={"kind": "planets", "file": (io.BytesIO(b"a,b\n"), "x.csv"), "extra": "1"},
        headers=headers,
    )
    assert bad_kind.status_code == 422
    assert set(bad_kind.get_json()["error"]["fields"]) == {"kind", "extra"}
    read_only = client.post(
        "/api/v1/cs/imports",
        data={"kind": "accounts", "file": (io.BytesIO(b"external_id,name\n"), "a.csv")},
        headers=token(app, session, book["csm_a"], "read"),
    )
    assert read_only.status_code == 403


def test_product_manager_reads_but_cannot_import(app, client, session, book):
    pm = staff(Role.PRODUCT_MANAGER)
    headers = token(app, session, pm, "write")
    assert client.get("/api/v1/cs/accounts", headers=headers).status_code == 200
    upload = client.post(
        "/api/v1/cs/imports",
        data={"kind": "accounts", "file": (io.BytesIO(b"external_id,name\nX,Y\n"), "a.csv")},
        headers=headers,
    )
    assert upload.status_code == 403


def test_recompute_returns_202_and_its_status_says_when_it_is_done(app, client, session, book):
    headers = token(app, session, book["csm_a"], "write")
    response = client.post("/api/v1/cs/recompute", headers=headers)
    assert response.status_code == 202
    run = response.get_json()
    assert run["status_url"] == f"/api/v1/cs/recompute/{run['id']}"
    assert response.headers["Location"].endswith(run["status_url"])
    status = client.get(run["status_url"], headers=headers).get_json()
    assert status["status"] == "done" and status["finished"] and status["progress"] == 1.0
    assert status["accounts_done"] == status["accounts_total"] == 3
    assert status["requested_by_id"] == book["csm_a"].id
    assert sum(status["bands"].values()) <= 3 and status["alerts_raised"] is not None

    reader = token(app, session, staff(Role.PRODUCT_MANAGER), "write")
    assert client.post("/api/v1/cs/recompute", headers=reader).status_code == 403
    assert client.get(run["status_url"], headers=reader).status_code == 200
    read_only = token(app, session, book["csm_a"], "read")
    assert client.post("/api/v1/cs/recompute", headers=read_only).status_code == 403
    assert client.get("/api/v1/cs/recompute/999999", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("status", "hours_ago", "done", "total", "percent", "progress", "shown_as"),
    [
        ("queued", None, 0, 0, 0, 0.0, "queued"),
        ("running", 0, 0, 0, None, 0.0, "running"),  # still counting the accounts
        ("running", 0, 2, 3, 66, 2 / 3, "running"),
        ("running", 0, 3, 3, 99, 1.0, "running"),  # all scored, not yet saved: not 100
        ("running", 2, 1, 3, 100, 1.0, "failed"),  # its process was lost an hour ago
    ],
)
def test_a_runs_page_status_and_api_tell_the_same_progress(
    app, client, session, book, status, hours_ago, done, total, percent, progress, shown_as
):
    run = service.queue_recompute(session, book["csm_a"])  # its task not run yet
    run.status = status
    run.accounts_done, run.accounts_total = done, total
    if hours_ago is not None:
        run.started_at = utcnow() - timedelta(hours=hours_ago, minutes=1)
    session.commit()
    api = client.get(
        f"/api/v1/cs/recompute/{run.id}", headers=token(app, session, book["csm_a"])
    ).get_json()
    login(client, book["csm_a"])
    page = client.get(f"/cs/recompute/{run.id}/status.json").get_json()
    assert page["status"] == api["status"] == shown_as
    assert page["finished"] == api["finished"] == (shown_as == "failed")
    assert page["percent"] == percent and api["progress"] == pytest.approx(progress)


def test_a_failed_import_is_finished_all_the_way_on_both_surfaces(app, client, session, book):
    headers = token(app, session, book["csm_a"], "write")
    upload = client.post(
        "/api/v1/cs/imports",
        data={
            "kind": "accounts",
            "file": (io.BytesIO(b"external_id,name,arr\nX,Y,lots\n"), "a.csv"),
        },
        headers=headers,
    )
    job = client.get(upload.get_json()["status_url"], headers=headers).get_json()
    login(client, book["csm_a"])
    page = client.get(f"/cs/imports/{job['id']}/status.json").get_json()
    assert job["status"] == page["status"] == "failed" and job["error_count"] == 1
    assert job["finished"] and page["finished"]
    assert job["progress"] == 1.0 and page["percent"] == 100


def test_openapi_lists_the_cs_paths(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in (
        "/cs/accounts",
        "/cs/accounts/{org_id}",
        "/cs/accounts/{org_id}/health",
        "/cs/accounts/{org_id}/nps",
        "/cs/nps",
        "/cs/imports",
        "/cs/imports/{job_id}",
        "/cs/recompute",
        "/cs/recompute/{run_id}",
        "/cs/kpis",
    ):
        assert path in spec["paths"], path
    upload = spec["paths"]["/cs/imports"]["post"]
    assert upload["x-scope"] == "write" and "422" in upload["responses"]
    assert "202" in upload["responses"] and "200" not in upload["responses"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert "CsAccountPage" in str(spec["components"]["schemas"])


def test_kpis_scorecards_and_company_figures(app, client, session, book):
    headers = token(app, session, book["csm_a"])
    body = client.get("/api/v1/cs/kpis?kind=month&month=2026-03", headers=headers).get_json()
    assert body["period"] == {"start": "2026-03-01", "end": "2026-04-01", "label": "2026-03",
                              "kind": "month"}  # fmt: skip
    cards = body["scorecards"]
    assert cards[0]["csm_id"] == book["csm_a"].id  # your own card first
    assert {c["name"] for c in cards} == {"Ann CSM", "Bo CSM"}
    assert {k["code"] for k in cards[0]["kpis"]} >= {"base_healthy_share"}
    assert "tickets" in body["company"] and "problem_resolution" in body["company"]
    bad = client.get("/api/v1/cs/kpis?kind=month&month=March", headers=headers)
    assert bad.status_code == 422 and "month" in bad.get_json()["error"]["fields"]
    backwards = client.get("/api/v1/cs/kpis?kind=custom&start=2026-03-10&end=2026-03-01",
                           headers=headers)  # fmt: skip
    assert backwards.status_code == 422 and "end" in backwards.get_json()["error"]["fields"]
