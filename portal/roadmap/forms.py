"""Roadmap forms: field shapes only; the rules live in the service."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.core.web import Form, IdField
from portal.roadmap.service import (
    IMPORTANCE_LABELS,
    MAX_BODY,
    MAX_COMMENT,
    MAX_RESPONSE,
    PRODUCT_AREAS,
    STATUSES,
    TITLE_MAX,
)


def _required() -> DataRequired:
    return DataRequired(message=_l("This field is required."))


def _area_choices() -> list[tuple[str, object]]:
    return [("", _l("Any product area")), *PRODUCT_AREAS.items()]


def _importance_choices() -> list[tuple[str, object]]:
    return [(str(k), v) for k, v in IMPORTANCE_LABELS.items()]


class IdeaForm(Form):
    title = StringField(
        _l("Title"),
        validators=[
            _required(),
            Length(max=TITLE_MAX, message=_l("Use at most %(max)d characters.")),
        ],
    )
    description = TextAreaField(
        _l("Describe the problem and what would help"),
        validators=[
            _required(),
            Length(max=MAX_BODY, message=_l("Use at most %(max)d characters.")),
        ],
    )
    product_area = SelectField(_l("Product area"), choices=_area_choices, validate_choice=False)
    tags = StringField(_l("Tags"))


class VoteForm(Form):
    importance = SelectField(
        _l("Importance"), choices=_importance_choices, default="2", validate_choice=False
    )
    on_behalf_of = SelectField(
        _l("On behalf of a customer contact"), choices=[], validate_choice=False
    )


class CommentForm(Form):
    body = TextAreaField(
        _l("Comment"),
        validators=[
            _required(),
            Length(max=MAX_COMMENT, message=_l("Use at most %(max)d characters.")),
        ],
    )


class StatusForm(Form):
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    response = TextAreaField(
        _l("Public response"),
        validators=[Length(max=MAX_RESPONSE, message=_l("Use at most %(max)d characters."))],
    )
    release_notes = TextAreaField(_l("Release notes (when shipped)"))


class MergeForm(Form):
    target_id = IdField(_l("Merge into idea number"), validators=[_required()])


class LabelsForm(Form):
    budget = IntegerField(_l("Vote budget per user (0: no limit)"), validators=[Optional()])
    statuses = HiddenField()


def status_choices(labels: dict) -> list[tuple[str, str]]:
    return [(str(s), labels[str(s)].label) for s in STATUSES if s != "duplicate"]
