"""Moderation: one review queue for all customer content.

Depends only on ``portal.core``; features register their moderatable kinds at app start.
"""
