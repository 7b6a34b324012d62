"""Q&A pages: parse, call the service, commit once, redirect or render."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from portal.core import home
from portal.core.db import db
from portal.core.errors import DomainError
from portal.core.i18n import current_locale
from portal.core.identity import User
from portal.core.pagination import clamp_page_args
from portal.core.web import best_effort, id_arg, perform, render_form, submit
from portal.qa import forms, listcache, service
from portal.qa.diff import line_diff

bp = Blueprint("qa", __name__, url_prefix="/questions")


def _viewer() -> Any:
    return current_user._get_current_object() if current_user.is_authenticated else None


def _back(question_id: int, anchor: str | None = None) -> Response:
    return redirect(url_for("qa.question", question_id=question_id, _anchor=anchor))


# --- lists ----------------------------------------------------------------------------------


def _scope(viewer: Any) -> str:
    """Who sees the same list: everyone anonymous, one organization, or vendor staff."""
    if viewer is None:
        return "public"
    return "staff" if viewer.is_staff else f"org:{viewer.organization_id}"


def _list(tag: str | None = None) -> Any:
    args = request.args
    viewer = _viewer()
    filters = service.ListFilters(
        sort=args.get("sort", "newest"),
        tag=tag or (args.get("tag") or "").lower() or None,
        product_area=args.get("area") or None,
        status=args.get("status") or None,
    )
    page_number, per_page = clamp_page_args(args.get("page", 1), args.get("per_page", 20))
    key = (
        _scope(viewer),
        current_locale(),
        str(get_timezone()),
        tag,
        filters,
        page_number,
        per_page,
    )

    def render() -> str:
        try:
            page = service.list_questions(db.session, viewer, filters, page_number, per_page)
        except DomainError:
            abort(400)
        link_args = {
            k: v
            for k, v in {
                "sort": filters.sort,
                "area": filters.product_area,
                "status": filters.status,
            }.items()
            if v
        }
        if not tag and filters.tag:
            link_args["tag"] = filters.tag
        here = url_for(request.endpoint or "qa.index", **(request.view_args or {}))
        return render_template(
            "qa/_list_body.html",
            page=page,
            filters=filters,
            tag=tag,
            link_args=link_args,
            sort_links=[
                (s, f"{here}?{urlencode({**link_args, 'sort': s})}") for s in service.SORTS
            ],
            areas=_area_labels(),
            statuses=service.STATUSES,
        )

    body = listcache.kept(key, render)
    # The body is our own template's output, escaped as it was rendered.
    return render_template(
        "qa/list.html",
        body=Markup(body),  # noqa: S704 - our own template output, escaped when rendered  # nosec B704
        tag=tag,
        following_tag=bool(tag) and service.follows_tag(db.session, viewer, tag),
    )


def _area_labels() -> dict[str, str]:
    """Product areas in the request's language, translated once per page (not once per row)."""
    return {value: str(label) for value, label in service.PRODUCT_AREAS.items()}


@bp.route("/")
def index() -> Any:
    return _list()


@bp.route("/tagged/<tag>")
def tagged(tag: str) -> Any:
    return _list(tag.lower())


@bp.route("/tagged/<tag>/follow", methods=["POST"])
@login_required
def follow_tag(tag: str) -> Response:
    if request.form.get("follow") == "0":
        perform(
            lambda: service.unfollow_tag(db.session, current_user, tag),
            _("You no longer follow this tag."),
        )
    else:
        perform(
            lambda: service.follow_tag(db.session, current_user, tag),
            _("You follow this tag: we will tell you about new questions with it."),
        )
    return redirect(url_for("qa.tagged", tag=tag.lower()))


# --- asking and editing ---------------------------------------------------------------------


@bp.route("/ask", methods=["GET", "POST"])
@login_required
def ask() -> Any:
    form = forms.QuestionForm()
    created: list[Any] = []

    def action() -> None:
        created.append(
            service.ask(
                db.session,
                current_user,
                form.title.data,
                form.body.data,
                form.tags.data,
                form.product_area.data,
                form.private.data,
            )
        )

    if submit(form, action):
        question = created[0]
        if question.published:
            flash(_("Your question is published."), "success")
        else:
            flash(_("Thank you! Your question is awaiting review by a moderator."), "info")
        return _back(question.id)
    return render_form("qa/ask.html", form, areas=service.PRODUCT_AREAS)


