"""CS pages: the worklist -- tasks, referrals, improvement items (see the package docstring).

Reading needs ``VIEW_CS`` (product managers read), every POST ``MANAGE_CS``; the services
apply own-book scoping, so an account outside the book answers 404. Every table exports to CSV
with the same filters (``cs_metrics.export``).
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, StopValidation

from cs_metrics import worklist
from cs_metrics.access import require_cs
from cs_metrics.export import csv_response
from cs_metrics.models import (
    AccountProfile,
    CsSetting,
    CsTask,
    ImprovementItem,
    Referral,
    ReferralStatus,
    TaskKind,
    TaskStatus,
)
from cs_metrics.views import bp, nav_item
from cs_metrics.views.labels import DEPARTMENTS, IMPROVEMENT_STATUSES, task_label
from portal.core.db import db, utcnow
from portal.core.identity import Organization, Role, User
from portal.core.pagecache import ChangeClearedCache
from portal.core.pagination import clamp_page_args, paginate
from portal.core.permissions import Action, can
from portal.core.urls import is_safe_next
from portal.core.web import Form, chosen_id, id_arg, perform, render_form, submit

nav_item("cs.tasks", _l("Tasks"))
nav_item("cs.improvements", _l("Improvements"))
nav_item("cs.referrals", _l("Referrals"))

PER_PAGE = 50

TASK_KINDS = {
    TaskKind.CLOSE_THE_LOOP: _l("Close the loop"),
    TaskKind.REFERRAL_ASK: _l("Referral ask"),
    TaskKind.ALERT: _l("Alert"),
    TaskKind.MANUAL: _l("Task"),
}
TASK_STATUSES = {
    TaskStatus.OPEN: _l("Open"),
    TaskStatus.DONE: _l("Done"),
    TaskStatus.CANCELLED: _l("Cancelled"),
}
TASK_STATES = {
    "open": _l("Open"),
    "overdue": _l("Overdue"),
    "done": _l("Done"),
    "all": _l("All"),
}
TASK_SCOPES = {"mine": _l("Mine"), "book": _l("My book")}
REFERRAL_STATUSES = {
    ReferralStatus.ASKED: _l("Asked"),
    ReferralStatus.RECEIVED: _l("Received"),
    ReferralStatus.CONVERTED: _l("Converted"),
    ReferralStatus.DECLINED: _l("Declined"),
}


def _choices(pairs: Any) -> list[SelectChoice]:
    return [SelectChoice(str(value), label) for value, label in pairs]  # type: ignore[attr-defined]


def _required() -> DataRequired:
    return DataRequired(message=_l("This field is required."))


def _max(n: int) -> Length:
    return Length(max=n, message=_l("Use at most %(max)d characters."))


def _account_chosen(form: Form, field: Any) -> None:
    """No account chosen is the form's error, not "no such account" (404)."""
    if field.data is None:
        raise StopValidation(_("Choose an account."))


class OutcomeForm(Form):
    outcome = TextAreaField(_l("Outcome"), validators=[_required(), _max(worklist.MAX_OUTCOME)])


class ReferralAskForm(Form):
    referrer_email = StringField(
        _l("Referrer's email (optional)"), validators=[Optional(), _max(254)]
    )
    notes = TextAreaField(_l("Notes (optional)"), validators=[Optional(), _max(worklist.MAX_TEXT)])


class ReferralNewForm(ReferralAskForm):
    org_id = SelectField(
        _l("Account"), coerce=chosen_id, validate_choice=False, validators=[_account_chosen]
    )


class ReferralStatusForm(Form):
    status = SelectField(_l("Status"), choices=_choices(REFERRAL_STATUSES.items()))
    referred_company = StringField(_l("Referred company"), validators=[Optional(), _max(200)])
    referred_contact = StringField(_l("Referred contact"), validators=[Optional(), _max(254)])
    notes = TextAreaField(_l("Notes (optional)"), validators=[Optional(), _max(worklist.MAX_TEXT)])


