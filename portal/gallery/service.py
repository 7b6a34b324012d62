"""Gallery rules: sharing templates and versions, rating, reviewing, downloading, listing.

Every function takes the session and the acting user, checks permission and invariants,
flushes and records activity; the caller commits once. The bytes arrive already checked and
stored (``uploads.receive``); a service only links rows to them. Counters shown in the list
(ratings, downloads, organizations) are recomputed from their rows in SQL on each change,
never read-added-written in Python; "one rating per user" is the unique constraint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, literal, or_, select, true, update
from sqlalchemy.orm import Session, joinedload, selectinload

from cs_metrics.models import AccountProfile
from moderation import service as moderation
from portal.core.activity import record_activity, register_verbs
from portal.core.bulk import dialect_insert
from portal.core.db import utcnow
from portal.core.errors import Invalid, NotFound, PermissionDenied
from portal.core.html import render_markdown
from portal.core.identity import User
from portal.core.mail import Mail, queue_mails
from portal.core.notifications import notify
from portal.core.pagination import Page
from portal.core.storage import Storage, delete_unreferenced
from portal.core.text import checked_text, title_text
from portal.core.text import parse_tags as core_parse_tags
from portal.core.urls import external_url
from portal.gallery import manifest as manifests
from portal.gallery.models import (
    AuthorDigest,
    Category,
    Download,
    Rating,
    Review,
    Template,
    TemplateTag,
    TemplateVersion,
    Visibility,
)
from portal.gallery.uploads import Upload
from portal.search.index import schedule

TEMPLATE_KIND = "template"
VERSION_KIND = "template_version"
REVIEW_KIND = "template_review"

register_verbs(
    "template.uploaded",
    "template.published",
    "template.downloaded",
    "template.rated",
    "template.reviewed",
)

TITLE_MIN, TITLE_MAX = 5, 200
MAX_DESCRIPTION = 20_000
MAX_CHANGELOG = 10_000
MAX_REVIEW = 5_000
MAX_TAGS = 8
DIGEST_MAIL = "gallery_digest"  # the mail topic of the weekly author digest


def render_description(text: str) -> str:
    """A template's description and a version's changelog may show images from the
    portal's uploads (what the report looks like); reviews are text."""
    return render_markdown(text, allow_images=True)


POPULAR_DAYS = 30
# Bayesian average: every template starts with PRIOR_WEIGHT votes of PRIOR_MEAN stars, so one
# 5-star vote (3.33) ranks below a hundred votes averaging 4.8 (4.71). A fixed prior keeps a
# template's score a function of its own rows: no global recomputation as others are rated.
PRIOR_MEAN = 3.0
PRIOR_WEIGHT = 5

CATEGORIES: dict[str, Any] = {
    Category.REPORT: _l("Report"),
    Category.DASHBOARD: _l("Dashboard"),
    Category.SOLUTION: _l("Industry solution"),
}
INDUSTRIES: dict[str, Any] = {
    "retail": _l("Retail"),
    "manufacturing": _l("Manufacturing"),
    "finance": _l("Financial services"),
    "healthcare": _l("Healthcare"),
    "saas": _l("Software and SaaS"),
    "logistics": _l("Logistics"),
    "public": _l("Public sector"),
    "education": _l("Education"),
    "general": _l("Any industry"),
}
LICENSES = ("CC-BY-4.0", "CC0-1.0", "MIT", "Apache-2.0", "proprietary-shared")
VISIBILITIES: dict[str, Any] = {
    Visibility.PUBLIC: _l("Everyone"),
    Visibility.ORGANIZATION: _l("My organization only"),
}
SORTS = ("popular", "top", "newest")


# --- who sees what -------------------------------------------------------------------------


def _signed_in(user: User | None) -> bool:
    return user is not None and bool(getattr(user, "is_authenticated", False))


def is_moderator(user: User | None) -> bool:
    return _signed_in(user) and moderation.is_moderator(user)


