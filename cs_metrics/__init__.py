"""Customer-success metrics: health scores, NPS, KPIs.

Reads what customers do only through the activity log in ``portal.core``.
"""
