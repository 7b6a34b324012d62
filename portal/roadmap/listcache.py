"""The roadmap board's rendered bodies, cached for ``ROADMAP_BOARD_CACHE_SECONDS`` (default 5)
and cleared by any commit that changes an idea, a vote, a tag, a comment or a status label --
including the single-statement counter updates (``portal.core.pagecache``). Signed-in people
are keyed by their id, since their own votes are marked."""

from __future__ import annotations

from portal.core.pagecache import RenderedCache
from portal.roadmap.models import Idea, IdeaComment, IdeaTag, IdeaVote, StatusLabel

cache = RenderedCache(
    "roadmap_board",
    (Idea, IdeaVote, IdeaTag, IdeaComment, StatusLabel),
    "ROADMAP_BOARD_CACHE_SECONDS",
)
kept, clear = cache.kept, cache.clear
