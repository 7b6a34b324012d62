from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from moderation import service as moderation
from moderation.labels import TRUST_FACT_LABELS
from portal.accounts import forms, service
from portal.core import consent, mail
from portal.core.activity import record_activity
from portal.core.db import db
from portal.core.errors import InvalidToken
from portal.core.extensions import limiter
from portal.core.i18n import current_locale
from portal.core.pagination import clamp_page_args, paginate
from portal.core.permissions import Action
from portal.core.urls import is_safe_next
from portal.core.web import perform, render_form, submit
from portal.qa import service as qa_service

bp = Blueprint("accounts", __name__)

# Per IP and per account (the address typed), in line with GitLab and Discourse defaults.
IP_LIMIT = "10 per minute"
ACCOUNT_LIMIT = "10 per 5 minutes"


def _email_key() -> str:
    return "account:" + (request.form.get("email") or "").strip().lower()[:254]


def _post_limits(view: Any) -> Any:
    view = limiter.limit(IP_LIMIT, methods=["POST"])(view)
    return limiter.limit(ACCOUNT_LIMIT, methods=["POST"], key_func=_email_key)(view)


@bp.route("/sign-up", methods=["GET", "POST"])
@_post_limits
def sign_up() -> Any:
    form = forms.SignUpForm()
    done = submit(
        form,
        lambda: service.sign_up(
            db.session,
            form.email.data,
            form.display_name.data,
            form.password.data,
            current_locale(),
        ),
    )
    if done:
        return render_template("accounts/check_email.html", email=form.email.data.strip())
    return render_form("accounts/sign_up.html", form)


@bp.route("/confirm/<token>")
def confirm_email(token: str) -> Any:
    try:
        service.confirm_email(db.session, token)
        db.session.commit()
    except InvalidToken as error:
        db.session.rollback()
        return render_template("accounts/token_problem.html", message=error.message), 400
    flash(_("Thank you, your email address is confirmed."), "success")
    return redirect(url_for("main.home" if current_user.is_authenticated else "accounts.sign_in"))


@bp.route("/sign-in", methods=["GET", "POST"])
@_post_limits
def sign_in() -> Any:
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("main.home"))
    form = forms.SignInForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = service.authenticate(db.session, form.email.data, form.password.data)
        if user is None:
            db.session.rollback()
            # One message whether the address exists or not.
            form.form_errors.append(_("That email and password do not match an active account."))
            form.error_status = 401
        else:
            db.session.commit()
            login_user(user, remember=form.remember.data)
            target = form.next.data if is_safe_next(form.next.data) else url_for("main.home")
            if user.email_confirmed_at is None:
                flash(_("Please confirm your email address: we sent you a link."), "warning")
            return redirect(target)
    return render_form("accounts/sign_in.html", form)


@bp.route("/sign-out", methods=["POST"])
@login_required
def sign_out() -> Response:
    record_activity(
        db.session, current_user, current_user.organization, "account.signed_out", current_user
    )
    db.session.commit()
    logout_user()
    flash(_("You are signed out."), "info")
    return redirect(url_for("accounts.sign_in"))


@bp.route("/forgot-password", methods=["GET", "POST"])
@_post_limits
def forgot_password() -> Any:
    form = forms.ForgotPasswordForm()
    if submit(form, lambda: service.request_password_reset(db.session, form.email.data)):
        # The same answer for every address: no account enumeration.
        return render_template(
            "accounts/check_email.html", email=form.email.data.strip(), reset=True
        )
    return render_form("accounts/forgot_password.html", form)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@limiter.limit(IP_LIMIT, methods=["POST"])
def reset_password(token: str) -> Any:
    try:
        user = service.user_for_reset_token(db.session, token)
    except InvalidToken as error:
        return render_template("accounts/token_problem.html", message=error.message), 400
    form = forms.ResetPasswordForm()
    form.email = None  # type: ignore[assignment]
    if submit(form, lambda: service.reset_password(db.session, token, form.password.data)):
        flash(_("Your password was changed. Sign in with the new one."), "success")
        return redirect(url_for("accounts.sign_in"))
    return render_form("accounts/reset_password.html", form, user=user)


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@limiter.limit(IP_LIMIT, methods=["POST"])
def accept_invitation(token: str) -> Any:
    try:
        invitation = service.open_invitation(db.session, token)
    except InvalidToken as error:
        return render_template("accounts/token_problem.html", message=error.message), 400
    form = forms.AcceptInvitationForm()
    created: list[Any] = []

    def accept() -> None:
        created.append(
            service.accept_invitation(
                db.session, token, form.display_name.data, form.password.data, current_locale()
            )
        )

    if submit(form, accept):
        login_user(created[0])
        flash(_("Welcome to %(org)s!", org=invitation.organization.name), "success")
        return redirect(url_for("main.home"))
    return render_form("accounts/accept_invitation.html", form, invitation=invitation)


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile() -> Any:
    user = current_user._get_current_object()
    form = forms.ProfileForm(obj=user if request.method == "GET" else None)
    if submit(
        form,
        lambda: service.update_profile(
            db.session, user, form.display_name.data, form.locale.data, form.timezone.data
        ),
    ):
        flash(_("Your profile was saved."), "success")
        return redirect(url_for("accounts.profile"))
    return _render_profile(form=form)


