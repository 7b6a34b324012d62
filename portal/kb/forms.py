"""Forms for the knowledge base: an article, a category, feedback, and the KB settings."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.core.web import Form, chosen_id


def choices(pairs: Any) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]  # type: ignore[attr-defined]


LANGUAGE_CHOICES = choices([("en", _l("English")), ("zh_CN", _l("Chinese (Simplified)"))])


def _required() -> DataRequired:
    return DataRequired(message=_l("This field is required."))


class ArticleForm(Form):
    title = StringField(
        _l("Title"),
        validators=[_required(), Length(max=200, message=_l("Use at most %(max)d characters."))],
    )
    body = TextAreaField(_l("Article (Markdown)"), validators=[_required()])
    language = SelectField(_l("Language"), choices=LANGUAGE_CHOICES, default="en")
    category_id = SelectField(_l("Category"), coerce=chosen_id, validate_choice=False)
    tags = StringField(_l("Tags"), validators=[Optional()])
    published = BooleanField(_l("Published"), default=True)


class CategoryForm(Form):
    slug = StringField(_l("Address (slug)"), validators=[_required()])
    name = StringField(_l("Name (English)"), validators=[_required()])
    name_zh = StringField(_l("Name (Chinese)"), validators=[Optional()])


class RenameCategoryForm(Form):
    name = StringField(_l("Name (English)"), validators=[_required()])
    name_zh = StringField(_l("Name (Chinese)"), validators=[Optional()])


class FeedbackForm(Form):
    helpful = SelectField(
        _l("Was this helpful?"), choices=choices([("yes", _l("Yes")), ("no", _l("No"))])
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        validators=[Optional(), Length(max=2000, message=_l("Use at most %(max)d characters."))],
    )


class SettingsForm(Form):
    auto_propose = BooleanField(_l("Propose helpful accepted answers as articles"))
    min_helpful = IntegerField(
        _l("Helpful marks needed"),
        default=3,
        validators=[
            DataRequired(message=_l("Enter a number from 1 to 1000.")),
            NumberRange(min=1, max=1000, message=_l("Enter a number from 1 to 1000.")),
        ],
    )
