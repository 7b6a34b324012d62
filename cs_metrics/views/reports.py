"""CS pages: reports (see the package docstring)."""

from __future__ import annotations
