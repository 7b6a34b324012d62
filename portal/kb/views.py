"""Knowledge-base pages: reading for everyone, writing for staff."""

from __future__ import annotations

import difflib
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from portal.core.db import db
from portal.core.i18n import current_locale
from portal.core.pagination import clamp_page_args, paginate
from portal.core.permissions import Action, permission_required
from portal.core.web import id_arg, perform, render_form, submit
from portal.kb import forms, service
from portal.kb.models import Article, ArticleVersion

bp = Blueprint("kb", __name__, url_prefix="/kb")


def _viewer() -> Any:
    return current_user._get_current_object() if current_user.is_authenticated else None


def _language_arg() -> str | None:
    return service.check_language(request.args.get("lang") or None)


def _category_choices() -> list[Any]:
    locale = current_locale()
    return forms.choices(
        [("", _("No category"))]
        + [(c.id, service.category_name(c, locale)) for c in service.categories(db.session)]
    )


# --- reading -------------------------------------------------------------------------------


@bp.route("/")
def home() -> str:
    language = _language_arg()
    counts, newest, helpful = service.home_overview(db.session, language)
    return render_template(
        "kb/home.html",
        counts=counts,
        newest=newest,
        helpful=helpful,
        language=language,
        drafts=service.drafts(db.session, _viewer()) if _viewer() else [],
    )


@bp.route("/categories/<slug>")
def category(slug: str) -> str:
    language = _language_arg()
    category = service.category_by_slug(db.session, slug)
    page, per_page = clamp_page_args(request.args.get("page", 1), request.args.get("per_page", 20))
    articles = paginate(
        db.session, service.published_articles(category.id, language), page, per_page
    )
    return render_template(
        "kb/category.html", category=category, articles=articles, language=language
    )


@bp.route("/articles/<int:article_id>")
def article(article_id: int) -> str:
    viewer = _viewer()
    article = service.get_article(db.session, viewer, article_id)
    feedback = service.feedback_of(db.session, viewer, article.id)
    page = render_template(
        "kb/article.html",
        article=article,
        tags=service.tag_list(article),
        related=service.related_articles(db.session, article),
        feedback=feedback,
        form=forms.FeedbackForm(
            helpful="yes" if feedback is None or feedback.helpful else "no",
            comment=feedback.comment if feedback is not None else "",
        ),
        comments=service.feedback_comments(db.session, viewer, article.id) if viewer else [],
    )
    if viewer is not None and article.published:
        service.record_view(db.session, viewer, article)
        db.session.commit()
    return page


@bp.route("/articles/<int:article_id>/feedback", methods=["POST"])
@login_required
def feedback(article_id: int) -> Response:
    form = forms.FeedbackForm()
    if not form.validate_on_submit():
        flash(_("Answer yes or no."), "danger")
        return redirect(url_for("kb.article", article_id=article_id))
    perform(
        lambda: service.give_feedback(
            db.session,
            current_user._get_current_object(),
            article_id,
            form.helpful.data == "yes",
            form.comment.data or "",
        ),
        _("Thank you for your feedback."),
    )
    return redirect(url_for("kb.article", article_id=article_id) + "#feedback")


# --- writing (staff) ---------------------------------------------------------------------------


def _article_values(form: forms.ArticleForm) -> dict[str, Any]:
    return {
        "title": form.title.data or "",
        "body": form.body.data or "",
        "language": form.language.data,
        "category_id": form.category_id.data,
        "tags": form.tags.data or "",
        "published": bool(form.published.data),
    }


@bp.route("/articles/new", methods=["GET", "POST"])
@permission_required(Action.WRITE_KB)
def new_article() -> Any:
    form = forms.ArticleForm()
    form.category_id.choices = _category_choices()
    if request.method == "GET":
        form.language.data = current_locale()
        form.published.data = True
    created: list[Article] = []
    if submit(
        form,
        lambda: created.append(
            service.create_article(db.session, current_user, **_article_values(form))
        ),
    ):
        flash(_("The article was saved."), "success")
        return redirect(url_for("kb.article", article_id=created[0].id))
    return render_form("kb/edit.html", form, article=None)


@bp.route("/articles/<int:article_id>/edit", methods=["GET", "POST"])
@permission_required(Action.WRITE_KB)
def edit_article(article_id: int) -> Any:
    article = service.get_article(db.session, current_user, article_id)
    if request.method == "GET":
        form = forms.ArticleForm(obj=article, body=article.body_source)
    else:
        form = forms.ArticleForm()
    form.category_id.choices = _category_choices()
    if submit(
        form,
        lambda: service.update_article(
            db.session, current_user, article.id, **_article_values(form)
        ),
    ):
        flash(_("The article was saved."), "success")
        return redirect(url_for("kb.article", article_id=article.id))
    return render_form("kb/edit.html", form, article=article)