class ImprovementForm(Form):
    org_id = SelectField(_l("Account"), coerce=chosen_id, validate_choice=False)
    department = SelectField(_l("Department"), choices=_choices(DEPARTMENTS.items()))
    title = StringField(_l("Title"), validators=[_required(), _max(worklist.MAX_TITLE)])
    description = TextAreaField(
        _l("Description (optional)"), validators=[Optional(), _max(worklist.MAX_TEXT)]
    )
    owner_name = StringField(
        _l("Owner in that department (optional)"), validators=[Optional(), _max(worklist.MAX_NAME)]
    )


class ImprovementNewForm(ImprovementForm):
    org_id = SelectField(
        _l("Account"), coerce=chosen_id, validate_choice=False, validators=[_account_chosen]
    )


class ImprovementStatusForm(Form):
    status = SelectField(_l("Status"), choices=_choices(IMPROVEMENT_STATUSES.items()))


def _me() -> Any:
    return current_user._get_current_object()


def _page() -> tuple[int, int]:
    return clamp_page_args(request.args.get("page", 1), PER_PAGE)


def _arg_int(name: str) -> int | None:
    return id_arg(request.args.get(name))


def _choice(name: str, allowed: Any, default: str | None) -> str | None:
    value = request.args.get(name) or default
    return value if value in allowed else default


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def _task_filters() -> tuple[str, str]:
    default_scope = "mine" if current_user.has_role(Role.CSM) else "book"
    scope = _choice("scope", TASK_SCOPES, default_scope) or default_scope
    state = _choice("state", TASK_STATES, "open") or "open"
    return scope, state


@bp.route("/tasks")
@login_required
def tasks() -> str:
    require_cs(current_user)
    scope, state = _task_filters()
    page, per_page = _page()
    result = paginate(
        db.session,
        worklist.tasks_query(db.session, _me(), scope=scope, state=state),
        page,
        per_page,
    )
    return render_template(
        "cs/tasks.html",
        page=result,
        rows=worklist.task_rows(db.session, result.items),
        scope=scope,
        state=state,
        scopes=TASK_SCOPES,
        states=TASK_STATES,
        kinds=TASK_KINDS,
        statuses=TASK_STATUSES,
        task_label=task_label,
    )


@bp.route("/tasks.csv")
@login_required
def tasks_csv() -> Response:
    require_cs(current_user)
    scope, state = _task_filters()
    query = worklist.tasks_query(db.session, _me(), scope=scope, state=state)
    rows = worklist.task_rows(
        db.session, db.session.scalars(query.limit(worklist.EXPORT_LIMIT)).all()
    )
    return csv_response(
        "tasks.csv",
        [_("ID"), _("Kind"), _("Account"), _("Title"), _("Assignee"), _("Due"), _("Status"),
         _("Overdue"), _("Created"), _("Completed"), _("Outcome")],
        (
            [r.task.id, str(TASK_KINDS.get(r.task.kind, r.task.kind)), r.organization,
             task_label(r.task.kind, r.organization, r.task.details, r.task.title), r.assignee,
             r.task.due_on, str(TASK_STATUSES.get(r.task.status, r.task.status)), r.overdue,
             r.task.created_at, r.task.completed_at, r.task.outcome]
            for r in rows
        ),
    )  # fmt: skip


def _render_task(task_id: int, **forms: Any) -> Any:
    detail = worklist.task_detail(db.session, _me(), task_id)
    done_form = forms.pop("done_form", None) or OutcomeForm(formdata=None, prefix="done")
    cancel_form = forms.pop("cancel_form", None) or OutcomeForm(formdata=None, prefix="cancel")
    ask_form = forms.pop("ask_form", None) or ReferralAskForm(formdata=None, prefix="ask")
    failed = next(
        (f for f in (done_form, cancel_form, ask_form) if f.errors or f.form_errors), done_form
    )
    # Finished elsewhere meanwhile (another tab, a colleague): the forms are gone from the page,
    # so say why and give back what was typed rather than dropping it.
    unsaved = None
    if detail.task.status != TaskStatus.OPEN and failed.form_errors:
        typed = failed.outcome.data if hasattr(failed, "outcome") else failed.notes.data
        unsaved = (typed or "").strip() or None
    return render_form(
        "cs/task.html",
        failed,
        unsaved=unsaved,
        detail=detail,
        done_form=done_form,
        cancel_form=cancel_form,
        ask_form=ask_form,
        kinds=TASK_KINDS,
        statuses=TASK_STATUSES,
        referral_statuses=REFERRAL_STATUSES,
        label=task_label(
            detail.task.kind, detail.organization.name, detail.task.details, detail.task.title
        ),
        may_manage=can(current_user, Action.MANAGE_CS),
    )


