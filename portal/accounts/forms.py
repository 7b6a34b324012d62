from __future__ import annotations

from zoneinfo import available_timezones

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from portal.core.i18n import LOCALES
from portal.core.identity import CUSTOMER_ROLES, Role
from portal.core.security import PASSWORD_MAX_LENGTH, password_problem
from portal.core.web import Form

ROLE_LABELS = {
    Role.MEMBER: _l("Member"),
    Role.ORG_ADMIN: _l("Organization admin"),
    Role.MODERATOR: _l("Moderator"),
    Role.CSM: _l("Customer success manager"),
    Role.PRODUCT_MANAGER: _l("Product manager"),
    Role.VENDOR_ADMIN: _l("Vendor admin"),
}


def _required() -> DataRequired:
    return DataRequired(message=_l("This field is required."))


def _email_field() -> EmailField:
    return EmailField(
        _l("Email"),
        validators=[
            _required(),
            Length(max=254, message=_l("Use at most %(max)d characters.")),
            Email(message=_l("Enter a valid email address."), check_deliverability=False),
        ],
    )


class NewPassword:
    """Length, common-password and email checks, shared by every form that sets one."""

    def __call__(self, form: FlaskForm, field: PasswordField) -> None:
        email = getattr(form, "email", None)
        problem = password_problem(field.data or "", email.data if email is not None else "")
        if problem:
            raise ValidationError(problem)


def _new_password_fields(label: object = None) -> tuple[PasswordField, PasswordField]:
    password = PasswordField(label or _l("Password"), validators=[_required(), NewPassword()])
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[_required(), EqualTo("password", message=_l("The passwords do not match."))],
    )
    return password, confirm


def _name_field() -> StringField:
    return StringField(
        _l("Your name"),
        validators=[_required(), Length(max=80, message=_l("Use at most %(max)d characters."))],
    )


class SignUpForm(Form):
    email = _email_field()
    display_name = _name_field()
    password, confirm = _new_password_fields()


class AcceptInvitationForm(Form):
    display_name = _name_field()
    password, confirm = _new_password_fields()


class SignInForm(Form):
    email = _email_field()
    password = PasswordField(
        _l("Password"), validators=[_required(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    remember = BooleanField(_l("Keep me signed in on this device"))
    next = HiddenField()


class ForgotPasswordForm(Form):
    email = _email_field()


class ResetPasswordForm(Form):
    password, confirm = _new_password_fields(_l("New password"))


def choices(pairs: object) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]  # type: ignore[attr-defined]


def _timezone_choices() -> list[SelectChoice]:
    return choices((name, name) for name in sorted(available_timezones()))


class ProfileForm(Form):
    display_name = _name_field()
    locale = SelectField(_l("Language"), choices=choices(LOCALES.items()))
    timezone = SelectField(_l("Time zone"), choices=_timezone_choices())


class ConsentForm(Form):
    marketing_email = BooleanField(_l("Send me product news and offers by email"))
    nps_survey = BooleanField(_l("Ask me now and then how likely I am to recommend the product"))


class ChangePasswordForm(Form):
    current_password = PasswordField(
        _l("Current password"), validators=[_required(), Length(max=PASSWORD_MAX_LENGTH)]
    )
    password, confirm = _new_password_fields(_l("New password"))


class TokenForm(Form):
    name = StringField(
        _l("Token name"),
        validators=[_required(), Length(max=80, message=_l("Use at most %(max)d characters."))],
    )
    scope = SelectField(
        _l("Access"), choices=choices([("read", _l("Read")), ("write", _l("Read and write"))])
    )


def role_choices(vendor: bool) -> list[tuple[str, object]]:
    roles = list(Role) if vendor else [r for r in Role if r in CUSTOMER_ROLES]
    return [(str(role), ROLE_LABELS[role]) for role in roles]


class InviteForm(Form):
    email = _email_field()
    role = SelectField(_l("Role"))


class AboutForm(Form):
    about = TextAreaField(
        _l("About you"),
        validators=[Length(max=5000, message=_l("Use at most %(max)d characters."))],
    )
