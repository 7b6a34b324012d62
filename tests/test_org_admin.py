"""Org admins manage their own members, and only their own."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.accounts.models import Invitation
from portal.core.identity import Role, User
from portal.core.notifications import Notification
from tests.conftest import login
from tests.factories import OrganizationFactory, UserFactory, staff
from tests.test_accounts import NEW_PASSWORD, link_in


def org_admin(**kwargs):
    return UserFactory(roles=[Role.ORG_ADMIN], **kwargs)


def test_invitation_round_trip(client, session, outbox):
    admin = org_admin()
    login(client, admin)
    response = client.post(
        f"/orgs/{admin.organization_id}/members",
        data={"email": "Invitee@Example.com", "role": "member"},
    )
    assert response.status_code == 302
    [mail] = outbox("invitee@example.com")
    link = link_in(mail, "/invitations/")

    client.post("/sign-out")
    assert client.get(link).status_code == 200
    joined = client.post(
        link, data={"display_name": "Invitee", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert joined.status_code == 302
    user = session.scalar(select(User).where(User.email == "invitee@example.com"))
    assert user.organization_id == admin.organization_id
    assert user.roles == {Role.MEMBER}
    assert user.email_confirmed_at is not None

    client.post("/sign-out")
    reused = client.get(link)
    assert reused.status_code == 400
    assert "already been used" in reused.get_data(as_text=True)


def test_invitation_for_existing_email_is_refused(client, session):
    admin = org_admin()
    UserFactory(email="someone@example.com")
    login(client, admin)
    response = client.post(
        f"/orgs/{admin.organization_id}/members",
        data={"email": "SOMEONE@example.com", "role": "member"},
    )
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_customer_admin_cannot_grant_staff_roles(client, session):
    admin = org_admin()
    login(client, admin)
    response = client.post(
        f"/orgs/{admin.organization_id}/members",
        data={"email": "x@example.com", "role": "vendor_admin"},
    )
    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_expired_and_revoked_invitations_are_refused(client, session, app, outbox):
    admin = org_admin()
    login(client, admin)
    org_id = admin.organization_id
    client.post(f"/orgs/{org_id}/members", data={"email": "a@example.com", "role": "member"})
    client.post(f"/orgs/{org_id}/members", data={"email": "b@example.com", "role": "member"})
    link_a = link_in(outbox("a@example.com")[0], "/invitations/")
    link_b = link_in(outbox("b@example.com")[0], "/invitations/")
    invitation_b = session.scalar(select(Invitation).where(Invitation.email == "b@example.com"))
    assert client.post(f"/orgs/{org_id}/invitations/{invitation_b.id}/revoke").status_code == 302
    client.post("/sign-out")
    assert "not valid" in client.get(link_b).get_data(as_text=True)

    invitation_a = session.scalar(select(Invitation).where(Invitation.email == "a@example.com"))
    from datetime import timedelta

    invitation_a.expires_at = invitation_a.created_at - timedelta(seconds=1)
    session.flush()
    expired = client.get(link_a)
    assert expired.status_code == 400
    assert "expired" in expired.get_data(as_text=True)


def test_admin_deactivates_reactivates_and_changes_roles(client, session):
    admin = org_admin()
    member = UserFactory(organization=admin.organization)
    login(client, admin)
    base = f"/orgs/{admin.organization_id}/members/{member.id}"
    assert client.post(f"{base}/active", data={"active": "0"}).status_code == 302
    session.expire_all()
    assert session.get(User, member.id).active is False
    client.post(f"{base}/active", data={"active": "1"})
    client.post(f"{base}/role", data={"role": "org_admin"})
    session.expire_all()
    member = session.get(User, member.id)
    assert member.active is True
    assert member.roles == {Role.ORG_ADMIN}
    note = session.scalar(select(Notification).where(Notification.user_id == member.id))
    assert note is not None and "role" in note.message


def test_admin_cannot_demote_themselves_or_grant_staff_roles(client, session):
    admin = org_admin()
    member = UserFactory(organization=admin.organization)
    login(client, admin)
    org_id = admin.organization_id
    client.post(f"/orgs/{org_id}/members/{admin.id}/role", data={"role": "member"})
    client.post(f"/orgs/{org_id}/members/{member.id}/role", data={"role": "vendor_admin"})
    session.expire_all()
    assert session.get(User, admin.id).roles == {Role.ORG_ADMIN}
    assert session.get(User, member.id).roles == {Role.MEMBER}


def test_members_page_lists_only_this_org(client, session):
    admin = org_admin(display_name="Admin A")
    UserFactory(organization=admin.organization, display_name="Colleague")
    UserFactory(display_name="Stranger")
    login(client, admin)
    html = client.get(f"/orgs/{admin.organization_id}/members").get_data(as_text=True)
    assert "Colleague" in html
    assert "Stranger" not in html


def test_other_orgs_admin_pages_are_not_found(client, session):
    admin = org_admin()
    other = OrganizationFactory()
    stranger = UserFactory(organization=other)
    login(client, admin)
    assert client.get(f"/orgs/{other.id}/members").status_code == 404
    assert client.get("/orgs/999999/members").status_code == 404
    for path, data in [
        (f"/orgs/{other.id}/members", {"email": "z@example.com", "role": "member"}),
        (f"/orgs/{other.id}/members/{stranger.id}/active", {"active": "0"}),
        (f"/orgs/{other.id}/members/{stranger.id}/role", {"role": "org_admin"}),
        # Own org in the URL, another org's user id:
        (f"/orgs/{admin.organization_id}/members/{stranger.id}/active", {"active": "0"}),
    ]:
        assert client.post(path, data=data).status_code == 404, path
    session.expire_all()
    assert session.get(User, stranger.id).active is True
    assert session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_plain_members_may_not_administer_their_org(client, session):
    member = UserFactory()
    login(client, member)
    assert client.get(f"/orgs/{member.organization_id}/members").status_code == 403


def test_vendor_admin_may_administer_any_org(client, session):
    admin = staff(Role.VENDOR_ADMIN)
    customer = OrganizationFactory()
    login(client, admin)
    assert client.get(f"/orgs/{customer.id}/members").status_code == 200