@bp.route("/tasks/<int:task_id>")
@login_required
def task(task_id: int) -> Any:
    require_cs(current_user)
    return _render_task(task_id)


def _finish(task_id: int, status: str, prefix: str, message: str) -> Any:
    require_cs(current_user, Action.MANAGE_CS)
    form = OutcomeForm(prefix=prefix)
    if submit(
        form,
        lambda: worklist.finish_task(db.session, _me(), task_id, status, form.outcome.data or ""),
    ):
        flash(message, "success")
        return redirect(url_for("cs.task", task_id=task_id))
    return _render_task(task_id, **{f"{prefix}_form": form})


@bp.route("/tasks/<int:task_id>/complete", methods=["POST"])
@login_required
def task_complete(task_id: int) -> Any:
    return _finish(task_id, TaskStatus.DONE, "done", _("The task is done."))


@bp.route("/tasks/<int:task_id>/cancel", methods=["POST"])
@login_required
def task_cancel(task_id: int) -> Any:
    return _finish(task_id, TaskStatus.CANCELLED, "cancel", _("The task was cancelled."))


@bp.route("/tasks/<int:task_id>/referral", methods=["POST"])
@login_required
def task_referral(task_id: int) -> Any:
    """A referral-ask task: record that the promoter was asked (this completes the task)."""
    require_cs(current_user, Action.MANAGE_CS)
    task = worklist.get_task(db.session, _me(), task_id, Action.MANAGE_CS)
    form = ReferralAskForm(prefix="ask")
    if submit(
        form,
        lambda: worklist.ask_referral(
            db.session,
            _me(),
            task.organization_id,
            referrer_email=form.referrer_email.data,
            notes=form.notes.data,
            task_id=task.id,
        ),
    ):
        flash(_("The referral ask was recorded."), "success")
        return redirect(url_for("cs.referrals"))
    return _render_task(task_id, ask_form=form)


# --------------------------------------------------------------------------------------------
# Referrals
# --------------------------------------------------------------------------------------------


def _referral_filter() -> str | None:
    return _choice("status", REFERRAL_STATUSES, None)


def _referral_names(referrals: list[Referral]) -> tuple[dict[int, str], dict[int, str]]:
    return worklist.names(
        db.session,
        {r.organization_id for r in referrals},
        {r.csm_id for r in referrals if r.csm_id},
    )


def _render_referrals(form: ReferralNewForm | None = None) -> Any:
    require_cs(current_user)
    status = _referral_filter()
    org_id = _arg_int("org_id")
    page, per_page = _page()
    result = paginate(
        db.session,
        worklist.referrals_query(db.session, _me(), status=status, org_id=org_id),
        page,
        per_page,
    )
    orgs, users = _referral_names(result.items)
    may_manage = can(current_user, Action.MANAGE_CS)
    if form is None:
        form = ReferralNewForm(formdata=None, org_id=org_id)
    if may_manage:
        form.org_id.choices = _choices(
            [("", _("Choose an account")), *worklist.book_accounts(db.session, _me())]
        )
    return render_form(
        "cs/referrals.html",
        form,
        page=result,
        orgs=orgs,
        users=users,
        status=status,
        org_id=org_id,
        statuses=REFERRAL_STATUSES,
        may_manage=may_manage,
        status_form=ReferralStatusForm,
    )


@bp.route("/referrals")
@login_required
def referrals() -> Any:
    return _render_referrals()


