"""Words shown for moderation codes, in the reader's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

TRUST_FACT_LABELS = {
    "minutes_since_sign_up": _l("Minutes since you joined"),
    "days_visited": _l("Days visited"),
    "items_read": _l("Posts and profiles read"),
    "published_posts": _l("Published posts"),
    "likes_given": _l("Likes given"),
    "likes_received": _l("Likes received"),
    "recent_days_visited": _l("Days visited in the last 100 days"),
    "recent_items_read": _l("Posts read in the last 100 days"),
    "recent_published_posts": _l("Posts published in the last 100 days"),
    "recent_rejected_posts": _l("Posts rejected in the last 100 days (at most)"),
    "recent_upheld_flags_against": _l("Upheld flags against you in the last 100 days (at most)"),
}
