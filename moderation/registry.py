"""Moderatable kinds: features register theirs at app start; moderation never imports them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

# The longest summary the queue shows and stores; ``summarize`` need not read further.
SUMMARY_CHARS = 300


def _nothing(_session: Session, _obj: Any) -> None:
    return None


@dataclass(frozen=True)
class ModeratableKind:
    """What moderation needs to know about one kind of content.

    ``load`` returns the content object (or None when it is gone); ``render`` returns the
    sanitized HTML exactly as readers will see it; ``summarize`` one line of plain text, of
    which the first :data:`SUMMARY_CHARS` are kept (read it from the stored HTML, not by
    rendering the source again); the ``on_*`` hooks change the content's
    own visibility when moderation changes state; ``apply_edit`` stores a moderator's edit
    (and the rules' censored text).

    ``validate_edit(obj, text)`` checks a moderator's edited text by the rules the author's
    text had to meet (the feature's own checks: same limits, same messages) and returns it as
    the feature stores it (trimmed, a title's spaces collapsed); it raises ``DomainError``
    naming the field. It runs before anything is written, so a refused edit changes nothing.
    A kind without it cannot be edited in the queue, only approved as it is or rejected.
    """

    name: str
    label: Any
    load: Callable[[Session, int], Any]
    render: Callable[[Any], str]
    summarize: Callable[[Any], str]
    url: Callable[[Any], str | None] = lambda _obj: None
    visible_to: Callable[[Any, Any], bool] = lambda _obj, _user: True
    on_publish: Callable[[Session, Any], None] = _nothing
    on_reject: Callable[[Session, Any], None] = _nothing
    on_hide: Callable[[Session, Any], None] = _nothing
    on_restore: Callable[[Session, Any], None] = _nothing
    on_remove: Callable[[Session, Any], None] = _nothing
    apply_edit: Callable[[Session, Any, str], None] = lambda _s, _o, _t: None
    validate_edit: Callable[[Any, str], str] | None = None


def visibility_hooks(set_visible: Callable[[Session, Any, bool], None]) -> dict[str, Any]:
    """The five state hooks of a kind whose content is simply shown or hidden: published and
    restored show it; rejected, hidden and removed hide it. Spread into ``ModeratableKind``
    (``**visibility_hooks(...)``) and override one where a kind does more."""

    def hook(visible: bool) -> Callable[[Session, Any], None]:
        return lambda session, obj: set_visible(session, obj, visible)

    return {
        "on_publish": hook(True),
        "on_reject": hook(False),
        "on_hide": hook(False),
        "on_restore": hook(True),
        "on_remove": hook(False),
    }


_KINDS: dict[str, ModeratableKind] = {}


def register_kind(kind: ModeratableKind) -> None:
    """Register (or re-register, on a new app in the same process) a kind by name."""
    _KINDS[kind.name] = kind


def get_kind(name: str) -> ModeratableKind:
    try:
        return _KINDS[name]
    except KeyError as error:
        raise LookupError(f"no moderatable kind {name!r} is registered") from error


def kinds() -> dict[str, ModeratableKind]:
    return dict(_KINDS)
