"""Parts of the layout rendered once for each distinct thing they show, then kept.

The navigation bar (thirty links, a dozen translated labels, the permission checks behind
them) is the same on every page a user opens; rendering it was about a tenth of a cached
page's instructions for a signed-in user (callgrind). A fragment's key holds everything it
shows, so a kept fragment is always the one that would be rendered now: a new notification,
a queue that moved, a renamed user or another language is another key. The values that
differ on every request, the CSRF token and the path a form returns to, are written into
slots when the page is served; the slots carry a random per-process marker that no user
text contains.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

MAX_ENTRIES = 4096  # fragments kept per template and process before the cache starts over

_MARKER = secrets.token_hex(12)
CSRF_SLOT = f"slot-{_MARKER}-csrf"
NEXT_SLOT = f"slot-{_MARKER}-next"
NAVIGATION_SLOT = f"slot-{_MARKER}-navigation"
FLASHES_SLOT = f"slot-{_MARKER}-flashes"


class FragmentCache:
    """One template's rendered fragments, by key.

    ``values()`` is called only for a new key, so what it returns must follow from the key;
    a key of None renders without keeping. The template also gets the slots ``csrf_slot``
    and ``next_slot``."""

    def __init__(self, template: str, max_entries: int = MAX_ENTRIES) -> None:
        self.template = template
        self.max_entries = max_entries  # keys from request arguments need a bound
        self._rendered: dict[Hashable, str] = {}
        self._lock = threading.Lock()

    def render(
        self,
        key: Hashable | None,
        values: Callable[[], dict[str, Any]],
        csrf_token: str | None = None,
        next_path: str | None = None,
    ) -> Markup:
        html = None if key is None else self._rendered.get(key)
        if html is None:
            template = current_app.jinja_env.get_template(self.template)
            html = template.render(csrf_slot=CSRF_SLOT, next_slot=NEXT_SLOT, **values())
            if key is not None:
                self._keep(key, html)
        return _filled(html, csrf_token, next_path)

    def render_page(self, key: Hashable | None, values: Callable[[], dict[str, Any]]) -> str:
        """This template as a whole page, the layout included, kept per ``key`` and what the
        layout shows (``layout_key`` and the survey's flag, from the app's context
        processors). The navigation bar (a kept fragment of its own), the flashed messages,
        the CSRF token and the return path go into slots, filled per request. Rendering the
        layout was a quarter of a kept queue page.

        ``values()`` runs before the navigation is rendered: what it reads (the queue's
        count, for one) the navigation then finds counted."""
        context: dict[str, Any] = {}
        current_app.update_template_context(context)  # what render_template would add
        page_key = None
        if key is not None:
            page_key = (key, context.get("layout_key"), context.get("nps_survey_due"))
        html = None if page_key is None else self._rendered.get(page_key)
        if html is None:
            slots = {
                "csrf_slot": CSRF_SLOT,
                "next_slot": NEXT_SLOT,
                "flashes_slot": FLASHES_SLOT,
                # any form on the page, the layout's included (the survey's), gets the slot
                "csrf_token": lambda: CSRF_SLOT,
            }
            context.update(slots, **values())
            g.layout_slots = True
            try:
                html = current_app.jinja_env.get_template(self.template).render(context)
            finally:
                g.layout_slots = False
            if page_key is not None:
                self._keep(page_key, html)
        next_path = request.full_path if request.method == "GET" else ""
        page = str(_filled(html, generate_csrf(), next_path))  # str: Markup would escape
        flashes = ""
        if session.get("_flashes"):
            flashes = current_app.jinja_env.get_template("_flashes.html").render(context)
        navigation = str(context["navigation"]())
        return page.replace(FLASHES_SLOT, flashes).replace(NAVIGATION_SLOT, navigation)

    def _keep(self, key: Hashable, html: str) -> None:
        with self._lock:
            if len(self._rendered) >= self.max_entries:
                self._rendered.clear()
            self._rendered[key] = html


def _filled(html: str, csrf_token: str | None, next_path: str | None) -> Markup:
    if CSRF_SLOT in html:
        html = html.replace(CSRF_SLOT, str(escape(csrf_token or "")))
    if NEXT_SLOT in html:
        html = html.replace(NEXT_SLOT, str(escape(next_path or "")))
    # Our template's output, escaped as it was rendered; the slot values are escaped.
    return Markup(html)  # noqa: S704  # nosec B704


@dataclass(frozen=True, slots=True)
class Navigation:
    """What the navigation bar shows (the key of its cache); None and False hide an entry."""

    locale: str
    script_root: str
    signed_in: bool = False
    display_name: str = ""
    organization_id: int | None = None
    manage_members: bool = False
    view_cs: bool = False
    view_search_insights: bool = False
    queue: int | None = None
    unread: int = 0


navigation_bar = FragmentCache("_navigation.html")
