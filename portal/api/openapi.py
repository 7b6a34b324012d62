"""Moved to :mod:`portal.core.api`; kept while features switch their imports."""

from portal.core.api import build_spec, endpoint

__all__ = ["build_spec", "endpoint"]
