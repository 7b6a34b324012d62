"""Helpers every HTML view uses: run a service for a submitted form, one commit, errors shown
beside their fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import render_template
from flask_wtf import FlaskForm

from portal.core.db import db
from portal.core.errors import DomainError


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


def attach_error(form: FlaskForm, error: DomainError) -> None:
    form.error_status = error.status_code
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = (
            [*field.errors, error.message] if isinstance(field.errors, list) else [error.message]
        )
    else:
        form.form_errors.append(error.message)


def render_form(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """Render a page with a form; a rejected submission answers 4xx, not 200."""
    status = 200
    if form.errors or form.form_errors:
        status = getattr(form, "error_status", 422)
        if status < 400:
            status = 422
    return render_template(template, form=form, **context), status