def _render_profile(new_token: str | None = None, **forms_given: Any) -> Any:
    profile = service.profile_of(db.session, current_user)
    page_forms = {
        "form": forms.ProfileForm(obj=current_user._get_current_object()),
        "about_form": forms.AboutForm(about=profile.about_source),
        "password_form": forms.ChangePasswordForm(),
        "token_form": forms.TokenForm(),
        "consent_form": _consent_form(),
        **forms_given,
    }
    failing = next((f for f in forms_given.values() if f.errors or f.form_errors), None)
    status = getattr(failing, "error_status", 422) if failing is not None else 200
    tokens = service.user_tokens(db.session, current_user)
    trust_before = current_user.trust_level
    response = (
        render_template(
            "accounts/profile.html",
            tokens=tokens,
            new_token=new_token,
            profile=profile,
            about_state=service.about_state(db.session, current_user),
            trust=service.trust_status(db.session, current_user),
            reputation=qa_service.reputation_of(db.session, current_user.id),
            trust_labels=TRUST_FACT_LABELS,
            mail_topics=mail.topics(),
            followed_tags=qa_service.followed_tags(db.session, current_user),
            mail_off=mail.topics_off(db.session, current_user.id),
            **page_forms,
        ),
        status,
    )
    if current_user.trust_level != trust_before:
        db.session.commit()  # promoted while looking
    return response


def _consent_form() -> forms.ConsentForm:
    user_id = current_user.id
    return forms.ConsentForm(
        formdata=None,
        marketing_email=consent.effective(db.session, user_id, consent.MARKETING_EMAIL),
        nps_survey=consent.effective(db.session, user_id, consent.NPS_SURVEY),
    )


@bp.route("/profile/mail", methods=["POST"])
@login_required
def update_mail() -> Any:
    """The email choices: each checked topic stays on, every other one is turned off."""
    error = perform(
        lambda: mail.choose_topics(db.session, current_user.id, request.form.getlist("topic")),
        _("Your email choices were saved."),
    )
    if error is not None:  # an unknown topic: the page again, with the message
        body, _status = _render_profile()
        return body, error.status_code
    return redirect(url_for("accounts.profile", _anchor="mail-heading"))


@bp.route("/profile/consent", methods=["POST"])
@login_required
def update_consent() -> Any:
    form = forms.ConsentForm()
    user_id = current_user.id

    def save() -> None:
        for purpose in consent.PURPOSES:
            consent.choose(db.session, user_id, purpose, form[purpose].data, "profile")

    if submit(form, save):
        session.pop("cs_nps", None)  # the survey card's remembered answer (cs_metrics.views)
        flash(_("Your privacy choices were saved."), "success")
        return redirect(url_for("accounts.profile"))
    return _render_profile(consent_form=form)


ABOUT_MESSAGES = {
    service.AboutSaved.PUBLISHED: (_l("Your profile text is published."), "success"),
    service.AboutSaved.AWAITING_REVIEW: (
        _l("Your profile text is awaiting review by a moderator."),
        "info",
    ),
    service.AboutSaved.CLEARED: (_l("Your profile text was removed."), "success"),
    service.AboutSaved.UNCHANGED: (_l("Your profile text is unchanged."), "info"),
}


@bp.route("/profile/about", methods=["POST"])
@login_required
def update_about() -> Any:
    form = forms.AboutForm()
    saved: list[service.AboutSaved] = []
    if submit(
        form,
        lambda: saved.append(
            service.update_about(
                db.session, current_user._get_current_object(), form.about.data or ""
            )
        ),
    ):
        message, category = ABOUT_MESSAGES[saved[0]]
        flash(str(message), category)
        return redirect(url_for("accounts.profile"))
    return _render_profile(about_form=form)


