"""The gallery list's rendered bodies, cached for ``GALLERY_LIST_CACHE_SECONDS`` (default 5)
and cleared by any commit in this process that changes a template, version, tag, rating or
download (``portal.core.pagecache``); other processes see changes within the TTL."""

from __future__ import annotations

from portal.core.pagecache import RenderedCache
from portal.gallery.models import Download, Rating, Template, TemplateTag, TemplateVersion

cache = RenderedCache(
    "gallery_list",
    (Template, TemplateVersion, TemplateTag, Rating, Download),
    "GALLERY_LIST_CACHE_SECONDS",
)
kept, clear = cache.kept, cache.clear
