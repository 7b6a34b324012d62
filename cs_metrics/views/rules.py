"""CS pages: rules (see the package docstring)."""

from __future__ import annotations
