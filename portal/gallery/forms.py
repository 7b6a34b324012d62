"""Gallery forms: field shapes only; the rules live in the service and in ``uploads``."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from portal.core.web import Form
from portal.gallery.service import (
    CATEGORIES,
    INDUSTRIES,
    LICENSES,
    MAX_CHANGELOG,
    MAX_DESCRIPTION,
    MAX_REVIEW,
    TITLE_MAX,
    VISIBILITIES,
)


def _required() -> DataRequired:
    return DataRequired(message=_l("This field is required."))


def _choices(pairs: dict[str, object] | list[tuple[str, object]]) -> list[SelectChoice]:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [SelectChoice(value, label) for value, label in items]  # type: ignore[attr-defined]


def _file() -> FileField:
    return FileField(
        _l("File (.json manifest, .csv, .xlsx or .zip bundle)"),
        validators=[FileRequired(message=_l("Choose a file."))],
    )


class VersionFields(Form):
    version = StringField(_l("Version"), validators=[Length(max=60)])
    product_range = StringField(_l("Works with product versions"), validators=[Length(max=100)])
    changelog = TextAreaField(_l("Changelog"), validators=[Length(max=MAX_CHANGELOG)])


class ShareForm(VersionFields):
    title = StringField(_l("Title"), validators=[_required(), Length(max=TITLE_MAX)])
    description = TextAreaField(
        _l("Description (Markdown)"), validators=[Length(max=MAX_DESCRIPTION)]
    )
    category = SelectField(_l("Category"), choices=lambda: _choices(CATEGORIES))
    industry = SelectField(_l("Industry"), choices=lambda: _choices(INDUSTRIES))
    tags = StringField(_l("Tags"))
    license = SelectField(_l("License"), choices=lambda: _choices([(v, v) for v in LICENSES]))
    visibility = SelectField(_l("Who can see it"), choices=lambda: _choices(VISIBILITIES))
    file = _file()


class NewVersionForm(VersionFields):
    file = _file()


class RateForm(Form):
    stars = IntegerField(
        _l("Stars"),
        validators=[
            InputRequired(message=_l("Give 1 to 5 stars.")),
            NumberRange(min=1, max=5, message=_l("Give 1 to 5 stars.")),
        ],
    )


class ReviewForm(Form):
    body = TextAreaField(
        _l("Your review"),
        validators=[
            DataRequired(message=_l("Write a few words.")),
            Length(max=MAX_REVIEW, message=_l("Use at most %(max)d characters.")),
        ],
    )
