"""The question list's rendered bodies, cached for ``QA_LIST_CACHE_SECONDS`` (default 5) and
cleared by any commit that changes a question, answer, vote, tag or helpful mark
(``portal.core.pagecache``). View counts may lag by the same few seconds."""

from __future__ import annotations

from portal.core.pagecache import RenderedCache
from portal.qa.models import Answer, HelpfulMark, Question, Tag, Vote

cache = RenderedCache(
    "qa_list", (Question, Answer, Vote, Tag, HelpfulMark), "QA_LIST_CACHE_SECONDS"
)
kept, clear = cache.kept, cache.clear
