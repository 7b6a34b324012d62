"""CS pages: survey (see the package docstring)."""

from __future__ import annotations
