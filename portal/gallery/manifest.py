"""The template manifest: its published JSON Schema, semantic versions and product ranges.

A manifest says what a template needs, as a Grafana dashboard's ``__requires`` and
``__inputs`` do: a name, its own version, the product version range it works with, the data
sources it reads and the parameters a user fills in. Ranges are turned into a half-open
interval of integer keys (``product_min`` inclusive, ``product_max`` exclusive) so the gallery
can filter "compatible with my product version" in SQL.
"""

from __future__ import annotations

import re
from typing import Any

SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,2})(?:\.(0|[1-9][0-9]{0,2}))?"
    r"(?:-[0-9A-Za-z.-]{1,40})?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)
_COMPARATOR = re.compile(r"^(>=|<=|==|=|>|<|\^|~)?\s*v?([0-9]+(?:\.[0-9]+){0,2})$")
_PRODUCT = re.compile(r"([0-9]{1,4})(?:\.([0-9]{1,3}))?(?:\.([0-9]{1,3}))?")
MAX_RANGE = 100


def manifest_schema(schema_url: str = "/gallery/manifest.schema.json") -> dict[str, Any]:
    short = {"type": "string", "minLength": 1, "maxLength": 100}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_url,
        "title": "Cocreate report template manifest",
        "description": (
            "A .json upload is a manifest, with the template definition under `template`; "
            "a .zip bundle carries one as `manifest.json` at its root."
        ),
        "type": "object",
        "required": ["name", "version", "requires"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "version": {"type": "string", "pattern": SEMVER_PATTERN},
            "description": {"type": "string", "maxLength": 2000},
            "requires": {
                "type": "object",
                "required": ["product"],
                "additionalProperties": False,
                "properties": {
                    "product": {"type": "string", "minLength": 1, "maxLength": MAX_RANGE}
                },
            },
            "data_sources": {
                "type": "array",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "additionalProperties": False,
                    "properties": {
                        "name": short,
                        "type": short,
                        "description": {"type": "string", "maxLength": 500},
                    },
                },
            },
            "parameters": {
                "type": "array",
                "maxItems": 100,
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "additionalProperties": False,
                    "properties": {
                        "name": short,
                        "type": {"enum": ["string", "number", "date", "boolean", "list"]},
                        "label": {"type": "string", "maxLength": 200},
                        "default": {},
                    },
                },
            },
            "files": {"type": "array", "maxItems": 200, "items": short},
            "template": {"description": "The template definition itself (any JSON)."},
        },
    }


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``"1.1"`` -> (1, 1, 0); a pre-release suffix is kept out of the key."""
    match = _SEMVER.match((text or "").strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def normalize_version(text: str) -> str | None:
    """Three parts always ("1.1" is stored as "1.1.0"), the pre-release suffix kept."""
    text = (text or "").strip()
    parts = parse_version(text)
    if parts is None:
        return None
    suffix = text.partition("-")[2]
    core = ".".join(str(p) for p in parts)
    return f"{core}-{suffix}" if suffix else core


def version_key(parts: tuple[int, int, int]) -> int:
    major, minor, patch = parts
    return major * 1_000_000 + min(minor, 999) * 1_000 + min(patch, 999)


def key_version(key: int) -> str:
    """A key back as a version to read: 6000000 -> "6.0", 5004001 -> "5.4.1"."""
    major, rest = divmod(key, 1_000_000)
    minor, patch = divmod(rest, 1_000)
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def product_key(text: str | None) -> int | None:
    """The first "N[.N[.N]]" in a free-text product version ("v5.4 LTS" -> 5.4.0)."""
    match = _PRODUCT.search(text or "")
    if match is None:
        return None
    return version_key(tuple(int(g or 0) for g in match.groups()))  # type: ignore[arg-type]


def parse_range(text: str) -> tuple[int | None, int | None]:
    """A range as (min inclusive, max exclusive) keys; ValueError names what is wrong.

    Comparators are separated by commas or spaces and all must hold: ``>=5.2, <6``,
    ``^5.2``, ``~5.2.1``, ``=5.4.0``, ``*``.
    """
    text = (text or "").strip()
    if len(text) > MAX_RANGE:
        raise ValueError("range too long")
    if text in {"", "*"}:
        return None, None
    low: int | None = None
    high: int | None = None
    for token in re.split(r"\s*,\s*|\s+(?=[<>=^~])", text):
        match = _COMPARATOR.match(token.strip())
        if match is None:
            raise ValueError(f"not a comparator: {token!r}")
        op = match.group(1) or "="
        numbers = [int(n) for n in match.group(2).split(".")]
        given = len(numbers)
        major, minor, patch = (numbers + [0, 0])[:3]
        key = version_key((major, minor, patch))
        lo: int | None = None
        hi: int | None = None
        if op in {">=", ">"}:
            lo = key if op == ">=" else key + 1
        elif op in {"<", "<="}:
            hi = key if op == "<" else key + 1
        elif op in {"=", "=="}:
            lo = key
            # "=5" means any 5.x.x; "=5.4" any 5.4.x.
            hi = version_key(
                (major + 1, 0, 0)
                if given == 1
                else (major, minor + 1, 0)
                if given == 2
                else (major, minor, patch + 1)
            )
        elif op == "^":
            lo = key
            hi = version_key((major + 1, 0, 0) if major > 0 else (0, minor + 1, 0))
        else:  # "~"
            lo = key
            hi = version_key((major + 1, 0, 0) if given == 1 else (major, minor + 1, 0))
        if lo is not None:
            low = lo if low is None else max(low, lo)
        if hi is not None:
            high = hi if high is None else min(high, hi)
    if low is not None and high is not None and low >= high:
        raise ValueError("empty range")
    return low, high


def compatible(product_version: str | None, low: int | None, high: int | None) -> bool:
    key = product_key(product_version)
    if key is None:
        return False
    return (low is None or key >= low) and (high is None or key < high)
