"""The access audit: staff opening an account's CS pages leave one row per visit (refreshes
within 10 minutes do not), and only vendor admins read it, filtered and as CSV."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cs_metrics.models import AccountView
from cs_metrics.views import audit
from portal.core.db import utcnow
from portal.core.identity import Role
from tests import cs_factories
from tests.conftest import login
from tests.cs_factories import AccountFactory
from tests.factories import OrganizationFactory, UserFactory, staff


@pytest.fixture(autouse=True)
def _bind(session):
    cs_factories.bind(session)


@pytest.fixture
def csm(session):
    return staff(Role.CSM, display_name="Carla CSM")


@pytest.fixture
def admin(session):
    return staff(Role.VENDOR_ADMIN, display_name="Vera Admin")


@pytest.fixture
def acme(session, csm):
    org = OrganizationFactory(name="Acme")
    AccountFactory(organization_id=org.id, csm_id=csm.id)
    return org


@pytest.fixture
def globex(session, csm):
    org = OrganizationFactory(name="Globex")
    AccountFactory(organization_id=org.id, csm_id=csm.id)
    return org


def views(session):
    session.expire_all()
    return [
        (v.staff_id, v.organization_id, v.page)
        for v in session.scalars(select(AccountView).order_by(AccountView.id))
    ]


def test_opening_an_account_and_its_exports_is_recorded_once_per_ten_minutes(
    client, session, csm, acme
):
    login(client, csm)
    assert client.get(f"/cs/accounts/{acme.id}").status_code == 200
    assert client.get(f"/cs/accounts/{acme.id}").status_code == 200  # a refresh
    assert client.get(f"/cs/accounts/{acme.id}/nps.csv").status_code == 200
    assert views(session) == [
        (csm.id, acme.id, "account"),
        (csm.id, acme.id, "export:nps"),
    ]


def test_a_later_visit_is_recorded_again(app_ctx, session, csm, acme):
    now = utcnow()
    assert audit.record_view(session, csm, acme.id, "account", now)
    assert not audit.record_view(session, csm, acme.id, "account", now + timedelta(minutes=9))
    assert audit.record_view(session, csm, acme.id, "account", now + timedelta(minutes=11))
    assert len(views(session)) == 2


def test_pages_the_staff_member_may_not_open_record_nothing(client, session, acme):
    customer = UserFactory(organization=acme)
    login(client, customer)
    assert client.get(f"/cs/accounts/{acme.id}").status_code == 403
    assert client.get("/cs/accounts/999999").status_code in (403, 404)
    assert views(session) == []


def test_only_vendor_admins_read_the_audit(client, session, csm, admin, acme):
    login(client, csm)
    assert client.get("/cs/audit").status_code == 403
    assert client.get("/cs/audit.csv").status_code == 403
    login(client, UserFactory(organization=acme))
    assert client.get("/cs/audit").status_code == 403
    anonymous = client.application.test_client()
    assert anonymous.get("/cs/audit").status_code == 302
    login(client, admin)
    assert client.get("/cs/audit").status_code == 200


def test_audit_lists_filters_and_exports(client, session, csm, admin, acme, globex):
    now = utcnow()
    audit.record_view(session, csm, acme.id, "account", now - timedelta(hours=2))
    audit.record_view(session, csm, globex.id, "export:nps", now - timedelta(hours=1))
    audit.record_view(session, admin, globex.id, "account", now)
    login(client, admin)

    page = client.get("/cs/audit").get_data(as_text=True)
    assert page.count("<tr>") == 4  # header + 3 visits
    assert "Carla CSM" in page and "Vera Admin" in page and "CSV export: nps" in page

    by_account = client.get(f"/cs/audit?org_id={acme.id}").get_data(as_text=True)
    assert by_account.count("<tr>") == 2 and "Acme" in by_account
    by_staff = client.get(f"/cs/audit?staff_id={admin.id}").get_data(as_text=True)
    assert by_staff.count("<tr>") == 2 and "Vera Admin</td>" in by_staff
    assert client.get("/cs/audit?org_id=abc&staff_id=-1&page=x").status_code == 200

    export = client.get(f"/cs/audit.csv?org_id={globex.id}")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    lines = export.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("When,Account,Account ID,Staff")
    assert len(lines) == 3
    assert lines[1].split(",")[3] == "Vera Admin" and lines[2].split(",")[5] == "export:nps"
