"""Account operations. Services flush, never commit; the caller owns the transaction."""

from __future__ import annotations

import enum
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation import service as moderation
from portal.accounts.models import ApiToken, Invitation, UserProfile
from portal.core.activity import record_activity
from portal.core.db import utcnow
from portal.core.errors import Conflict, DomainError, InvalidToken, NotFound
from portal.core.html import render_markdown
from portal.core.identity import (
    CUSTOMER_ROLES,
    Organization,
    OrganizationDomain,
    Role,
    User,
    UserRole,
)
from portal.core.mail import queue_mail
from portal.core.notifications import notify
from portal.core.permissions import Action, authorize
from portal.core.security import (
    fingerprint,
    hash_password,
    new_secret_token,
    password_needs_rehash,
    sign,
    token_digest,
    unsign,
    validate_password,
    verify_password,
)
from portal.core.text import clean_text
from portal.core.urls import external_url

TOKEN_SCOPES = ("read", "write")
ABOUT_KIND = "profile_about"


def normalize_email(raw: str) -> str:
    """Validated, lower-cased address; raises DomainError naming the ``email`` field."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise DomainError(str(_l("Enter a valid email address.")), field="email") from error
    return result.normalized.lower()


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def _clean_name(display_name: str) -> str:
    name = " ".join(clean_text(display_name).split())
    if not name:
        raise DomainError(str(_l("Enter your name.")), field="display_name")
    if len(name) > 80:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=80)), field="display_name")
    return name


def create_user(
    session: Session,
    org: Organization,
    email: str,
    display_name: str,
    password: str,
    roles: tuple[Role, ...] = (Role.MEMBER,),
    locale: str = "en",
    confirmed: bool = False,
) -> User:
    """Create a user after checking every field; the email must be free (any case)."""
    email = normalize_email(email)
    validate_password(password, email)
    if find_user(session, email) is not None:
        raise Conflict(str(_l("An account with this email address already exists.")), field="email")
    user = User(
        email=email,
        display_name=_clean_name(display_name),
        password_hash=hash_password(password),
        locale=locale,
        organization=org,
        email_confirmed_at=utcnow() if confirmed else None,
        role_grants=[UserRole(role=str(role)) for role in roles],
    )
    session.add(user)
    session.flush()
    return user


def _domain_org(session: Session, email: str) -> Organization | None:
    domain = email.rsplit("@", 1)[1]
    return session.scalar(
        select(Organization)
        .join(OrganizationDomain)
        .where(OrganizationDomain.domain == domain, OrganizationDomain.verified.is_(True))
    )


def _send_confirmation(session: Session, user: User) -> None:
    token = sign("confirm", {"uid": user.id, "email": user.email})
    queue_mail(
        session,
        user.email,
        _l("Confirm your Cocreate email address"),
        "confirm_email",
        locale=user.locale,
        user=user,
        link=external_url("accounts.confirm_email", token=token),
    )


def sign_up(
    session: Session, email: str, display_name: str, password: str, locale: str = "en"
) -> None:
    """Join the organization whose verified domain matches the address.

    The answer is the same whether or not the address already has an account (no user
    enumeration): an existing owner gets a mail telling them so instead.
    """
    email = normalize_email(email)
    validate_password(password, email)
    display_name = _clean_name(display_name)
    org = _domain_org(session, email)
    if org is None:
        raise DomainError(
            str(
                _l(
                    "Your organization has not enabled sign-up for this email domain. "
                    "Ask your organization's admin for an invitation."
                )
            ),
            field="email",
        )
    existing = find_user(session, email)
    if existing is not None:
        queue_mail(
            session,
            existing.email,
            _l("You already have a Cocreate account"),
            "already_registered",
            locale=existing.locale,
            user=existing,
            link=external_url("accounts.forgot_password"),
        )
        return
    user = create_user(session, org, email, display_name, password, locale=locale)
    record_activity(session, user, org, "account.signed_up", user, {"via": "domain"})
    _send_confirmation(session, user)


def confirm_email(session: Session, token: str) -> User:
    payload = unsign("confirm", token, current_app.config["EMAIL_CONFIRM_MAX_AGE"])
    user = session.get(User, payload.get("uid"))
    if user is None or user.email != payload.get("email"):
        raise InvalidToken(str(_l("This link is not valid. Ask for a new one.")))
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
        record_activity(session, user, user.organization, "account.confirmed", user)
        notify(
            session, user, "welcome", _l("Welcome to Cocreate! Your email address is confirmed.")
        )
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user for these credentials, or None; the same work is done either way."""
    user = find_user(session, email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    assert user is not None
    if not user.is_active:
        return None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_sign_in_at = utcnow()
    record_activity(session, user, user.organization, "account.signed_in", user)
    return user


def request_password_reset(session: Session, email: str) -> None:
    """Mail a reset link if the account exists; callers answer the same either way."""
    user = find_user(session, email)
    if user is None or not user.is_active:
        return
    token = sign("reset", {"uid": user.id, "fp": fingerprint(user.password_hash)})
    queue_mail(
        session,
        user.email,
        _l("Reset your Cocreate password"),
        "reset_password",
        locale=user.locale,
        user=user,
        link=external_url("accounts.reset_password", token=token),
        minutes=current_app.config["PASSWORD_RESET_MAX_AGE"] // 60,
    )


def user_for_reset_token(session: Session, token: str) -> User:
    """The user a reset link is for; a used link (the password changed since) is refused."""
    payload = unsign("reset", token, current_app.config["PASSWORD_RESET_MAX_AGE"])
    user = session.get(User, payload.get("uid"))
    if user is None or not user.is_active or payload.get("fp") != fingerprint(user.password_hash):
        raise InvalidToken(str(_l("This link has already been used or is no longer valid.")))
    return user


def reset_password(session: Session, token: str, new_password: str) -> User:
    user = user_for_reset_token(session, token)
    validate_password(new_password, user.email)
    user.password_hash = hash_password(new_password)
    if user.email_confirmed_at is None:  # the link proved they own the address
        user.email_confirmed_at = utcnow()
    record_activity(session, user, user.organization, "account.password_reset", user)
    return user


def change_password(session: Session, user: User, current: str, new_password: str) -> None:
    if not verify_password(user.password_hash, current):
        raise DomainError(
            str(_l("Your current password is not correct.")), field="current_password"
        )
    validate_password(new_password, user.email, field="new_password")
    user.password_hash = hash_password(new_password)
    record_activity(session, user, user.organization, "account.password_changed", user)


def update_profile(
    session: Session, user: User, display_name: str, locale: str, timezone: str
) -> None:
    user.display_name = _clean_name(display_name)
    user.locale = locale
    user.timezone = timezone


MAX_ABOUT = 5000


def profile_of(session: Session, user: User) -> UserProfile:
    return session.get(UserProfile, user.id) or UserProfile(user_id=user.id)


class AboutSaved(enum.StrEnum):
    PUBLISHED = "published"
    AWAITING_REVIEW = "awaiting_review"
    CLEARED = "cleared"
    UNCHANGED = "unchanged"


def checked_about(text: str) -> str:
    """The about text as stored (empty clears it), or DomainError naming the field: the
    user's rule, applied to a moderator's edit too."""
    text = clean_text(text).strip()
    if len(text) > MAX_ABOUT:
        raise DomainError(str(_l("Use at most %(n)d characters.", n=MAX_ABOUT)), field="about")
    return text


def update_about(session: Session, user: User, text: str) -> AboutSaved:
    """Save the about text through moderation. Emptying it withdraws the text from review
    (or from view): there is nothing left for a moderator to approve."""
    text = checked_about(text)
    profile = profile_of(session, user)
    session.add(profile)
    if text == profile.about_source:
        return AboutSaved.UNCHANGED
    profile.about_source = text
    profile.about_html = render_markdown(text, allow_images=False)
    profile.about_visible = False
    session.flush()
    if not text:
        moderation.withdraw(session, ABOUT_KIND, profile.user_id, user)
        return AboutSaved.CLEARED
    result = moderation.submit(session, ABOUT_KIND, profile, user, text)
    return AboutSaved.PUBLISHED if result.published else AboutSaved.AWAITING_REVIEW


def about_state(session: Session, user: User) -> str | None:
    return moderation.item_state(session, ABOUT_KIND, user.id)


def about_flag_states(session: Session, viewer: User, person: User) -> dict[tuple[str, int], str]:
    """Whether ``viewer`` may flag ``person``'s profile text, or already did."""
    return moderation.flag_states(session, viewer, [(ABOUT_KIND, person.id)])


def record_profile_view(session: Session, viewer: User, person: User) -> None:
    record_activity(
        session, viewer, viewer.organization, "content.viewed", person, {"kind": "profile"}
    )


def trust_status(session: Session, user: User) -> moderation.TrustStatus:
    return moderation.trust_status(session, user)


def visible_user(session: Session, viewer: User, user_id: int) -> User:
    """Community profiles are visible to every signed-in member; deactivated ones are not."""
    person = session.get(User, user_id)
    if person is None or (not person.active and not viewer.is_staff):
        raise NotFound(str(_l("Not found.")))
    return person


# --- organization admin ---------------------------------------------------------------


def get_organization(session: Session, actor: User, org_id: int, action: Action) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound(str(_l("Not found.")))
    authorize(actor, action, org)
    return org


def invite(session: Session, actor: User, org: Organization, email: str, role: str) -> Invitation:
    authorize(actor, Action.MANAGE_MEMBERS, org)
    email = normalize_email(email)
    if role not in CUSTOMER_ROLES and not org.is_vendor:
        raise DomainError(str(_l("Choose a valid role.")), field="role")
    if find_user(session, email) is not None:
        raise Conflict(str(_l("An account with this email address already exists.")), field="email")
    token, digest = new_secret_token()
    invitation = Invitation(
        organization=org,
        email=email,
        role=role,
        token_digest=digest,
        invited_by_id=actor.id,
        expires_at=utcnow() + timedelta(days=current_app.config["INVITATION_DAYS"]),
    )
    session.add(invitation)
    session.flush()
    queue_mail(
        session,
        email,
        _l("%(name)s invited you to %(org)s on Cocreate", name=actor.display_name, org=org.name),
        "invitation",
        locale=actor.locale,
        inviter=actor,
        org=org,
        link=external_url("accounts.accept_invitation", token=token),
        days=current_app.config["INVITATION_DAYS"],
    )
    record_activity(session, actor, org, "org.invitation_sent", invitation, {"role": role})
    return invitation


def open_invitation(session: Session, token: str) -> Invitation:
    invitation = session.scalar(
        select(Invitation).where(Invitation.token_digest == token_digest(token))
    )
    if invitation is None or invitation.revoked_at is not None:
        raise InvalidToken(str(_l("This invitation is not valid. Ask your admin for a new one.")))
    if invitation.accepted_at is not None:
        raise InvalidToken(str(_l("This invitation has already been used. Sign in instead.")))
    if invitation.expires_at <= utcnow():
        raise InvalidToken(str(_l("This invitation has expired. Ask your admin for a new one.")))
    return invitation


def accept_invitation(
    session: Session, token: str, display_name: str, password: str, locale: str = "en"
) -> User:
    invitation = open_invitation(session, token)
    # The mailed link proves the address, so the account starts confirmed.
    user = create_user(
        session,
        invitation.organization,
        invitation.email,
        display_name,
        password,
        roles=(Role(invitation.role),),
        locale=locale,
        confirmed=True,
    )
    invitation.accepted_at = utcnow()
    record_activity(
        session, user, user.organization, "account.signed_up", user, {"via": "invitation"}
    )
    notify(
        session, user, "welcome", _l("Welcome to %(org)s on Cocreate!", org=user.organization.name)
    )
    return user


def revoke_invitation(session: Session, actor: User, org: Organization, invitation_id: int) -> None:
    authorize(actor, Action.MANAGE_MEMBERS, org)
    invitation = session.get(Invitation, invitation_id)
    if invitation is None or invitation.organization_id != org.id:
        raise NotFound(str(_l("Not found.")))
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()


def org_member(session: Session, actor: User, org: Organization, user_id: int) -> User:
    authorize(actor, Action.MANAGE_MEMBERS, org)
    member = session.get(User, user_id)
    if member is None or member.organization_id != org.id:
        raise NotFound(str(_l("Not found.")))
    return member


def set_member_active(
    session: Session, actor: User, org: Organization, user_id: int, active: bool
) -> User:
    member = org_member(session, actor, org, user_id)
    if member.id == actor.id:
        raise DomainError(str(_l("You cannot deactivate your own account here.")))
    if member.active != active:
        member.active = active
        verb = "org.member_reactivated" if active else "org.member_deactivated"
        record_activity(session, actor, org, verb, member)
    return member


def change_member_role(
    session: Session, actor: User, org: Organization, user_id: int, role: str
) -> User:
    member = org_member(session, actor, org, user_id)
    allowed = {str(r) for r in Role} if org.is_vendor else {str(r) for r in CUSTOMER_ROLES}
    if role not in allowed:
        raise DomainError(str(_l("Choose a valid role.")), field="role")
    if member.id == actor.id:
        raise DomainError(str(_l("You cannot change your own role.")), field="role")
    if {g.role for g in member.role_grants} != {role}:
        member.role_grants = [UserRole(role=role)]
        record_activity(session, actor, org, "org.role_changed", member, {"role": role})
        notify(
            session, member, "role_changed", _l("Your role in %(org)s was changed.", org=org.name)
        )
    return member


def members_query(org: Organization):  # noqa: ANN201 - a Select for paginate()
    return (
        select(User)
        .where(User.organization_id == org.id)
        .order_by(func.lower(User.display_name), User.id)
    )


def open_invitations(session: Session, org: Organization) -> list[Invitation]:
    return list(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.organization_id == org.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        )
    )


# --- personal access tokens ------------------------------------------------------------


def create_api_token(session: Session, user: User, name: str, scope: str) -> tuple[ApiToken, str]:
    name = " ".join(name.split())
    if not name or len(name) > 80:
        raise DomainError(str(_l("Give the token a name of at most 80 characters.")), field="name")
    if scope not in TOKEN_SCOPES:
        raise DomainError(str(_l("Choose read or write.")), field="scope")
    raw, digest = new_secret_token("cct_")
    token = ApiToken(user_id=user.id, name=name, scope=scope, token_digest=digest)
    session.add(token)
    session.flush()
    record_activity(session, user, user.organization, "api.token_created", token, {"scope": scope})
    return token, raw


def user_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.created_at.desc())
        )
    )


def revoke_api_token(session: Session, user: User, token_id: int) -> None:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(str(_l("Not found.")))
    token.revoked_at = token.revoked_at or utcnow()


def authenticate_token(session: Session, raw: str) -> ApiToken | None:
    token = session.scalar(select(ApiToken).where(ApiToken.token_digest == token_digest(raw)))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    token.last_used_at = utcnow()
    return token