def visibility_clause(viewer: User | None) -> Any:
    """Templates a viewer may know exist: public ones, their org's own, all for staff."""
    if not _signed_in(viewer):
        return Template.visibility == Visibility.PUBLIC
    if viewer.is_staff:  # type: ignore[union-attr]
        return true()
    return or_(
        Template.visibility == Visibility.PUBLIC,
        Template.organization_id == viewer.organization_id,  # type: ignore[union-attr]
    )


def can_see(viewer: User | None, template: Template) -> bool:
    if _signed_in(viewer) and (
        viewer.is_staff or viewer.organization_id == template.organization_id
    ):  # type: ignore[union-attr]
        visible = True
    else:
        visible = template.visibility == Visibility.PUBLIC
    if not visible:
        return False
    return template.listed or can_manage(viewer, template) or is_moderator(viewer)


def can_manage(user: User | None, template: Template) -> bool:
    """The author, or staff: who may publish new versions."""
    return _signed_in(user) and (user.id == template.author_id or user.is_staff)  # type: ignore[union-attr]


def get_template(session: Session, viewer: User | None, template_id: int) -> Template:
    """The template if ``viewer`` may see it, else NotFound (never "forbidden": another
    organization's private template does not exist for them)."""
    template = session.get(Template, template_id)
    if template is None or not can_see(viewer, template):
        raise NotFound(str(_l("This template does not exist or is not visible to you.")))
    return template


# --- input --------------------------------------------------------------------------------


def _title(value: str) -> str:
    return title_text(value, TITLE_MIN, TITLE_MAX)


def _text(value: str | None, limit: int, field_name: str) -> str:
    return checked_text(value, limit, field_name, required=False)


def checked_template(title: str, description: str) -> tuple[str, str]:
    """A template's title and description as stored, or Invalid naming the field: the
    author's rules, applied to a moderator's edit too."""
    return _title(title), _text(description, MAX_DESCRIPTION, "description")


def checked_changelog(changelog: str) -> str:
    """A new version's changelog: required, within the limit."""
    changelog = _text(changelog, MAX_CHANGELOG, "changelog")
    if not changelog:
        raise Invalid(str(_l("Say what changed in this version.")), field="changelog")
    return changelog


def checked_review(body: str) -> str:
    body = _text(body, MAX_REVIEW, "body")
    if not body:
        raise Invalid(str(_l("Write a few words.")), field="body")
    return body


def parse_tags(value: str | Iterable[str] | None) -> list[str]:
    """Tags as typed: at most eight on a template."""
    return core_parse_tags(value, MAX_TAGS)


def _choice(
    value: str | None, allowed: Iterable[str], field_name: str, default: str | None = None
) -> str:
    value = (value or "").strip() or default
    if value not in set(allowed):
        raise Invalid(str(_l("Choose one of the listed values.")), field=field_name)
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class VersionFields:
    version: str
    key: int
    manifest: dict[str, Any]
    product_range: str | None
    product_min: int | None
    product_max: int | None


def version_fields(
    upload: Upload, version: str | None, product_range: str | None, title: str
) -> VersionFields:
    """The version number and product range, from the form or the upload's manifest.

    A manifest (a .json upload, or a bundle's manifest.json) is the source of truth; a form
    value that disagrees with it is an error on that field rather than a silent choice."""
    given = (version or "").strip()
    if upload.manifest is not None:
        stated = upload.manifest["version"]
        if given and manifests.normalize_version(given) != manifests.normalize_version(stated):
            raise Invalid(str(_l("The manifest says version %(v)s.", v=stated)), field="version")
        given = stated
        range_text = upload.manifest["requires"]["product"]
        if product_range and product_range.strip() and product_range.strip() != range_text:
            raise Invalid(
                str(_l("The manifest requires product %(r)s.", r=range_text)),
                field="product_range",
            )
        manifest = dict(upload.manifest)
    else:
        range_text = (product_range or "").strip() or "*"
        manifest = {"name": title, "version": given, "requires": {"product": range_text}}
    normalized = manifests.normalize_version(given)
    if normalized is None:
        raise Invalid(str(_l("Use a semantic version such as 1.0.0 or 1.1.")), field="version")
    try:
        low, high = manifests.parse_range(range_text)
    except ValueError as error:
        field_name = "file" if upload.manifest is not None else "product_range"
        raise Invalid(
            str(_l("Write the product range like \u201c>=5.2, <6\u201d or \u201c^5.2\u201d.")),
            field=field_name,
        ) from error
    manifest["version"] = normalized
    return VersionFields(
        version=normalized,
        key=manifests.version_key(manifests.parse_version(normalized)),  # type: ignore[arg-type]
        manifest=manifest,
        product_range=range_text,
        product_min=low,
        product_max=high,
    )


