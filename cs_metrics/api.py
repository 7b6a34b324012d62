"""The CS JSON API under /api/v1/cs (staff only), in the OpenAPI document."""

from __future__ import annotations