@bp.route("/users/<int:user_id>")
@login_required
def public_profile(user_id: int) -> Any:
    person = service.visible_user(db.session, current_user, user_id)
    if person.id != current_user.id:
        service.record_profile_view(db.session, current_user, person)
        db.session.commit()
    return render_template(
        "accounts/public_profile.html",
        person=person,
        profile=service.profile_of(db.session, person),
        about_state=service.about_state(db.session, person),
        flags=service.about_flag_states(db.session, current_user, person),
        reputation=qa_service.reputation_of(db.session, person.id),
        posts=moderation.recent_posts(
            db.session, person, current_user, exclude_kinds=[service.ABOUT_KIND]
        ),
    )


@bp.route("/profile/password", methods=["POST"])
@login_required
@limiter.limit(IP_LIMIT)
def change_password() -> Any:
    form = forms.ChangePasswordForm()
    form.email = None  # type: ignore[assignment]
    if submit(
        form,
        lambda: service.change_password(
            db.session, current_user, form.current_password.data, form.password.data
        ),
    ):
        flash(_("Your password was changed."), "success")
        return redirect(url_for("accounts.profile"))
    return _render_profile(password_form=form)


@bp.route("/profile/tokens", methods=["POST"])
@login_required
def create_token() -> Any:
    form = forms.TokenForm()
    created: list[str] = []

    def create() -> None:
        created.append(
            service.create_api_token(db.session, current_user, form.name.data, form.scope.data)[1]
        )

    if submit(form, create):
        return _render_profile(token_form=forms.TokenForm(formdata=None), new_token=created[0])
    return _render_profile(token_form=form)


@bp.route("/profile/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int) -> Response:
    service.revoke_api_token(db.session, current_user, token_id)
    db.session.commit()
    flash(_("The token was revoked."), "info")
    return redirect(url_for("accounts.profile"))


# --- organization admin ---------------------------------------------------------------


def _admin_org(org_id: int) -> Any:
    return service.get_organization(db.session, current_user, org_id, Action.MANAGE_MEMBERS)


@bp.route("/orgs/<int:org_id>/members", methods=["GET", "POST"])
@login_required
def members(org_id: int) -> Any:
    org = _admin_org(org_id)
    invite_form = forms.InviteForm()
    invite_form.role.choices = forms.choices(forms.role_choices(org.is_vendor))
    if submit(
        invite_form,
        lambda: service.invite(
            db.session, current_user, org, invite_form.email.data, invite_form.role.data
        ),
    ):
        flash(_("Invitation sent to %(email)s.", email=invite_form.email.data.strip()), "success")
        return redirect(url_for("accounts.members", org_id=org.id))
    page, per_page = clamp_page_args(request.args.get("page", 1))
    member_page = paginate(db.session, service.members_query(org), page, per_page)
    return render_form(
        "accounts/members.html",
        invite_form,
        org=org,
        members=member_page,
        invitations=service.open_invitations(db.session, org),
        role_choices=forms.role_choices(org.is_vendor),
        role_labels=forms.ROLE_LABELS,
    )


def _member_action(org_id: int, action: Any, message: str) -> Response:
    org = _admin_org(org_id)
    perform(lambda: action(org), message)
    return redirect(url_for("accounts.members", org_id=org.id))


@bp.route("/orgs/<int:org_id>/members/<int:user_id>/active", methods=["POST"])
@login_required
def set_active(org_id: int, user_id: int) -> Response:
    active = request.form.get("active") == "1"
    return _member_action(
        org_id,
        lambda org: service.set_member_active(db.session, current_user, org, user_id, active),
        _("The member was reactivated.") if active else _("The member was deactivated."),
    )


@bp.route("/orgs/<int:org_id>/members/<int:user_id>/role", methods=["POST"])
@login_required
def change_role(org_id: int, user_id: int) -> Response:
    role = request.form.get("role", "")
    return _member_action(
        org_id,
        lambda org: service.change_member_role(db.session, current_user, org, user_id, role),
        _("The role was changed."),
    )


@bp.route("/orgs/<int:org_id>/invitations/<int:invitation_id>/revoke", methods=["POST"])
@login_required
def revoke_invitation(org_id: int, invitation_id: int) -> Response:
    return _member_action(
        org_id,
        lambda org: service.revoke_invitation(db.session, current_user, org, invitation_id),
        _("The invitation was revoked."),
    )