def _new_version(
    session: Session,
    author: User,
    template: Template,
    upload: Upload,
    fields: VersionFields,
    changelog: str,
) -> TemplateVersion:
    newest = session.scalar(
        select(func.max(TemplateVersion.version_key)).where(
            TemplateVersion.template_id == template.id
        )
    )
    if newest is not None and fields.key <= newest:
        raise Invalid(str(_l("The new version must be higher than the last one.")), field="version")
    version = TemplateVersion(
        template_id=template.id,
        author_id=author.id,
        version=fields.version,
        version_key=fields.key,
        changelog_source=changelog,
        changelog_html=render_description(changelog),
        manifest=fields.manifest,
        product_range=fields.product_range,
        product_min=fields.product_min,
        product_max=fields.product_max,
        file_key=upload.key,
        file_sha256=upload.sha256,
        file_size=upload.size,
        file_name=upload.filename,
        file_kind=upload.kind,
        preview={
            "kind": upload.preview.kind,
            "rows": upload.preview.rows,
            "files": upload.preview.files,
            "truncated": upload.preview.truncated,
        },
        published=False,
    )
    session.add(version)
    session.flush()
    return version


def _require_member(user: User | None) -> User:
    if not _signed_in(user):
        raise PermissionDenied(str(_l("Sign in to do this.")))
    if not user.is_active or user.organization_id is None:  # type: ignore[union-attr]
        raise PermissionDenied(str(_l("Your account cannot do this.")))
    return user  # type: ignore[return-value]


# --- sharing -----------------------------------------------------------------------------


def share(
    session: Session,
    author: User,
    *,
    title: str,
    description: str,
    category: str,
    industry: str | None,
    tags: str | Iterable[str] | None,
    license: str | None,
    visibility: str,
    upload: Upload,
    version: str | None,
    changelog: str = "",
    product_range: str | None = None,
) -> Template:
    """A new template with its first version, one moderation item for both: held unless the
    author is trust level 3 or staff (the moderation rules' upload threshold)."""
    author = _require_member(author)
    title, description = checked_template(title, description)
    template = Template(
        organization_id=author.organization_id,
        author_id=author.id,
        title=title,
        description_source=description,
        description_html=render_description(description),
        category=_choice(category, CATEGORIES, "category", Category.REPORT),
        industry=_choice(industry, INDUSTRIES, "industry", "general"),
        license=_choice(license, LICENSES, "license", LICENSES[0]),
        visibility=_choice(visibility, VISIBILITIES, "visibility", Visibility.PUBLIC),
        tag_rows=[TemplateTag(tag=tag) for tag in sorted(parse_tags(tags))],
    )
    fields = version_fields(upload, version, product_range, title)
    changelog = _text(changelog, MAX_CHANGELOG, "changelog")
    session.add(template)
    session.flush()
    _new_version(session, author, template, upload, fields, changelog)
    record_activity(
        session,
        author,
        author.organization,
        "template.uploaded",
        template,
        {"template_id": template.id, "version": fields.version},
    )
    moderation.submit(
        session,
        TEMPLATE_KIND,
        template,
        author,
        f"{title}\n\n{description}",
        has_upload=True,
    )
    return template


def add_version(
    session: Session,
    author: User,
    template_id: int,
    *,
    upload: Upload,
    version: str | None,
    changelog: str,
    product_range: str | None = None,
) -> TemplateVersion:
    """A new version of a template the author manages; moderated like the first."""
    author = _require_member(author)
    template = get_template(session, author, template_id)
    if not can_manage(author, template):
        raise PermissionDenied(str(_l("Only the template's author can publish versions.")))
    changelog = checked_changelog(changelog)
    fields = version_fields(upload, version, product_range, template.title)
    row = _new_version(session, author, template, upload, fields, changelog)
    record_activity(
        session,
        author,
        author.organization,
        "template.uploaded",
        template,
        {"template_id": template.id, "version": row.version},
    )
    moderation.submit(
        session,
        VERSION_KIND,
        row,
        author,
        f"{template.title} {row.version}\n\n{changelog}",
        has_upload=True,
    )
    return row