@bp.route("/<int:question_id>/edit", methods=["GET", "POST"])
@login_required
def edit_question(question_id: int) -> Any:
    question = service.editable(db.session, current_user, question_id=question_id)
    form = forms.QuestionForm()
    if request.method == "GET":
        form.title.data = question.title
        form.body.data = question.body_source
        form.tags.data = " ".join(t.name for t in question.tags)
        form.product_area.data = question.product_area or ""
    if submit(
        form,
        lambda: service.edit_question(
            db.session,
            current_user,
            question_id,
            form.title.data,
            form.body.data,
            form.tags.data,
            form.product_area.data,
            form.comment.data,
        ),
    ):
        flash(_("Your edit was saved."), "success")
        return _back(question_id)
    return render_form("qa/edit_question.html", form, question=question)


@bp.route("/answers/<int:answer_id>/edit", methods=["GET", "POST"])
@login_required
def edit_answer(answer_id: int) -> Any:
    reply = service.editable(db.session, current_user, answer_id=answer_id)
    form = forms.AnswerForm()
    if request.method == "GET":
        form.body.data = reply.body_source
    if submit(
        form,
        lambda: service.edit_answer(
            db.session, current_user, answer_id, form.body.data, form.comment.data
        ),
    ):
        flash(_("Your edit was saved."), "success")
        return _back(reply.question_id, f"answer-{answer_id}")
    return render_form("qa/edit_answer.html", form, answer=reply, question=reply.question)


# --- the question page ----------------------------------------------------------------------


def _render_question(
    question_id: int, status: int = 200, view: Any = None, **forms_given: Any
) -> Any:
    if view is None:
        view = service.question_view(db.session, _viewer(), question_id)
    context = {
        "answer_form": forms.AnswerForm(),
        "comment_form": forms.CommentForm(),
        "close_form": forms.CloseForm(),
        "duplicate_form": forms.DuplicateForm(),
        **forms_given,
    }
    body = render_template(
        "qa/question.html", view=view, q=view.question, areas=_area_labels(), **context
    )
    return body, status


@bp.route("/<int:question_id>")
def question(question_id: int) -> Any:
    viewer = _viewer()
    view = service.question_view(db.session, viewer, question_id)
    q = view.question
    if view.duplicate_of is not None and not request.args.get("original"):
        flash(_("“%(title)s” was closed as a duplicate of this question.", title=q.title), "info")
        return redirect(url_for("qa.question", question_id=view.duplicate_of.id, via=q.id))
    _count_read(viewer, q)
    return _render_question(question_id, view=view)


def _count_read(viewer: Any, q: Any) -> None:
    best_effort(lambda: service.record_view(db.session, viewer, q), f"read of question {q.id}")


@bp.route("/answers/<int:answer_id>")
def answer_link(answer_id: int) -> Response:
    reply = service.get_answer(db.session, _viewer(), answer_id)
    return _back(reply.question_id, f"answer-{answer_id}")


@bp.route("/<int:question_id>/answers", methods=["POST"])
@login_required
def post_answer(question_id: int) -> Any:
    form = forms.AnswerForm()
    created: list[Any] = []
    if submit(
        form,
        lambda: created.append(
            service.answer(db.session, current_user, question_id, form.body.data)
        ),
    ):
        reply = created[0]
        if reply.published:
            flash(_("Your answer is published."), "success")
        else:
            flash(_("Thank you! Your answer is awaiting review by a moderator."), "info")
        return _back(question_id, f"answer-{reply.id}")
    return _render_question(question_id, getattr(form, "error_status", 422), answer_form=form)


def _comment(question_id: int, answer_id: int | None) -> Any:
    form = forms.CommentForm()
    if submit(
        form,
        lambda: service.comment(
            db.session,
            current_user,
            form.body.data,
            question_id=None if answer_id else question_id,
            answer_id=answer_id,
        ),
    ):
        flash(_("Your comment was saved."), "success")
        return _back(question_id, f"answer-{answer_id}" if answer_id else None)
    if getattr(form, "error_status", 422) == 404:
        abort(404)
    return _render_question(question_id, getattr(form, "error_status", 422), comment_form=form)


@bp.route("/<int:question_id>/comments", methods=["POST"])
@login_required
def comment_question(question_id: int) -> Any:
    return _comment(question_id, None)


@bp.route("/answers/<int:answer_id>/comments", methods=["POST"])
@login_required
def comment_answer(answer_id: int) -> Any:
    reply = service.get_answer(db.session, current_user, answer_id, published=True)
    return _comment(reply.question_id, answer_id)


def _vote_value() -> int:
    try:
        return int(request.form.get("value", ""))
    except ValueError:
        return 99  # refused by the service, naming the field


def _vote_message(result: service.VoteResult) -> str:
    """Voting the same way again takes the vote back, and the message says which happened."""
    return _("Your vote was removed.") if result.value == 0 else _("Your vote was saved.")


@bp.route("/<int:question_id>/vote", methods=["POST"])
@login_required
def vote_question(question_id: int) -> Response:
    perform(
        lambda: service.vote(db.session, current_user, _vote_value(), question_id=question_id),
        _vote_message,
    )
    return _back(question_id)


