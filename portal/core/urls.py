"""Absolute links for mail and notifications, from requests, tasks and the CLI alike."""

from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context, request, url_for

# Links built for templates, by everything that decides them. About 40 links a page cost
# 15-20 us each to build through the URL map; the map does not change while the app runs.
_REMEMBERED_MAX = 20_000
_remembered: dict[tuple[Any, ...], str] = {}


def external_url(endpoint: str, **values: Any) -> str:
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    with current_app.test_request_context(base_url=current_app.config["BASE_URL"]):
        return url_for(endpoint, _external=True, **values)


def template_url_for(endpoint: str, **values: Any) -> str:
    """``url_for`` for templates, remembering each path it built.

    A path depends only on the endpoint, its values and the script root (templates never ask
    for external links here), so a repeated call is a dict lookup. Relative endpoints,
    ``_anchor``/``_external``-style options and unhashable values go to ``url_for`` as is.
    """
    if endpoint[:1] == "." or any(name[:1] == "_" for name in values):
        return url_for(endpoint, **values)
    try:
        key = (
            request.script_root,
            endpoint,
            *(
                (name, value.__class__, tuple(value) if isinstance(value, list) else value)
                for name, value in sorted(values.items())
            ),
        )
        url = _remembered.get(key)
    except TypeError:  # a value that cannot be a key (a dict, a list of lists)
        return url_for(endpoint, **values)
    if url is None:
        url = url_for(endpoint, **values)
        if len(_remembered) >= _REMEMBERED_MAX:
            _remembered.clear()
        _remembered[key] = url
    return url


def is_safe_next(target: str | None) -> bool:
    """Only our own paths: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    return "\\" not in target and not any(ord(ch) < 32 for ch in target)
