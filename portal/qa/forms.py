"""Q&A forms: field shapes only; the rules (lengths, tags, areas) live in the service."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length

from portal.core.web import Form, IdField
from portal.qa.service import MAX_BODY, MAX_COMMENT, MAX_REASON, PRODUCT_AREAS, TITLE_MAX


def _required() -> DataRequired:
    return DataRequired(message=_l("This field is required."))


def _area_choices() -> list[tuple[str, object]]:
    return [("", _l("Any product area")), *PRODUCT_AREAS.items()]


class QuestionForm(Form):
    title = StringField(
        _l("Title"),
        validators=[
            _required(),
            Length(max=TITLE_MAX, message=_l("Use at most %(max)d characters.")),
        ],
    )
    body = TextAreaField(
        _l("Details"),
        validators=[
            _required(),
            Length(max=MAX_BODY, message=_l("Use at most %(max)d characters.")),
        ],
    )
    tags = StringField(_l("Tags"))
    product_area = SelectField(_l("Product area"), choices=_area_choices, validate_choice=False)
    private = BooleanField(_l("Only my organization and the vendor's staff can see this"))
    comment = StringField(_l("Edit summary"))


class AnswerForm(Form):
    body = TextAreaField(
        _l("Your answer"),
        validators=[
            _required(),
            Length(max=MAX_BODY, message=_l("Use at most %(max)d characters.")),
        ],
    )
    comment = StringField(_l("Edit summary"))


class CommentForm(Form):
    body = TextAreaField(
        _l("Comment"),
        validators=[
            _required(),
            Length(max=MAX_COMMENT, message=_l("Use at most %(max)d characters.")),
        ],
    )


class CloseForm(Form):
    reason = StringField(
        _l("Reason"),
        validators=[
            _required(),
            Length(max=MAX_REASON, message=_l("Use at most %(max)d characters.")),
        ],
    )


class DuplicateForm(Form):
    target = IdField(
        _l("Number of the original question"),
        validators=[InputRequired(message=_l("Enter a question number."))],
    )
