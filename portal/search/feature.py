"""Wires the feature into the app: blueprints, moderation kinds, search sources, schedules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called once by the app factory."""
