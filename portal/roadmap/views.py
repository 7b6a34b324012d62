"""Roadmap pages: parse, call the service, commit once, redirect or render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy.orm import Session

from cs_metrics.export import csv_response
from portal.core import home
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.i18n import current_locale
from portal.core.identity import User
from portal.core.pagination import clamp_page_args
from portal.core.urls import external_url
from portal.core.web import chosen_id, perform, render_form, submit
from portal.roadmap import forms, listcache, service

bp = Blueprint("roadmap", __name__, url_prefix="/roadmap")


def _viewer() -> Any:
    return current_user._get_current_object() if current_user.is_authenticated else None


def _back(idea_id: int) -> Response:
    return redirect(url_for("roadmap.idea", idea_id=idea_id))


def _areas() -> dict[str, str]:
    return {value: str(label) for value, label in service.PRODUCT_AREAS.items()}


# --- the board ------------------------------------------------------------------------------


@bp.route("/")
def board() -> Any:
    args = request.args
    viewer = _viewer()
    filters = service.BoardFilters(
        sort=args.get("sort", "top"),
        status=args.get("status") or None,
        product_area=args.get("area") or None,
        tag=(args.get("tag") or "").strip().lower() or None,
    )
    if filters.sort == "mine" and viewer is None:
        return redirect(url_for("accounts.sign_in", next=request.full_path))
    page_number, per_page = clamp_page_args(args.get("page", 1), args.get("per_page", 20))
    key = (
        viewer.id if viewer else None,
        current_locale(),
        str(get_timezone()),
        filters,
        page_number,
        per_page,
    )

    def render() -> str:
        try:
            page = service.board(db.session, viewer, filters, page_number, per_page)
        except DomainError:
            abort(400)
        link_args = {
            k: v
            for k, v in {
                "sort": filters.sort,
                "status": filters.status,
                "area": filters.product_area,
                "tag": filters.tag,
            }.items()
            if v
        }
        here = url_for("roadmap.board")
        sorts = [s for s in service.SORTS if s != "mine" or viewer is not None]
        return render_template(
            "roadmap/_board_body.html",
            page=page,
            filters=filters,
            link_args=link_args,
            sort_links=[(s, f"{here}?{urlencode({**link_args, 'sort': s})}") for s in sorts],
            areas=_areas(),
            labels=service.status_labels(db.session),
            importance=service.IMPORTANCE_LABELS,
            sees_impact=service.sees_impact(viewer),
        )

    body = listcache.kept(key, render)
    return render_template(
        "roadmap/board.html",
        body=Markup(body),  # noqa: S704 - our own template output, escaped when rendered  # nosec B704
    )


# --- submitting -----------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    form = forms.IdeaForm()
    created: list[Any] = []
    if submit(
        form,
        lambda: created.append(
            service.submit_idea(
                db.session,
                current_user,
                form.title.data,
                form.description.data,
                form.product_area.data,
                form.tags.data,
            )
        ),
    ):
        idea = created[0]
        if idea.published:
            flash(_("Your idea is published."), "success")
        else:
            flash(_("Thank you! Your idea is awaiting review by a moderator."), "info")
        return _back(idea.id)
    return render_form("roadmap/new.html", form)


# --- the idea page --------------------------------------------------------------------------


def _render_idea(idea_id: int, status: int = 200, **given: Any) -> Any:
    viewer = _viewer()
    view = service.idea_view(db.session, viewer, idea_id)
    labels = service.status_labels(db.session)
    vote_form = given.pop("vote_form", None) or forms.VoteForm()
    if view.my_vote is not None and "importance" not in request.form:
        vote_form.importance.data = str(view.my_vote.importance)
    status_form = given.pop("status_form", None) or forms.StatusForm()
    status_form.status.choices = forms.status_choices(labels)
    if not status_form.status.data:
        status_form.status.data = view.idea.status
    contacts = []
    if service.sees_impact(viewer):
        contacts = service.contacts(db.session, viewer)
        vote_form.on_behalf_of.choices = [("", _("Myself"))] + [
            (str(c.id), f"{c.display_name} · {c.organization.name}") for c in contacts
        ]
    body = render_template(
        "roadmap/idea.html",
        view=view,
        idea=view.idea,
        labels=labels,
        areas=_areas(),
        importance=service.IMPORTANCE_LABELS,
        vote_form=vote_form,
        comment_form=given.pop("comment_form", None) or forms.CommentForm(),
        status_form=status_form,
        merge_form=given.pop("merge_form", None) or forms.MergeForm(),
        product_staff=service.is_product_staff(viewer),
        merger=service.is_product_staff(viewer) or service.is_moderator(viewer),
        staff_voter=bool(contacts),
    )
    return body, status


@bp.route("/ideas/<int:idea_id>")
def idea(idea_id: int) -> Any:
    found = service.get_idea(db.session, _viewer(), idea_id)
    if found.merged_into_id and not request.args.get("original"):
        target = service.resolve_merged(db.session, found)
        flash(_("“%(title)s” was merged into this idea.", title=found.title), "info")
        return redirect(url_for("roadmap.idea", idea_id=target.id, via=found.id))
    return _render_idea(idea_id)


def _on_behalf() -> int | None:
    return chosen_id(request.form.get("on_behalf_of"))  # a wrong one: refused, naming the field


def _voted(idea_id: int, call: Callable[[], service.VoteResult]) -> Response:
    """Like ``perform``, but the message is the service's: voting twice, or taking back a
    vote one did not have, says it changed nothing, and a vote on a merged idea lands (and
    returns) on its target."""
    try:
        result = call()
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        if error.status_code == 404:
            abort(404)
        flash(error.message, "warning" if error.status_code == 409 else "danger")
        return _back(idea_id)
    flash(result.message, "success" if result.changed else "info")
    return _back(result.idea_id)


@bp.route("/ideas/<int:idea_id>/vote", methods=["POST"])
@login_required
def vote(idea_id: int) -> Response:
    return _voted(
        idea_id,
        lambda: service.vote(
            db.session,
            current_user,
            idea_id,
            request.form.get("importance", "2"),
            on_behalf_of=_on_behalf(),
        ),
    )


@bp.route("/ideas/<int:idea_id>/unvote", methods=["POST"])
@login_required
def unvote(idea_id: int) -> Response:
    return _voted(idea_id, lambda: service.unvote(db.session, current_user, idea_id))


@bp.route("/ideas/<int:idea_id>/comments", methods=["POST"])
@login_required
def comment(idea_id: int) -> Any:
    form = forms.CommentForm()
    created: list[Any] = []
    if submit(
        form,
        lambda: created.append(service.comment(db.session, current_user, idea_id, form.body.data)),
    ):
        if created[0].published:
            flash(_("Your comment was saved."), "success")
        else:
            flash(_("Thank you! Your comment is awaiting review by a moderator."), "info")
        return _back(created[0].idea_id)
    if getattr(form, "error_status", 422) in (403, 404):
        abort(form.error_status)
    return _render_idea(idea_id, getattr(form, "error_status", 422), comment_form=form)


@bp.route("/ideas/<int:idea_id>/status", methods=["POST"])
@login_required
def change_status(idea_id: int) -> Any:
    form = forms.StatusForm()
    form.status.choices = forms.status_choices(service.status_labels(db.session))
    if submit(
        form,
        lambda: service.change_status(
            db.session,
            current_user,
            idea_id,
            form.status.data,
            form.response.data,
            form.release_notes.data,
        ),
    ):
        flash(_("The status was changed and subscribers were notified."), "success")
        return _back(idea_id)
    if getattr(form, "error_status", 422) in (403, 404):
        abort(form.error_status)
    return _render_idea(idea_id, getattr(form, "error_status", 422), status_form=form)


@bp.route("/ideas/<int:idea_id>/merge", methods=["POST"])
@login_required
def merge(idea_id: int) -> Any:
    form = forms.MergeForm()
    if submit(form, lambda: service.merge(db.session, current_user, idea_id, form.target_id.data)):
        flash(_("The ideas were merged."), "success")
        return _back(form.target_id.data)
    if getattr(form, "error_status", 422) in (403, 404):
        abort(form.error_status)
    return _render_idea(idea_id, getattr(form, "error_status", 422), merge_form=form)


@bp.route("/ideas/<int:idea_id>/unmerge", methods=["POST"])
@login_required
def unmerge(idea_id: int) -> Response:
    perform(lambda: service.unmerge(db.session, current_user, idea_id), _("The merge was undone."))
    return redirect(url_for("roadmap.idea", idea_id=idea_id, original=1))


@bp.route("/ideas/<int:idea_id>/subscribe", methods=["POST"])
@login_required
def subscribe(idea_id: int) -> Response:
    if request.form.get("action") == "unsubscribe":
        perform(
            lambda: service.unsubscribe(db.session, current_user, idea_id),
            _("You will no longer hear about this idea."),
        )
    else:
        perform(
            lambda: service.subscribe(db.session, current_user, idea_id),
            _("You will hear when this idea changes status."),
        )
    return _back(idea_id)


# --- changelog ------------------------------------------------------------------------------


@bp.route("/changelog")
def changelog() -> Any:
    return render_template(
        "roadmap/changelog.html", ideas=service.changelog(db.session), areas=_areas()
    )


@bp.route("/changelog.atom")
def feed() -> Response:
    ideas = service.changelog(db.session)
    body = render_template(
        "roadmap/changelog.atom.xml",
        ideas=ideas,
        feed_url=external_url("roadmap.feed"),
        home_url=external_url("roadmap.changelog"),
        idea_url=lambda i: external_url("roadmap.idea", idea_id=i.id),
        updated=ideas[0].shipped_at if ideas and ideas[0].shipped_at else None,
    )
    return Response(body, mimetype="application/atom+xml")


# --- staff ----------------------------------------------------------------------------------


def _staff_impact() -> Any:
    """Customers get 403 (the error handler), anonymous visitors the sign-in page."""
    if not current_user.is_authenticated:
        return None
    sort = request.args.get("sort", "arr_at_risk")
    if sort not in service.IMPACT_SORTS:
        abort(400)
    return service.impact_rows(db.session, current_user, sort), sort


@bp.route("/impact")
@login_required
def impact() -> Any:
    rows, sort = _staff_impact()
    return render_template("roadmap/impact.html", rows=rows, sort=sort, sorts=service.IMPACT_SORTS)


@bp.route("/impact.csv")
@login_required
def impact_csv() -> Response:
    rows, _sort = _staff_impact()
    header = [
        _("Idea"),
        _("Title"),
        _("Status"),
        _("Votes"),
        _("Organizations"),
        _("Revenue-weighted score (ARR)"),
        _("ARR at risk"),
    ]
    return csv_response(
        "roadmap-impact.csv",
        header,
        (
            [
                row.idea_id,
                row.title,
                row.status,
                row.vote_count,
                "; ".join(o.name for o in row.organizations),
                row.revenue_score,
                row.arr_at_risk,
            ]
            for row in rows
        ),
    )


@bp.route("/admin", methods=["GET", "POST"])
@login_required
def admin() -> Any:
    if not service.is_vendor_admin(current_user):
        abort(403)
    status = 200
    typed: dict[str, str] = {}  # refused settings come back as they were typed
    if request.method == "POST":
        try:
            for key in service.STATUSES:
                label = request.form.get(f"label-{key}")
                color = request.form.get(f"color-{key}")
                if label is not None or color is not None:
                    service.set_status_label(
                        db.session, current_user, key, label or "", color or ""
                    )
            service.set_vote_budget(db.session, current_user, request.form.get("budget", "0"))
            db.session.commit()
            flash(_("Roadmap settings saved."), "success")
            return redirect(url_for("roadmap.admin"))
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "danger")
            status = error.status_code
            typed = request.form.to_dict()
    labels = {
        key: service.Label(
            key, typed.get(f"label-{key}", shown.label), typed.get(f"color-{key}", shown.color)
        )
        for key, shown in service.status_labels(db.session).items()
    }
    budget = typed.get("budget", service.vote_budget(db.session))
    return render_template("roadmap/admin.html", labels=labels, budget=budget), status


def home_section(session: Session, viewer: User | None) -> str:
    """The home page's most voted ideas (``portal.core.home``)."""

    def render() -> str:
        page = service.board(
            session, viewer, service.BoardFilters(sort="top", open_only=True), 1, home.ROWS
        )
        return render_template(
            "roadmap/_home.html", rows=page.items, labels=service.status_labels(session)
        )

    # kept like the board, per viewer as the board is (their own pending ideas)
    return listcache.kept(("home", viewer.id if viewer else None, current_locale()), render)
