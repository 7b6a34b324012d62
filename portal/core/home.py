"""The home page's sections: each feature registers one (the latest questions, the top
ideas, the popular templates), so the home page shows what the community is doing without
importing a feature.

``render(session, viewer)`` returns the section's HTML (the feature's own partial, showing
only what ``viewer`` may see; ``viewer`` is None for a visitor), or an empty string to leave
the section out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup
from sqlalchemy.orm import Session

from portal.core.identity import User

Renderer = Callable[[Session, User | None], str]

ROWS = 5  # how many items a community section lists


@dataclass(frozen=True)
class HomeSection:
    name: str
    order: int  # left to right, top to bottom
    render: Renderer
    wide: bool = False  # the page's whole width (a staff member's work), not a column


_SECTIONS: dict[str, HomeSection] = {}


def register(name: str, order: int, render: Renderer, *, wide: bool = False) -> None:
    """Declare a feature's section (idempotent: app factories run once per test app)."""
    _SECTIONS[name] = HomeSection(name, order, render, wide)


def render_sections(session: Session, viewer: User | None) -> list[tuple[Markup, bool]]:
    """Every registered section's HTML for ``viewer`` and whether it is wide, in order,
    without the empty ones."""
    rendered = (
        (section.render(session, viewer), section.wide)
        for section in sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))
    )
    return [(Markup(html), wide) for html, wide in rendered if html]  # noqa: S704 - templates' own output  # nosec B704
