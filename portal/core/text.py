"""Text as people send it, made storable: every free-text field passes through ``clean_text``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l

from portal.core.errors import Invalid

# NUL and the other C0/C1 controls except tab, newline and carriage return: PostgreSQL refuses
# NUL outright, and the rest only hide text from readers and moderators.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Drop control characters and replace lone surrogates (undecodable input) with U+FFFD."""
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", value))


# --- validating what people typed: one set of rules and messages for every feature ---------

# A tag: lower-case letters (Latin or CJK), digits and + # . - _, at most 40 characters.
TAG_PATTERN = re.compile(r"^[a-z0-9\u4e00-\u9fff][a-z0-9\u4e00-\u9fff+#._-]{0,39}$")


def title_text(value: str | None, min_len: int, max_len: int, field: str = "title") -> str:
    """A one-line title, inner whitespace collapsed, of ``min_len`` to ``max_len`` characters."""
    title = " ".join(clean_text(value or "").split())
    if not min_len <= len(title) <= max_len:
        raise Invalid(
            str(_l("Write a title of %(min)d to %(max)d characters.", min=min_len, max=max_len)),
            field=field,
        )
    return title


def checked_text(value: str | None, limit: int, field: str, required: bool = True) -> str:
    """Free text (Markdown sources, comments, responses): cleaned, stripped, within ``limit``."""
    text = clean_text(value or "").strip()
    if required and not text:
        raise Invalid(str(_l("This field is required.")), field=field)
    if len(text) > limit:
        raise Invalid(str(_l("Use at most %(n)d characters.", n=limit)), field=field)
    return text


def parse_tags(value: str | Iterable[str] | None, max_tags: int) -> list[str]:
    """Tags as typed ("SSO, dashboards", "报表；导出" or a list): lower-cased, '#' dropped,
    de-duplicated, at most ``max_tags``; a bad one is named in the message."""
    if value is None:
        return []
    parts = re.split(r"[\s,，;；]+", value) if isinstance(value, str) else list(value)
    tags: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise Invalid(str(_l("Tags must be words.")), field="tags")
        tag = clean_text(part).strip().lower().lstrip("#")
        if not tag or tag in tags:
            continue
        if not TAG_PATTERN.match(tag):
            raise Invalid(
                str(
                    _l(
                        "“%(tag)s” is not a valid tag: use letters, digits, + # . - _ "
                        "and at most 40 characters.",
                        tag=tag[:40],
                    )
                ),
                field="tags",
            )
        tags.append(tag)
    if len(tags) > max_tags:
        raise Invalid(str(_l("Use at most %(n)d tags.", n=max_tags)), field="tags")
    return tags


# The vendor's product areas, shared by questions, ideas and templates.
PRODUCT_AREAS: dict[str, Any] = {
    "dashboards": _l("Dashboards"),
    "reports": _l("Reports and templates"),
    "data-import": _l("Data import"),
    "sso": _l("Sign-in and SSO"),
    "permissions": _l("Permissions"),
    "api": _l("API and integrations"),
    "alerts": _l("Alerts and subscriptions"),
    "admin": _l("Administration"),
}


def product_area(value: str | None) -> str | None:
    if not value:
        return None
    if value not in PRODUCT_AREAS:
        raise Invalid(str(_l("Choose a product area from the list.")), field="product_area")
    return value