@bp.route("/referrals", methods=["POST"])
@login_required
def referral_new() -> Any:
    require_cs(current_user, Action.MANAGE_CS)
    form = ReferralNewForm()
    if submit(
        form,
        lambda: worklist.ask_referral(
            db.session,
            _me(),
            form.org_id.data or -1,
            referrer_email=form.referrer_email.data,
            notes=form.notes.data,
        ),
    ):
        flash(_("The referral ask was recorded."), "success")
        return redirect(url_for("cs.referrals"))
    return _render_referrals(form)


@bp.route("/referrals/<int:referral_id>", methods=["GET", "POST"])
@login_required
def referral(referral_id: int) -> Any:
    require_cs(current_user)
    item = worklist.get_referral(db.session, _me(), referral_id)
    if request.method == "POST":
        require_cs(current_user, Action.MANAGE_CS)
        form = ReferralStatusForm()
    else:
        form = ReferralStatusForm(obj=item)
    if request.method == "POST" and submit(
        form,
        lambda: worklist.update_referral(
            db.session,
            _me(),
            referral_id,
            form.status.data,
            referred_company=form.referred_company.data,
            referred_contact=form.referred_contact.data,
            notes=form.notes.data,
        ),
    ):
        flash(_("The referral was saved."), "success")
        return redirect(url_for("cs.referrals"))
    orgs, users = _referral_names([item])
    return render_form(
        "cs/referrals_edit.html",
        form,
        referral=item,
        organization=orgs.get(item.organization_id, ""),
        csm=users.get(item.csm_id or 0),
        statuses=REFERRAL_STATUSES,
        may_manage=can(current_user, Action.MANAGE_CS),
    )