@bp.route("/answers/<int:answer_id>/vote", methods=["POST"])
@login_required
def vote_answer(answer_id: int) -> Response:
    reply = service.get_answer(db.session, current_user, answer_id, published=True)
    perform(
        lambda: service.vote(db.session, current_user, _vote_value(), answer_id=answer_id),
        _vote_message,
    )
    return _back(reply.question_id, f"answer-{answer_id}")


@bp.route("/<int:question_id>/accept", methods=["POST"])
@login_required
def accept(question_id: int) -> Response:
    answer_id = id_arg(request.form.get("answer_id"))
    perform(
        lambda: service.accept(db.session, current_user, question_id, answer_id),
        _("You accepted this answer.") if answer_id else _("The answer is no longer accepted."),
    )
    return _back(question_id, f"answer-{answer_id}" if answer_id else None)


@bp.route("/answers/<int:answer_id>/helpful", methods=["POST"])
@login_required
def helpful(answer_id: int) -> Response:
    reply = service.get_answer(db.session, current_user, answer_id, published=True)
    perform(
        lambda: service.mark_helpful(db.session, current_user, answer_id),
        _("Thank you for telling us this helped you."),
    )
    return _back(reply.question_id, f"answer-{answer_id}")


@bp.route("/<int:question_id>/follow", methods=["POST"])
@login_required
def follow(question_id: int) -> Response:
    if request.form.get("follow") == "0":
        perform(
            lambda: service.unfollow(db.session, current_user, question_id),
            _("You no longer follow this question."),
        )
    else:
        perform(
            lambda: service.follow(db.session, current_user, question_id),
            _("You follow this question: we will tell you about new answers."),
        )
    return _back(question_id)


@bp.route("/<int:question_id>/close", methods=["POST"])
@login_required
def close(question_id: int) -> Any:
    form = forms.CloseForm()
    if submit(form, lambda: service.close(db.session, current_user, question_id, form.reason.data)):
        flash(_("The question is closed."), "success")
        return _back(question_id)
    if getattr(form, "error_status", 422) in (403, 404):
        abort(form.error_status)
    return _render_question(question_id, getattr(form, "error_status", 422), close_form=form)


@bp.route("/<int:question_id>/reopen", methods=["POST"])
@login_required
def reopen(question_id: int) -> Response:
    error = perform(
        lambda: service.reopen(db.session, current_user, question_id),
        _("The question is open again."),
    )
    if error is not None and error.status_code == 403:
        abort(403)
    return redirect(url_for("qa.question", question_id=question_id, original=1))


@bp.route("/<int:question_id>/duplicate", methods=["POST"])
@login_required
def duplicate(question_id: int) -> Any:
    form = forms.DuplicateForm()
    if submit(
        form,
        lambda: service.mark_duplicate(db.session, current_user, question_id, form.target.data),
    ):
        flash(_("The question was closed as a duplicate."), "success")
        return _back(question_id)
    if getattr(form, "error_status", 422) in (403, 404):
        abort(form.error_status)
    return _render_question(question_id, getattr(form, "error_status", 422), duplicate_form=form)


# --- revisions ------------------------------------------------------------------------------


def _revisions(question_id: int | None, answer_id: int | None) -> Any:
    question, reply, rows = service.revisions(
        db.session, _viewer(), question_id=question_id, answer_id=answer_id
    )
    changes = []
    previous = None
    for revision in rows:
        before = _revision_text(previous) if previous else ""
        changes.append((revision, line_diff(before, _revision_text(revision))))
        previous = revision
    changes.reverse()
    return render_template("qa/revisions.html", q=question, answer=reply, changes=changes)


def _revision_text(revision: Any) -> str:
    parts = []
    if revision.title:
        parts.append(revision.title)
    if revision.tags:
        parts.append(f"[{revision.tags}]")
    parts.append(revision.body_source)
    return "\n".join(parts)


@bp.route("/<int:question_id>/revisions")
def question_revisions(question_id: int) -> Any:
    return _revisions(question_id, None)


@bp.route("/answers/<int:answer_id>/revisions")
def answer_revisions(answer_id: int) -> Any:
    return _revisions(None, answer_id)


def home_section(session: Session, viewer: User | None) -> str:
    """The home page's latest questions, as ``viewer`` may see them (``portal.core.home``)."""

    def render() -> str:
        filters = service.ListFilters(sort="newest")
        page = service.list_questions(session, viewer, filters, 1, home.ROWS)
        return render_template("qa/_home.html", rows=page.items)

    # kept like the list (the home page is the busiest page a visitor opens)
    return listcache.kept(("home", _scope(viewer), current_locale(), str(get_timezone())), render)
