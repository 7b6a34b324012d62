"""Line diffs for the revisions page: plain data, escaped by the template like any text."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffLine:
    op: str  # "+", "-" or " "
    text: str


def line_diff(before: str, after: str, context: int = 3) -> list[DiffLine]:
    """A unified diff of two texts as lines; the first revision diffs against nothing."""
    lines = []
    for line in difflib.unified_diff(
        before.splitlines(), after.splitlines(), lineterm="", n=context
    ):
        if line.startswith(("---", "+++", "@@")):
            continue
        lines.append(DiffLine(line[:1] or " ", line[1:]))
    return lines