def refresh_listing(session: Session, template: Template) -> None:
    """The current version is the highest published one; the template is listed when it and
    such a version are published."""
    session.flush()
    current = session.scalar(
        select(TemplateVersion)
        .where(TemplateVersion.template_id == template.id, TemplateVersion.published.is_(True))
        .order_by(TemplateVersion.version_key.desc())
        .limit(1)
    )
    template.current_version_id = current.id if current else None
    template.latest_version = current.version if current else None
    template.product_range = current.product_range if current else None
    template.product_min = current.product_min if current else None
    template.product_max = current.product_max if current else None
    template.listed = bool(template.published and current is not None)
    template.updated_at = utcnow()
    session.flush()
    schedule(session, TEMPLATE_KIND, template.id)


def set_template_visible(session: Session, template: Template, visible: bool) -> None:
    """Moderation's answer for a template: its first version follows it."""
    template.published = visible
    if visible:
        first = session.scalar(
            select(TemplateVersion)
            .where(TemplateVersion.template_id == template.id)
            .order_by(TemplateVersion.id)
            .limit(1)
        )
        if (
            first is not None
            and not first.published
            and moderation.item_id(session, VERSION_KIND, first.id) is None
        ):
            first.published = True
    refresh_listing(session, template)


def set_version_visible(session: Session, version: TemplateVersion, visible: bool) -> None:
    version.published = visible
    refresh_listing(session, version.template)


def announce(session: Session, template: Template, version: TemplateVersion | None) -> None:
    """Activity for a publication (CS reads it): the template and the version number."""
    author = template.author
    record_activity(
        session,
        author,
        template.organization,
        "template.published",
        template,
        {"template_id": template.id, "version": version.version if version else None},
    )


# --- ratings and reviews ---------------------------------------------------------------------


def bayes(rating_sum: int, rating_count: int) -> float:
    return (PRIOR_MEAN * PRIOR_WEIGHT + rating_sum) / (PRIOR_WEIGHT + rating_count)


def _listed_for(session: Session, user: User, template_id: int) -> Template:
    template = get_template(session, user, template_id)
    if not template.listed:
        raise NotFound(str(_l("This template does not exist or is not visible to you.")))
    return template


def rate(session: Session, user: User, template_id: int, stars: int) -> Template:
    """Set (or change) the user's stars; the template's sum, count and score are recomputed
    from the ratings in one statement."""
    user = _require_member(user)
    if not isinstance(stars, int) or isinstance(stars, bool) or not 1 <= stars <= 5:
        raise Invalid(str(_l("Give 1 to 5 stars.")), field="stars")
    template = _listed_for(session, user, template_id)
    if template.author_id == user.id:
        raise PermissionDenied(str(_l("You cannot rate your own template.")))
    now = utcnow()
    statement = dialect_insert(session, Rating).values(
        template_id=template.id,
        user_id=user.id,
        organization_id=user.organization_id,
        stars=stars,
        created_at=now,
        updated_at=now,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["template_id", "user_id"],
            set_={"stars": stars, "updated_at": now},
        )
    )
    totals = select(func.count(Rating.id), func.coalesce(func.sum(Rating.stars), 0)).where(
        Rating.template_id == template.id
    )
    count, total = session.execute(totals).one()
    session.execute(
        update(Template)
        .where(Template.id == template.id)
        .values(rating_count=count, rating_sum=total, bayes_score=bayes(int(total), int(count)))
        .execution_options(synchronize_session=False)
    )
    session.refresh(template)
    record_activity(
        session,
        user,
        user.organization,
        "template.rated",
        template,
        {"template_id": template.id, "stars": stars},
    )
    return template


