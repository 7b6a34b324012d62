"""Templates, versions and reviews as moderatable kinds, registered at app start.

A moderator decides on what the file *is*: the item's preview shows the manifest summary and
the first rows of a CSV or sheet (or the manifest fields of a JSON), every cell escaped and
formula-like text neutralized when the upload was checked.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from moderation.registry import SUMMARY_CHARS, ModeratableKind, register_kind, visibility_hooks
from portal.core.html import html_to_plain_text, render_markdown
from portal.core.urls import external_url
from portal.gallery import service
from portal.gallery.models import Review, Template, TemplateVersion


def _first_version(template: Template) -> TemplateVersion | None:
    return min(template.versions, key=lambda v: v.id) if template.versions else None


def render_template_item(template: Template) -> str:
    return render_template(
        "gallery/_moderation_preview.html", template=template, version=_first_version(template)
    )


def render_version_item(version: TemplateVersion) -> str:
    return render_template(
        "gallery/_moderation_preview.html", template=version.template, version=version
    )


def _template_published(session: Session, template: Template) -> None:
    service.set_template_visible(session, template, True)
    current = (
        session.get(TemplateVersion, template.current_version_id)
        if template.current_version_id
        else None
    )
    service.announce(session, template, current)


def _version_published(session: Session, version: TemplateVersion) -> None:
    service.set_version_visible(session, version, True)
    service.announce(session, version.template, version)


def _edit_template(_session: Session, template: Template, text: str) -> None:
    """Moderation edits the submitted "title\\n\\ndescription" text: split it back."""
    title, _sep, body = text.partition("\n\n")
    template.title = " ".join(title.split())[:200] or template.title
    template.description_source = body
    template.description_html = service.render_description(body)


def _edit_version(_session: Session, version: TemplateVersion, text: str) -> None:
    _head, _sep, body = text.partition("\n\n")
    version.changelog_source = body
    version.changelog_html = service.render_description(body)


def _check_template(_template: Template, text: str) -> str:
    """A moderator's edit of "title\n\ndescription", checked as the author's template was."""
    title, _sep, body = text.partition("\n\n")
    return "{}\n\n{}".format(*service.checked_template(title, body))


def _check_version(version: TemplateVersion, text: str) -> str:
    """Only the changelog of "title version\n\nchangelog" is the author's: it is checked as
    theirs was, and the heading is kept as it was submitted."""
    _head, _sep, body = text.partition("\n\n")
    changelog = service.checked_changelog(body)
    return f"{version.template.title} {version.version}\n\n{changelog}"


def _edit_review(_session: Session, row: Review, text: str) -> None:
    row.body_source = text
    row.body_html = render_markdown(text)


def _review_shown(session: Session, row: Review, visible: bool) -> None:
    row.published = visible
    session.flush()


def _template_url(template: Template) -> str:
    return external_url("gallery.template", template_id=template.id)


def _visible(template: Template, user: Any) -> bool:
    return service.can_see(user, template) or service.is_moderator(user)


def register() -> None:
    register_kind(
        ModeratableKind(
            name=service.TEMPLATE_KIND,
            label=_l("template"),
            load=lambda session, object_id: session.get(Template, object_id),
            render=render_template_item,
            summarize=lambda t: (
                f"{t.title}: {html_to_plain_text(t.description_html, SUMMARY_CHARS)}"
            ),
            url=_template_url,
            visible_to=_visible,
            **{
                **visibility_hooks(service.set_template_visible),
                "on_publish": _template_published,
                "on_restore": _template_published,
            },
            apply_edit=_edit_template,
            validate_edit=_check_template,
        )
    )
    register_kind(
        ModeratableKind(
            name=service.VERSION_KIND,
            label=_l("template version"),
            load=lambda session, object_id: session.get(TemplateVersion, object_id),
            render=render_version_item,
            summarize=lambda v: (
                f"{v.template.title} {v.version}: {html_to_plain_text(v.changelog_html, SUMMARY_CHARS)}"
            ),
            url=lambda v: _template_url(v.template),
            visible_to=lambda v, user: _visible(v.template, user),
            **{
                **visibility_hooks(service.set_version_visible),
                "on_publish": _version_published,
                "on_restore": _version_published,
            },
            apply_edit=_edit_version,
            validate_edit=_check_version,
        )
    )
    register_kind(
        ModeratableKind(
            name=service.REVIEW_KIND,
            label=_l("template review"),
            load=lambda session, object_id: session.get(Review, object_id),
            render=lambda row: row.body_html,
            summarize=lambda row: html_to_plain_text(row.body_html, SUMMARY_CHARS),
            url=lambda row: _template_url(row.template),
            visible_to=lambda row, user: _visible(row.template, user),
            **visibility_hooks(_review_shown),
            apply_edit=_edit_review,
            validate_edit=lambda _row, text: service.checked_review(text),
        )
    )
