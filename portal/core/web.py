"""Helpers every HTML view uses: run a service for a submitted form, one commit, errors shown
beside their fields."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from babel.support import Translations
from flask import Request, abort, current_app, flash, g, render_template
from flask_wtf import FlaskForm
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.datastructures.structures import iter_multi_items
from werkzeug.routing import IntegerConverter, UnicodeConverter
from wtforms import IntegerField
from wtforms.i18n import messages_path

from portal.core.api import ID_MAX
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.i18n import current_locale


@lru_cache(maxsize=8)
def _wtforms_translations(locale: str) -> Translations:
    return Translations.load(messages_path(), [locale], domain="wtforms")


class Form(FlaskForm):
    """Every form's base: WTForms' own messages in the user's language, the catalog read once
    per process (Flask-WTF re-reads it from disk on every request)."""

    class Meta(FlaskForm.Meta):
        def get_translations(self, form: FlaskForm) -> Translations:
            return _wtforms_translations(current_locale())


def submit(form: FlaskForm, action: Callable[[], Any]) -> bool:
    """Validate ``form``, run ``action`` and commit; on a DomainError roll back and attach it."""
    if not form.validate_on_submit():
        return False
    try:
        action()
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        attach_error(form, error)
        return False
    return True


def perform(
    action: Callable[[], Any],
    success: str | Callable[[Any], str],
    failure: str = "danger",
) -> DomainError | None:
    """Run a service call from a button (no form to re-show), commit, and say how it went:
    ``success`` is the message, or makes it from what the call returned (a vote taken back
    says so).

    A DomainError is rolled back and flashed (a conflict as a warning); one that means
    "not found" answers 404, so other organizations' ids reveal nothing.
    """
    try:
        result = action()
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        if error.status_code == 404:
            abort(404)
        flash(error.message, "warning" if error.status_code == 409 else failure)
        return error
    flash(success(result) if callable(success) else success, "success")
    return None


T = TypeVar("T")


def best_effort(write: Callable[[], T], what: str) -> T | None:
    """Run and commit a page view's bookkeeping write (a read counted, a search logged):
    the page only reads, so it must not fail because this write lost a lock race (SQLite
    allows one writer at a time) or the database was briefly away; the write is skipped and
    logged instead."""
    try:
        result = write()
        db.session.commit()
    except OperationalError as error:
        db.session.rollback()
        current_app.logger.info("%s skipped: database busy (%s)", what, error.orig)
        return None
    return result


def attach_error(form: FlaskForm, error: DomainError) -> None:
    form.error_status = error.status_code
    remember_retry_after(error)
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = (
            [*field.errors, error.message] if isinstance(field.errors, list) else [error.message]
        )
    else:
        form.form_errors.append(error.message)


def remember_retry_after(error: DomainError) -> None:
    """A limit's wait, for the Retry-After header the app adds to the 429 response."""
    if getattr(error, "retry_after", None):
        g.retry_after = error.retry_after


def render_form(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """Render a page with a form; a rejected submission answers 4xx, not 200."""
    status = 200
    if form.errors or form.form_errors:
        status = getattr(form, "error_status", 422)
        if status < 400:
            status = 422
    return render_template(template, form=form, **context), status


def id_arg(value: object) -> int | None:
    """An id from a query string (``?csm=12``) or a form (a select's ``coerce``): None when
    absent or not a number (no filter, nothing chosen); a number no row can have (0, or past
    what the database holds) becomes 0, which matches nothing, instead of an overflow inside
    the query (500)."""
    value = str(value).strip() if value is not None else ""
    if not value.isdigit():
        return None
    if len(value) > len(str(ID_MAX)):  # also keeps int() clear of its digit limit
        return 0
    number = int(value)
    return number if number <= ID_MAX else 0


def chosen_id(value: object) -> int | None:
    """A select's ``coerce`` for an optional row (a category, an account): None when nothing
    was chosen; a value no row has (-1 for text, 0 past the database's range) when tampered
    with, so the service answers "no such ..." for the field instead of failing."""
    if value in (None, "", "None"):
        return None
    number = id_arg(value)
    return -1 if number is None else number


class IdField(IntegerField):
    """A number that names a row (merge into idea 12): past what the database holds it is -1,
    which no row has (and which a required field still counts as given), so the service
    answers "not found" as for any other wrong number, instead of an overflow in the query."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        if self.data is not None and not -ID_MAX <= self.data <= ID_MAX:
            self.data = -1


class _Parameters(ImmutableMultiDict[str, Any]):
    """Query-string and form values without NUL: PostgreSQL refuses a NUL in text, so one in
    any parameter (a tag filter, a token's name) was a 500 wherever a view handed the value
    to a query before cleaning it. No browser sends one; files are kept as sent."""

    def __init__(self, mapping: Any = None) -> None:
        if mapping is not None:
            mapping = [
                (key, value.replace("\x00", "") if isinstance(value, str) else value)
                for key, value in iter_multi_items(mapping)
            ]
        super().__init__(mapping)


class TextConverter(UnicodeConverter):
    """``<name>`` in every route (a tag, a slug, a token): a segment holding a NUL matches no
    route (404), as no row can have one (PostgreSQL refuses NUL in text)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]", 1)


class PortalRequest(Request):
    parameter_storage_class = _Parameters


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: an id past what the database holds is simply not found
    (404), instead of an overflow inside the query (500)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's
        kwargs.setdefault("max", ID_MAX)
        super().__init__(map, *args, **kwargs)