def my_rating(session: Session, user: User | None, template_id: int) -> int | None:
    if not _signed_in(user):
        return None
    return session.scalar(
        select(Rating.stars).where(Rating.template_id == template_id, Rating.user_id == user.id)  # type: ignore[union-attr]
    )


def review(session: Session, user: User, template_id: int, body: str) -> Review:
    """Write or rewrite the user's review; moderated as any post."""
    user = _require_member(user)
    template = _listed_for(session, user, template_id)
    body = checked_review(body)
    row = session.scalar(
        select(Review).where(Review.template_id == template.id, Review.user_id == user.id)
    )
    if row is None:
        row = Review(template_id=template.id, user_id=user.id, organization_id=user.organization_id)
        session.add(row)
    row.body_source = body
    row.body_html = render_markdown(body)
    row.published = False
    row.updated_at = utcnow()
    session.flush()
    moderation.submit(session, REVIEW_KIND, row, user, body)
    record_activity(
        session,
        user,
        user.organization,
        "template.reviewed",
        template,
        {"template_id": template.id},
    )
    return row


# --- downloads -----------------------------------------------------------------------------


def download(
    session: Session, user: User | None, template_id: int, version_id: int | None = None
) -> TemplateVersion:
    """The version to send (the current one unless named), after recording the download:
    one row per download, the template's counters recomputed, and ``template.downloaded``
    in the activity log for CS."""
    if not _signed_in(user):
        raise PermissionDenied(str(_l("Sign in to download templates.")))
    template = get_template(session, user, template_id)
    if version_id is None:
        current = template.current_version_id
        version = session.get(TemplateVersion, current) if current else None
    else:
        version = session.get(TemplateVersion, version_id)
        if version is not None and version.template_id != template.id:
            version = None
    may_preview = can_manage(user, template) or is_moderator(user)
    if version is None or not (version.published or may_preview):
        raise NotFound(str(_l("This version does not exist or is not published yet.")))
    if not version.published:
        return version  # an author or moderator checking a held file: not an adoption
    session.add(
        Download(
            template_id=template.id,
            version_id=version.id,
            user_id=user.id,  # type: ignore[union-attr]
            organization_id=user.organization_id,  # type: ignore[union-attr]
        )
    )
    session.flush()
    downloads, orgs = session.execute(
        select(func.count(Download.id), func.count(func.distinct(Download.organization_id))).where(
            Download.template_id == template.id
        )
    ).one()
    session.execute(
        update(Template)
        .where(Template.id == template.id)
        .values(download_count=downloads, org_count=orgs)
        .execution_options(synchronize_session=False)
    )
    record_activity(
        session,
        user,
        user.organization,
        "template.downloaded",
        template,  # type: ignore[union-attr]
        {"template_id": template.id, "version": version.version},
    )
    return version


# --- lists ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    sort: str = "popular"
    category: str | None = None
    industry: str | None = None
    tag: str | None = None
    compatible: bool = False


@dataclass(frozen=True)
class ListRow:
    template: Template
    organization_name: str
    author_name: str | None
    recent_orgs: int


def org_product_version(session: Session, viewer: User | None) -> str | None:
    """The viewer's organization's product version, as CS records it on the account."""
    if not _signed_in(viewer) or viewer.organization_id is None:  # type: ignore[union-attr]
        return None
    return session.scalar(
        select(AccountProfile.product_version).where(
            AccountProfile.organization_id == viewer.organization_id  # type: ignore[union-attr]
        )
    )


