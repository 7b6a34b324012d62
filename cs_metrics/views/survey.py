"""CS pages: the in-app NPS survey, the one CS endpoint a customer uses (see the package
docstring).

``nps_survey_due`` is asked for on every page, so it is answered from the Flask session most of
the time: once checked, a customer who is not due is remembered as "quiet" until they could
next be due (re-checked at least every ``QUIET_RECHECK`` in case the settings change), and a
customer who is due keeps seeing the card for ``SHOW_WINDOW`` on every page. The first showing
is written after the response (it counts toward the 90 days even if ignored). Staff and
anonymous visitors cost nothing at all.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import abort, flash, g, has_request_context, jsonify, redirect, request, session, url_for
from flask import current_app as app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response
from wtforms import HiddenField, IntegerField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from cs_metrics import surveys
from cs_metrics.views import bp
from portal.core.db import db, utcnow
from portal.core.errors import DomainError
from portal.core.identity import OrgKind
from portal.core.urls import is_safe_next
from portal.core.web import Form

MEMO_KEY = "cs_nps"
SHOW_WINDOW = timedelta(hours=24)
QUIET_RECHECK = timedelta(hours=12)


class SurveyForm(Form):
    score = IntegerField(
        _l("How likely are you to recommend us to a friend or colleague?"),
        validators=[
            InputRequired(message=_l("Choose a score from 0 to 10.")),
            NumberRange(min=0, max=10, message=_l("Choose a score from 0 to 10.")),
        ],
    )
    comment = TextAreaField(
        _l("What is the main reason for your score?"),
        validators=[Optional(), Length(max=surveys.MAX_COMMENT)],
    )
    next = HiddenField()


class DismissForm(Form):
    next = HiddenField()


# --- the template variable -------------------------------------------------------------------


def _remember(user_id: int, show: bool, until: float) -> None:
    session[MEMO_KEY] = [user_id, show, int(until)]


def _survey_due_now() -> bool:
    if not has_request_context() or not current_user.is_authenticated:
        return False
    user = current_user
    # Only customer users; their organization is loaded with the user, so this is free.
    if not user.is_active or user.organization.kind != OrgKind.CUSTOMER:
        return False
    now = time.time()
    memo = session.get(MEMO_KEY)
    if isinstance(memo, list) and len(memo) == 3 and memo[0] == user.id and now < memo[2]:
        return bool(memo[1])
    moment = utcnow()
    if moment - user.created_at < surveys.FIRST_DAY:  # never asked on day one: no query
        _remember(user.id, False, (user.created_at + surveys.FIRST_DAY).timestamp())
        return False
    try:
        due, upcoming = surveys.survey_status(db.session, user, moment)
    except SQLAlchemyError:  # never let the survey break a page
        db.session.rollback()
        app.logger.warning("NPS survey check failed", exc_info=True)
        return False
    if due:
        _remember(user.id, True, now + SHOW_WINDOW.total_seconds())
        g.cs_nps_first_shown = True
        return True
    quiet = QUIET_RECHECK.total_seconds()
    if upcoming is not None:
        quiet = min(quiet, max(60.0, (upcoming - moment).total_seconds()))
    _remember(user.id, False, now + quiet)
    return False


@bp.app_context_processor
def _nps_survey_context() -> dict[str, Any]:
    return {"nps_survey_due": _survey_due_now()}


@bp.after_app_request
def _record_first_showing(response: Response) -> Response:
    """The survey was on this page for the first time: count it as shown (after the view's
    own commit, so a page that writes nothing still records it)."""
    if not g.pop("cs_nps_first_shown", False):
        return response
    if request.method != "GET" or response.status_code != 200 or response.mimetype != "text/html":
        session.pop(MEMO_KEY, None)  # not really shown: check again on the next page
        return response
    try:
        surveys.mark_shown(db.session, current_user._get_current_object())
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        app.logger.warning("could not record the NPS survey showing", exc_info=True)
    return response


# --- answering -------------------------------------------------------------------------------


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def _back(form: Form) -> Response:
    target = form.next.data or request.referrer or ""
    if target.startswith(request.host_url):
        target = "/" + target[len(request.host_url) :]
    return redirect(target if is_safe_next(target) else url_for("main.home"))


def _error(form: Form, status: int, code: str, message: str, field: str | None) -> Any:
    if _wants_json():
        body = {
            "error": {
                "code": code,
                "message": message,
                "fields": {field: [message]} if field else {},
            }
        }
        return jsonify(body), status
    if status in (401, 403, 404):
        abort(status)
    flash(message, "danger")
    return _back(form)


def _form_error(form: Form) -> Any:
    field, messages = next(iter(form.errors.items()), ("score", [_("Check your answer.")]))
    return _error(
        form, 422 if field != "csrf_token" else 400, "validation_error", str(messages[0]), field
    )


def _quiet_after_answer() -> None:
    _remember(current_user.id, False, time.time() + QUIET_RECHECK.total_seconds())


@bp.route("/survey", methods=["POST"])
@login_required
def survey_answer() -> Any:
    form = SurveyForm()
    if not form.validate_on_submit():
        return _form_error(form)
    try:
        response = surveys.record_answer(
            db.session, current_user._get_current_object(), form.score.data, form.comment.data
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        if error.status_code == 409:
            _quiet_after_answer()
        return _error(form, error.status_code, error.code, error.message, error.field)
    _quiet_after_answer()
    message = _("Thank you for your feedback.")
    if _wants_json():
        return jsonify({"status": "answered", "id": response.id, "message": message})
    flash(message, "success")
    return _back(form)


@bp.route("/survey/dismiss", methods=["POST"])
@login_required
def survey_dismiss() -> Any:
    form = DismissForm()
    if not form.validate_on_submit():
        return _form_error(form)
    try:
        surveys.dismiss(db.session, current_user._get_current_object())
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _error(form, error.status_code, error.code, error.message, error.field)
    _quiet_after_answer()
    if _wants_json():
        return jsonify({"status": "dismissed"})
    return _back(form)