@bp.route("/referrals.csv")
@login_required
def referrals_csv() -> Response:
    require_cs(current_user)
    query = worklist.referrals_query(
        db.session, _me(), status=_referral_filter(), org_id=_arg_int("org_id")
    )
    items = list(db.session.scalars(query.limit(worklist.EXPORT_LIMIT)))
    orgs, users = _referral_names(items)
    return csv_response(
        "referrals.csv",
        [_("ID"), _("Account"), _("CSM"), _("Referrer"), _("Status"), _("Referred company"),
         _("Referred contact"), _("Asked"), _("Received"), _("Notes")],
        (
            [r.id, orgs.get(r.organization_id, ""), users.get(r.csm_id or 0), r.referrer_email,
             str(REFERRAL_STATUSES.get(r.status, r.status)), r.referred_company,
             r.referred_contact, r.asked_at, r.received_at, r.notes]
            for r in items
        ),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Improvement items
# --------------------------------------------------------------------------------------------


def _improvement_filters() -> dict[str, Any]:
    return {
        "org_id": _arg_int("org_id"),
        "csm_id": _arg_int("csm_id"),
        "status": _choice("status", IMPROVEMENT_STATUSES, None),
    }


def _improvement_names(items: list[ImprovementItem]) -> tuple[dict[int, str], dict[int, str]]:
    return worklist.names(
        db.session, {i.organization_id for i in items}, {i.csm_id for i in items if i.csm_id}
    )


@bp.route("/improvements")
@login_required
def improvements() -> str:
    require_cs(current_user)
    filters = _improvement_filters()
    page, per_page = _page()
    result = paginate(
        db.session, worklist.improvements_query(db.session, _me(), **filters), page, per_page
    )
    orgs, users = _improvement_names(result.items)
    return render_template(
        "cs/improvements.html",
        page=result,
        orgs=orgs,
        users=users,
        filters=filters,
        csms=worklist.cs_staff(db.session),
        statuses=IMPROVEMENT_STATUSES,
        departments=DEPARTMENTS,
        may_manage=can(current_user, Action.MANAGE_CS),
        status_form=ImprovementStatusForm,
    )


@bp.route("/improvements.csv")
@login_required
def improvements_csv() -> Response:
    require_cs(current_user)
    query = worklist.improvements_query(db.session, _me(), **_improvement_filters())
    items = list(db.session.scalars(query.limit(worklist.EXPORT_LIMIT)))
    orgs, users = _improvement_names(items)
    return csv_response(
        "improvements.csv",
        [_("ID"), _("Account"), _("Department"), _("Title"), _("Description"), _("Owner"),
         _("CSM"), _("Status"), _("Opened"), _("Closed")],
        (
            [i.id, orgs.get(i.organization_id, ""),
             str(DEPARTMENTS.get(i.department, i.department)), i.title, i.description,
             i.owner_name, users.get(i.csm_id or 0),
             str(IMPROVEMENT_STATUSES.get(i.status, i.status)), i.opened_at, i.closed_at]
            for i in items
        ),
    )  # fmt: skip


def _account_choices(form: ImprovementForm) -> None:
    form.org_id.choices = _choices(
        [("", _("Choose an account")), *worklist.book_accounts(db.session, _me())]
    )


def _improvement_values(form: ImprovementForm) -> dict[str, Any]:
    return {
        "department": form.department.data,
        "title": form.title.data or "",
        "description": form.description.data,
        "owner_name": form.owner_name.data,
    }


@bp.route("/improvements/new", methods=["GET", "POST"])
@login_required
def improvement_new() -> Any:
    require_cs(current_user, Action.MANAGE_CS)
    form = ImprovementNewForm()
    if request.method == "GET":
        form.org_id.data = _arg_int("org_id")
    _account_choices(form)
    if submit(
        form,
        lambda: worklist.create_improvement(
            db.session, _me(), form.org_id.data or -1, **_improvement_values(form)
        ),
    ):
        flash(_("The improvement item was saved."), "success")
        return redirect(url_for("cs.improvements"))
    return render_form("cs/improvements_form.html", form, item=None, organization=None)


@bp.route("/improvements/<int:item_id>/edit", methods=["GET", "POST"])
@login_required
def improvement_edit(item_id: int) -> Any:
    require_cs(current_user, Action.MANAGE_CS)
    item = worklist.get_improvement(db.session, _me(), item_id, Action.MANAGE_CS)
    form = ImprovementForm(obj=item) if request.method == "GET" else ImprovementForm()
    form.org_id.choices = []
    if submit(
        form,
        lambda: worklist.update_improvement(
            db.session, _me(), item_id, **_improvement_values(form)
        ),
    ):
        flash(_("The improvement item was saved."), "success")
        return redirect(url_for("cs.improvements"))
    organization = db.session.get(Organization, item.organization_id)
    return render_form(
        "cs/improvements_form.html",
        form,
        item=item,
        organization=organization.name if organization else "",
    )


@bp.route("/improvements/<int:item_id>/status", methods=["POST"])
@login_required
def improvement_status(item_id: int) -> Response:
    require_cs(current_user, Action.MANAGE_CS)
    form = ImprovementStatusForm()
    if form.validate_on_submit():
        perform(
            lambda: worklist.set_improvement_status(db.session, _me(), item_id, form.status.data),
            _("The status was changed."),
        )
    else:
        flash(_("Choose a status."), "danger")
    return _back(url_for("cs.improvements"))


def _back(default: str) -> Response:
    """To the page the button was on (our own pages only), else ``default``."""
    target = request.form.get("next") or request.referrer or ""
    if target.startswith(request.host_url):
        target = "/" + target[len(request.host_url) :]
    return redirect(target if is_safe_next(target) else default)


# A CSM's open and overdue task counts, per reader and day, kept like their portfolio (the
# same setting): their home page asks on every visit, and reading them was two queries (the
# own-book setting, a count over some five hundred open tasks) and most of the page's time.
# A task, an account's CSM or the setting changed in this process shows at once.
_home_counts: ChangeClearedCache[tuple[int, int]] = ChangeClearedCache(
    "cs_home_counts", (CsTask, AccountProfile, CsSetting), "CS_PORTFOLIO_CACHE_SECONDS"
)


def home_section(session: Session, viewer: User | None) -> str:
    """A CSM's home page shows their tasks first (``portal.core.home``); nobody else sees it."""
    if viewer is None or not can(viewer, Action.VIEW_CS):
        return ""
    today = utcnow().date()
    total, overdue = _home_counts.kept(
        (viewer.id, today), lambda: worklist.my_task_counts(session, viewer, today)
    )
    return render_template("cs/_home.html", total=total, overdue=overdue)