def list_statement(
    viewer: User | None, filters: ListFilters, product_key: int | None = None
) -> Select[Any]:
    from portal.core.identity import Organization

    statement = (
        select(Template, Organization.name, User.display_name)
        .join(Organization, Organization.id == Template.organization_id)
        .outerjoin(User, User.id == Template.author_id)
        .where(Template.listed.is_(True), visibility_clause(viewer))
        .options(selectinload(Template.tag_rows))
    )
    recent_orgs: Any = None
    if filters.sort == "popular":
        # Distinct organizations downloading in the window, aggregated once per page view
        # from the (template_id, created_at) index and hash-joined.
        since = utcnow() - timedelta(days=POPULAR_DAYS)
        recent = (
            select(
                Download.template_id.label("template_id"),
                func.count(func.distinct(Download.organization_id)).label("orgs"),
            )
            .where(Download.created_at >= since)
            .group_by(Download.template_id)
            .subquery()
        )
        recent_orgs = func.coalesce(recent.c.orgs, 0)
        statement = statement.outerjoin(recent, recent.c.template_id == Template.id).add_columns(
            recent_orgs
        )
    else:
        statement = statement.add_columns(literal(0))
    if filters.category:
        statement = statement.where(Template.category == filters.category)
    if filters.industry:
        statement = statement.where(Template.industry == filters.industry)
    if filters.tag:
        statement = statement.where(
            select(TemplateTag.tag)
            .where(TemplateTag.template_id == Template.id, TemplateTag.tag == filters.tag)
            .exists()
        )
    if filters.compatible:
        if product_key is None:
            statement = statement.where(Template.id.is_(None))  # nothing is known compatible
        else:
            statement = statement.where(
                or_(Template.product_min.is_(None), Template.product_min <= product_key),
                or_(Template.product_max.is_(None), Template.product_max > product_key),
            )
    if filters.sort == "newest":
        order = [Template.created_at.desc(), Template.id.desc()]
    elif filters.sort == "top":
        order = [Template.bayes_score.desc(), Template.rating_count.desc(), Template.id.desc()]
    else:
        order = [recent_orgs.desc(), Template.org_count.desc(), Template.id.desc()]
    return statement.order_by(*order)


