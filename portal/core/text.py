"""Text as people send it, made storable: every free-text field passes through ``clean_text``."""

from __future__ import annotations

import re

# NUL and the other C0/C1 controls except tab, newline and carriage return: PostgreSQL refuses
# NUL outright, and the rest only hide text from readers and moderators.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Drop control characters and replace lone surrogates (undecodable input) with U+FFFD."""
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", value))
