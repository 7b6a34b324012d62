"""Forms of the privacy pages: what each asks before something cannot be undone."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from portal.core import personal_data
from portal.core.web import Form


def _content_field() -> RadioField:
    return RadioField(
        _l("Posts, answers, comments, ideas and templates"),
        choices=[
            SelectChoice(personal_data.KEEP, _l("Keep them under the name “Deleted user”")),  # type: ignore[attr-defined]
            SelectChoice(personal_data.REMOVE, _l("Remove them")),  # type: ignore[attr-defined]
        ],
        default=personal_data.KEEP,
        validators=[DataRequired(message=_l("Choose what happens to the content."))],
    )


class EraseSelfForm(Form):
    password = PasswordField(
        _l("Your password"),
        validators=[DataRequired(message=_l("This field is required.")), Length(max=1024)],
    )
    content = _content_field()


class EraseMemberForm(Form):
    content = _content_field()


class DeleteOrganizationForm(Form):
    confirmation = StringField(
        _l("Type the organization's name to confirm"),
        validators=[DataRequired(message=_l("This field is required.")), Length(max=200)],
    )