def list_templates(
    session: Session, viewer: User | None, filters: ListFilters, page: int, per_page: int
) -> Page[ListRow]:
    """One page of the gallery in a constant number of statements (the rows with the total,
    the tags, and the viewer's product version when filtering by it)."""
    if filters.sort not in SORTS:
        raise Invalid(str(_l("Unknown sort order.")), field="sort")
    key = (
        manifests.product_key(org_product_version(session, viewer)) if filters.compatible else None
    )
    statement = list_statement(viewer, filters, key)
    # As ``paginate``, but keeping every column of the row: the total rides along.
    total = select(func.count()).select_from(statement.order_by(None).subquery()).scalar_subquery()
    rows = session.execute(
        statement.add_columns(total.label("total_rows"))
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    if rows:
        total_rows = rows[0][-1]
    else:
        total_rows = session.scalar(
            select(func.count()).select_from(statement.order_by(None).subquery())
        )
    items = [
        ListRow(template=t, organization_name=org, author_name=author, recent_orgs=int(recent))
        for t, org, author, recent, _total in rows
    ]
    return Page(items=items, page=page, per_page=per_page, total=total_rows or 0)


@dataclass(frozen=True)
class TemplateView:
    template: Template
    versions: list[TemplateVersion]
    reviews: list[Review]
    my_rating: int | None
    product_version: str | None
    compatible: bool | None
    can_manage: bool
    # The viewer's "Flag" control per (kind, id): open, or already flagged (see moderation).
    flags: dict[tuple[str, int], str] = field(default_factory=dict)


def template_view(session: Session, viewer: User | None, template_id: int) -> TemplateView:
    template = get_template(session, viewer, template_id)
    manage = can_manage(viewer, template) or is_moderator(viewer)
    versions = session.scalars(
        select(TemplateVersion)
        .where(
            TemplateVersion.template_id == template.id,
            true() if manage else TemplateVersion.published.is_(True),
        )
        .order_by(TemplateVersion.version_key.desc())
    ).all()
    reviews = session.scalars(
        select(Review)
        .where(Review.template_id == template.id, Review.published.is_(True))
        .options(joinedload(Review.user))
        .order_by(Review.updated_at.desc())
        .limit(50)
    ).all()
    product = org_product_version(session, viewer)
    compatible = (
        manifests.compatible(product, template.product_min, template.product_max)
        if product
        else None
    )
    return TemplateView(
        template=template,
        versions=list(versions),
        reviews=list(reviews),
        my_rating=my_rating(session, viewer, template.id),
        product_version=product,
        compatible=compatible,
        can_manage=can_manage(viewer, template),
        flags=moderation.flag_states(
            session,
            viewer,
            [
                (TEMPLATE_KIND, template.id),
                *((VERSION_KIND, v.id) for v in versions if v.published),
                *((REVIEW_KIND, r.id) for r in reviews),
            ],
        ),
    )


def adoption_by_org(session: Session, organization_id: int) -> list[tuple[str, int, datetime]]:
    """What CS reads per account: (template title, downloads, last download)."""
    rows = session.execute(
        select(Template.title, func.count(Download.id), func.max(Download.created_at))
        .join(Template, Template.id == Download.template_id)
        .where(Download.organization_id == organization_id)
        .group_by(Template.id, Template.title)
        .order_by(func.max(Download.created_at).desc())
    ).all()
    return [(title, int(count), last) for title, count, last in rows]


# --- author digest -------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestLine:
    template_id: int
    title: str
    downloads: int
    organizations: int
    reviews: int


def author_digest(session: Session, author_id: int, since: datetime) -> list[DigestLine]:
    downloads = (
        select(
            Download.template_id,
            func.count(Download.id).label("n"),
            func.count(func.distinct(Download.organization_id)).label("orgs"),
        )
        .where(Download.created_at > since)
        .group_by(Download.template_id)
        .subquery()
    )
    reviews = (
        select(Review.template_id, func.count(Review.id).label("n"))
        .where(Review.published.is_(True), Review.updated_at > since)
        .group_by(Review.template_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Template.id,
            Template.title,
            func.coalesce(downloads.c.n, 0),
            func.coalesce(downloads.c.orgs, 0),
            func.coalesce(reviews.c.n, 0),
        )
        .outerjoin(downloads, downloads.c.template_id == Template.id)
        .outerjoin(reviews, reviews.c.template_id == Template.id)
        .where(
            Template.author_id == author_id,
            or_(downloads.c.n.is_not(None), reviews.c.n.is_not(None)),
        )
        .order_by(Template.id)
    ).all()
    return [DigestLine(*row) for row in rows]


def send_author_digests(session: Session, now: datetime | None = None) -> int:
    """One notification and one mail per author with new downloads or reviews since their
    last digest (first digest: the last day). Idempotent: re-running sends nothing new."""
    now = now or utcnow()
    authors = session.scalars(
        select(User).where(
            User.id.in_(select(Template.author_id).where(Template.listed.is_(True)).distinct())
        )
    ).all()
    mails: list[Mail] = []
    for author in authors:
        state = session.get(AuthorDigest, author.id)
        since = state.sent_through if state is not None else now - timedelta(days=1)
        lines = author_digest(session, author.id, since)
        if state is None:
            state = AuthorDigest(user_id=author.id, sent_through=now)
            session.add(state)
        state.sent_through = now
        if not lines:
            continue
        downloads = sum(line.downloads for line in lines)
        reviews = sum(line.reviews for line in lines)
        message = _l(
            "Your templates: %(downloads)d new downloads and %(reviews)d new reviews.",
            downloads=downloads,
            reviews=reviews,
        )
        link = external_url("gallery.mine")
        notify(session, author, "gallery_digest", message, link)
        mails.append(
            Mail(
                author.email,
                _l("Your templates this week"),
                "gallery_digest",
                author.locale,
                DIGEST_MAIL,
                {"user": author, "lines": lines, "link": link},
            )
        )
    queue_mails(session, mails)
    session.flush()
    return len(mails)


def my_templates(session: Session, user: User) -> Sequence[Template]:
    user = _require_member(user)
    return session.scalars(
        select(Template).where(Template.author_id == user.id).order_by(Template.id.desc())
    ).all()


def sweep_unreferenced_files(
    session: Session, storage: Storage, min_age: timedelta = timedelta(hours=1)
) -> int:
    """Delete stored files no template version refers to any more (their template or its
    organization was deleted; a file shared by identical uploads stays while one refers to
    it). Files younger than ``min_age`` stay: an upload stores its file before its row
    commits."""
    referenced = set(session.scalars(select(TemplateVersion.file_key).distinct()))
    return delete_unreferenced(storage, referenced, min_age)
