"""Test data written through the services, and the steps a person takes in the browser."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from playwright.sync_api import Page, expect

from portal.accounts import service
from portal.core.db import db
from portal.core.identity import Organization, OrganizationDomain, OrgKind, Role, User

PASSWORD = "violet-harbor-lantern-58"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # gitignored

# --- test data, written through the services and committed --------------------------------


def make_org(app: Flask, name: str, slug: str, domain: str | None = None) -> int:
    with app.app_context():
        org = Organization(name=name, slug=slug)
        if domain:
            org.domains.append(OrganizationDomain(domain=domain, verified=True))
        db.session.add(org)
        db.session.commit()
        return org.id


def make_vendor_org(app: Flask) -> int:
    """The vendor's own organization, where staff (moderators, CSMs, admins) belong."""
    with app.app_context():
        org = Organization(name="Cocreate Staff", slug="cocreate-staff", kind=OrgKind.VENDOR)
        db.session.add(org)
        db.session.commit()
        return org.id


def make_user(
    app: Flask, org_id: int, email: str, name: str, *roles: Role, locale: str = "en"
) -> int:
    with app.app_context():
        org = db.session.get(Organization, org_id)
        user = service.create_user(
            db.session,
            org,
            email,
            name,
            PASSWORD,
            roles=roles or (Role.MEMBER,),
            locale=locale,
            confirmed=True,
        )
        db.session.commit()
        return user.id


def load_user(app: Flask, user_id: int | None = None, email: str | None = None) -> User:
    with app.app_context():
        if email is not None:
            user = service.find_user(db.session, email)
        else:
            user = db.session.get(User, user_id)
        assert user is not None
        return user


# --- what a person does in the browser ------------------------------------------------------


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Through the real sign-in form, in whichever language the page is in.

    Returns once the page it lands on has loaded: its scripts (menus, shortcuts) come at the end
    of the body, after the markup the sign-out form is in."""
    page.goto("/sign-in")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.locator('form[action="/sign-out"]')).to_be_attached()
    page.wait_for_load_state("load")


def mailed_link(page: Page, recipient: str, path: str) -> str:
    """The newest link to ``path`` mailed to ``recipient``, as shown on /dev/outbox."""
    page.goto("/dev/outbox")
    message = page.locator(f'article.outbox-message[data-recipient="{recipient}"]').first
    link = message.locator(f'a[href*="{path}"]').first
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href
    return href