@bp.route("/articles/<int:article_id>/delete", methods=["POST"])
@permission_required(Action.WRITE_KB)
def delete_article(article_id: int) -> Response:
    perform(
        lambda: service.delete_article(db.session, current_user, article_id),
        _("The article was deleted."),
    )
    return redirect(url_for("kb.home"))


def diff_html(before: str, after: str) -> Markup:
    """A line diff of two Markdown sources, every piece escaped, with <ins>/<del> marks."""
    a, b = before.splitlines(), after.splitlines()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(f'<div class="diff-same">{escape(line) or " "}</div>' for line in a[i1:i2])
            continue
        out.extend(f"<div><del>{escape(line) or ' '}</del></div>" for line in a[i1:i2])
        out.extend(f"<div><ins>{escape(line) or ' '}</ins></div>" for line in b[j1:j2])
    return Markup("\n".join(out))  # noqa: S704 - every line above is escaped  # nosec B704


def _int_arg(name: str) -> int | None:
    return id_arg(request.args.get(name))


@bp.route("/articles/<int:article_id>/versions")
@permission_required(Action.WRITE_KB)
def versions(article_id: int) -> str:
    article, rows = service.versions(db.session, current_user, article_id)
    by_number: dict[int, ArticleVersion] = {v.number: v for v in rows}
    newer_number = _int_arg("b") or article.version
    older_number = _int_arg("a") or max(1, newer_number - 1)
    older, newer = by_number.get(older_number), by_number.get(newer_number)
    if older is None or newer is None:
        abort(404)
    return render_template(
        "kb/versions.html",
        article=article,
        versions=rows,
        older=older,
        newer=newer,
        title_diff=diff_html(older.title, newer.title),
        body_diff=diff_html(older.body_source, newer.body_source),
    )


# --- categories and settings (staff) -------------------------------------------------------


def _render_categories(form: forms.CategoryForm | None = None) -> Any:
    form = form or forms.CategoryForm(formdata=None)
    return render_form(
        "kb/categories.html",
        form,
        categories=service.categories(db.session),
        rename_form=forms.RenameCategoryForm,
    )


@bp.route("/categories", methods=["GET", "POST"])
@permission_required(Action.WRITE_KB)
def categories() -> Any:
    form = forms.CategoryForm()
    if request.method == "POST" and submit(
        form,
        lambda: service.create_category(
            db.session, current_user, form.slug.data, form.name.data, form.name_zh.data or ""
        ),
    ):
        flash(_("The category was added."), "success")
        return redirect(url_for("kb.categories"))
    return _render_categories(form if request.method == "POST" else None)


@bp.route("/categories/<int:category_id>/rename", methods=["POST"])
@permission_required(Action.WRITE_KB)
def rename_category(category_id: int) -> Any:
    form = forms.RenameCategoryForm()
    if not form.validate_on_submit():
        flash(_("Enter a name of at most 120 characters."), "danger")
        return redirect(url_for("kb.categories"))
    perform(
        lambda: service.rename_category(
            db.session, current_user, category_id, form.name.data, form.name_zh.data or ""
        ),
        _("The category was renamed."),
    )
    return redirect(url_for("kb.categories"))


@bp.route("/categories/<int:category_id>/move", methods=["POST"])
@permission_required(Action.WRITE_KB)
def move_category(category_id: int) -> Response:
    direction = -1 if request.form.get("direction") == "up" else 1
    perform(
        lambda: service.move_category(db.session, current_user, category_id, direction),
        _("The order was saved."),
    )
    return redirect(url_for("kb.categories"))


@bp.route("/settings", methods=["GET", "POST"])
@permission_required(Action.WRITE_KB)
def settings() -> Any:
    current = service.kb_settings(db.session)
    form = forms.SettingsForm(
        data=None
        if request.method == "POST"
        else {"auto_propose": current.auto_propose, "min_helpful": current.min_helpful}
    )
    if submit(
        form,
        lambda: service.save_kb_settings(
            db.session, current_user, bool(form.auto_propose.data), form.min_helpful.data
        ),
    ):
        flash(_("The settings were saved."), "success")
        return redirect(url_for("kb.settings"))
    return render_form("kb/settings.html", form)


# --- promotion (staff) ------------------------------------------------------------------------


@bp.route("/promote/<int:answer_id>", methods=["POST"])
@permission_required(Action.WRITE_KB)
def promote(answer_id: int) -> Response:
    """One click from the question page. An answer that cannot be promoted answers 4xx with
    the reason (the app's DomainError handler rolls back and shows it)."""
    promotion = service.promote_answer(db.session, current_user, answer_id)
    db.session.commit()
    if promotion.created:
        flash(_("The answer is now a knowledge-base article."), "success")
    else:
        flash(_("This answer is already an article."), "info")
    return redirect(url_for("kb.article", article_id=promotion.article.id))
