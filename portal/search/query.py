"""Reads: what a person may find, ranked, with facets, snippets and spelling suggestions.

One searcher per thread (a Whoosh searcher shared by threads returns corrupt reads), checked
for index changes at the start of every ``search``/``suggest`` call, i.e. once per request
(a file read and a directory listing when nothing changed). The visibility filter is a set of document
numbers built once per (searcher, organization) — passing it as a query on every search costs
75–150 ms at 100k documents. User input goes through a restricted parser: words, "phrases",
parentheses and AND/OR/NOT, nothing else (no wildcards, no field names); the filters
``tag:``, ``kind:``, ``is:answered`` and (staff) ``org:`` are taken out of the text first.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from whoosh import query as wq
from whoosh.lang.porter import stem
from whoosh.qparser import GroupPlugin, OperatorsPlugin, OrGroup, PhrasePlugin, QueryParser
from whoosh.qparser.syntax import AndGroup
from whoosh.searching import Searcher

from portal.core.identity import Organization, User
from portal.search import index
from portal.search.registry import sources
from portal.search.schema import _CJK, _WORDS, SCHEMA, STOP_WORDS
from portal.search.scoring import BM25FromMemory

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500  # longer input is cut (the page shows the note); 10,000 chars stay fast
MAX_PAGE = 50
FILTER_CACHE_SIZE = 16
RESULTS_CACHE_SIZE = 256  # searches remembered per searcher (a few KB each)
# Facet counts are taken over this many best hits. 100 cost ~30 ms at p95 on 100k documents
# (a larger collector skips fewer posting blocks); 40 costs ~1 ms over the plain search.
FACET_SAMPLE = 40
_FILTER_RE = re.compile(r"(?<!\S)(tag|kind|is|org):(\"[^\"]*\"|\S+)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_OPERATOR_WORDS = {"AND", "OR", "NOT", "ANDNOT", "ANDMAYBE"}


# --- per-thread searchers ----------------------------------------------------------------


@dataclass
class _Handle:
    name: str
    searcher: Searcher
    filters: OrderedDict[int, set[int]] = field(default_factory=OrderedDict)
    # Answers already given by this searcher: a popular search costs a dict lookup until the
    # index changes (which brings a new searcher, so nothing here is ever out of date).
    results: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=OrderedDict)
    ix: Any = None  # the FileIndex the searcher came from; a reopened one means new files


_local = threading.local()
WEIGHTING = BM25FromMemory()  # Whoosh's BM25F, 3x faster on common words

REBUILDING = _l(
    "Search is not available right now: it is being rebuilt. Please try again in a few minutes."
)


def _open_searcher(ix: Any, base: Path) -> Searcher:
    """A searcher, or IndexUnavailable when the segment files will not read (truncated,
    garbled): never a 500 for a broken index. A merge that just deleted the segments read
    is tried again once, on the index as it is now."""
    try:
        searcher = ix.searcher(weighting=WEIGHTING)
        searcher.doc_count()
    except Exception as error:
        index.close_failed_files(error)
        time.sleep(0.02)
        try:
            _name, ix = index.open_index(base)
            searcher = ix.searcher(weighting=WEIGHTING)
            searcher.doc_count()
        except Exception as again:
            index.close_failed_files(again)
            index.request_rebuild(base)
            raise index.IndexUnavailable(f"search index cannot be read: {again}") from again
    return searcher


def _handle(root: str | Path | None = None) -> _Handle:
    """This thread's searcher on the current index directory, refreshed."""
    base = index.index_root(root)
    handles: dict[str, _Handle] = _local.__dict__.setdefault("handles", {})
    key = str(base)
    handle = handles.get(key)
    try:
        name, ix = index.open_index(base)
    except index.IndexUnavailable:
        if handle is not None:  # never read again from files that were deleted or damaged
            handles.pop(key, None)
            with contextlib.suppress(Exception):
                handle.searcher.close()
        index.request_rebuild(base)
        raise
    if handle is None or handle.name != name:
        if handle is not None:
            handles.pop(key, None)
            handle.searcher.close()
        handle = _Handle(name, _open_searcher(ix, base), ix=ix)
        handles[key] = handle
    elif handle.ix is not ix or ix.latest_generation() != handle.searcher.reader().generation():
        # Whoosh's ``refresh()`` reuses the readers of unchanged segment ids, and with them
        # their old deleted-documents sets: a deleted (hidden, rejected) document would stay
        # findable. So a changed index gets a new searcher (50–120 ms at 100k documents,
        # once per change and thread) instead of a refreshed one.
        handles.pop(key, None)
        handle.searcher.close()
        handle = _Handle(name, _open_searcher(ix, base), ix=ix)
        handles[key] = handle
    return handle


def refresh(root: str | Path | None = None) -> None:
    """Pick up index changes (call at the start of a request)."""
    with contextlib.suppress(index.IndexUnavailable):
        _handle(root)


def _is_staff(user: User | None) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_staff)


def _viewer_org(user: User | None) -> int:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return 0
    return user.organization_id


def allowed_docs(handle: _Handle, user: User | None) -> set[int] | None:
    """Document numbers ``user`` may see (None: all, for vendor staff)."""
    if _is_staff(user):
        return None
    org_id = _viewer_org(user)
    cached = handle.filters.get(org_id)
    if cached is not None:
        handle.filters.move_to_end(org_id)
        return cached
    searcher = handle.searcher
    docs = set(searcher.docs_for_query(wq.Term("visibility", "public")))
    if org_id:
        docs.update(searcher.docs_for_query(wq.Term("visibility", f"org:{org_id}")))
    handle.filters[org_id] = docs
    while len(handle.filters) > FILTER_CACHE_SIZE:
        handle.filters.popitem(last=False)
    return docs


# --- parsing -----------------------------------------------------------------------------


@dataclass
class Filters:
    kinds: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    answered: bool | None = None
    org_id: int | None = None


@dataclass
class ParsedQuery:
    text: str  # the free text left after filters were taken out
    filters: Filters
    truncated: bool = False


def clean(text: str | None) -> tuple[str, bool]:
    text = _CONTROL.sub(" ", text or "")
    truncated = len(text) > MAX_QUERY_CHARS
    return " ".join(text[:MAX_QUERY_CHARS].split()), truncated


def parse(session: Session | None, user: User | None, raw: str | None) -> ParsedQuery:
    """Take the filters out of the text; unknown ``foo:bar`` stays text."""
    text, truncated = clean(raw)
    filters = Filters()
    known = set(sources())

    def take(match: re.Match[str]) -> str:
        name, value = match.group(1).lower(), match.group(2).strip('"').strip()
        if name == "tag" and value:
            filters.tags.append(value.lower())
        elif name == "kind":
            picked = [k for k in value.lower().split("|") if k in known]
            if not picked:
                return match.group(0)  # not a kind we know: search it as words
            filters.kinds.extend(picked)
        elif name == "is":
            if value.lower() == "answered":
                filters.answered = True
            elif value.lower() == "unanswered":
                filters.answered = False
            else:
                return match.group(0)
        elif name == "org" and _is_staff(user) and session is not None:
            filters.org_id = _resolve_org(session, value)
            if filters.org_id is None:
                filters.org_id = -1  # no such organization: nothing matches
            # others: ignored (and not searched as text either)
        return " "

    text = " ".join(_FILTER_RE.sub(take, text).split())
    return ParsedQuery(text, filters, truncated)


def _resolve_org(session: Session, value: str) -> int | None:
    if value.isdigit():
        return session.scalar(select(Organization.id).where(Organization.id == int(value)))
    return session.scalar(select(Organization.id).where(Organization.slug == value.lower()))


def _parser(fieldname: str, group: Any) -> QueryParser:
    # No FieldsPlugin, WildcardPlugin, RangePlugin, BoostPlugin, EveryPlugin: a user types
    # words, phrases, parentheses and AND/OR/NOT.
    return QueryParser(
        fieldname, SCHEMA, plugins=[PhrasePlugin(), GroupPlugin(), OperatorsPlugin()], group=group
    )


_AND_PARSER = _parser("content", AndGroup)
_OR_PARSER = _parser("content", OrGroup)
_PARSER_LOCK = threading.Lock()  # parsers keep state while parsing


def _plain_words(text: str) -> str:
    return " ".join(_WORDS.findall(text))


def text_query(text: str, any_word: bool = False) -> wq.Query:
    """The user's words as a query on ``content``; never raises on odd input."""
    if not text:
        return wq.NullQuery
    parser = _OR_PARSER if any_word else _AND_PARSER
    try:
        with _PARSER_LOCK:
            q = parser.parse(text)
        q.estimate_size  # noqa: B018 (a parsed tree always has it; guards odd parser output)
    except Exception:  # the parser is tolerant, but input is hostile: fall back to words
        log.info("query fell back to plain words: %r", text[:80])
        with _PARSER_LOCK:
            q = parser.parse(_plain_words(text))
    return q


def _filter_query(filters: Filters) -> list[wq.Query]:
    parts: list[wq.Query] = []
    if filters.kinds:
        parts.append(wq.Or([wq.Term("kind", k) for k in dict.fromkeys(filters.kinds)]))
    for tag in dict.fromkeys(filters.tags):
        parts.append(wq.Term("tags", tag))
    if filters.answered is not None:
        parts.append(wq.Term("answered", filters.answered))
    if filters.org_id is not None:
        parts.append(wq.Term("owner_org", str(filters.org_id)))
    return parts


def _known_words_only(q: wq.Query, searcher: Searcher) -> wq.Query | None:
    """The query without words the index has never seen (typos, half-typed words), or None
    when that changes nothing. AND of the remaining words is tried before any-word OR, which
    is 2–5x slower on common words."""
    reader = searcher.reader()
    dropped = False

    def strip(node: wq.Query) -> wq.Query:
        nonlocal dropped
        if (
            isinstance(node, wq.Term)
            and node.fieldname == "content"
            and reader.doc_frequency("content", node.text) == 0
        ):
            dropped = True
            return wq.NullQuery
        return node

    stripped = q.accept(strip).normalize()
    if not dropped or stripped is wq.NullQuery or _word_count(stripped) == 0:
        return None
    return stripped


# --- results -----------------------------------------------------------------------------


@dataclass
class Hit:
    kind: str
    id: int
    title: str
    url: str
    snippet: Markup
    tags: list[str]
    score: float


@dataclass
class SearchResults:
    query: str
    page: int
    per_page: int
    total: int
    hits: list[Hit]
    kind_counts: dict[str, int] = field(default_factory=dict)
    tag_counts: list[tuple[str, int]] = field(default_factory=list)
    suggestion: str | None = None  # "did you mean"
    any_word: bool = False  # AND found nothing; these results match any word
    truncated: bool = False
    message: str | None = None  # a friendly word when nothing could be searched
    unavailable: bool = False  # the index is missing or broken: it is being rebuilt
    filters: Filters = field(default_factory=Filters)
    facets_sampled: bool = False  # facet counts cover the top hits, not every match
    # What pages made from these results (rendered HTML by language and query as typed):
    # remembered with them, so a repeated search renders nothing again either.
    rendered: dict[Any, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, min(MAX_PAGE, -(-self.total // self.per_page)))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _highlight_pattern(text: str) -> re.Pattern[str] | None:
    """A regex for the words of the query as they may appear in the text (stem prefixes)."""
    parts: set[str] = set()
    for word in _WORDS.findall(text):
        lower = word.lower()
        if lower.upper() in _OPERATOR_WORDS or lower in STOP_WORDS:
            continue
        if _CJK.fullmatch(word):
            parts.add(re.escape(word))
        elif len(lower) > 1:
            parts.add(r"\b" + re.escape(stem(lower)) + r"\w*")
    if not parts:
        return None
    return re.compile("|".join(sorted(parts, key=len, reverse=True)), re.IGNORECASE)


def highlight(snippet: str, pattern: re.Pattern[str] | None, width: int = 240) -> Markup:
    """Escape the stored text and add our own ``<mark>`` tags around the query's words."""
    if not snippet:
        return Markup("")
    start = 0
    if pattern is not None and (first := pattern.search(snippet)) and first.start() > width // 3:
        start = snippet.rfind(" ", 0, first.start() - width // 4) + 1
    window = snippet[start : start + width]
    prefix = "… " if start else ""
    suffix = " …" if start + width < len(snippet) else ""
    if pattern is None:
        return Markup(html.escape(prefix + window + suffix))  # noqa: S704 (escaped)  # nosec B704
    out: list[str] = [html.escape(prefix)]
    last = 0
    for match in pattern.finditer(window):
        out.append(html.escape(window[last : match.start()]))
        out.append("<mark>" + html.escape(match.group(0)) + "</mark>")
        last = match.end()
    out.append(html.escape(window[last:] + suffix))
    return Markup("".join(out))  # noqa: S704 (every piece escaped; only our <mark>)  # nosec B704


def _suggest_spelling(searcher: Searcher, text: str) -> str | None:
    """Replace words the vocabulary does not know with the closest word it does."""
    corrector = searcher.corrector("spell")
    reader = searcher.reader()
    changed = False

    def fix(match: re.Match[str]) -> str:
        nonlocal changed
        word = match.group(0)
        lower = word.lower()
        if (
            len(lower) < 3
            or word in _OPERATOR_WORDS
            or _CJK.match(word)
            or not lower.isalpha()
            or reader.doc_frequency("spell", lower) > 0
            or reader.doc_frequency("content", stem(lower)) > 0
        ):
            return word
        # prefix=1: only words sharing the first letter are compared (a full scan of the
        # vocabulary with Levenshtein costs a second at 100k documents).
        found = corrector.suggest(lower, limit=1, maxdist=1 if len(lower) < 6 else 2, prefix=1)
        if not found or found[0] in STOP_WORDS:
            return word
        changed = True
        return found[0]

    corrected = _WORDS.sub(fix, text)
    return corrected if changed else None


def search(
    session: Session | None,
    user: User | None,
    q: str | None,
    page: int = 1,
    per_page: int = 10,
    filters: Filters | None = None,
    root: str | Path | None = None,
    facets: bool = True,
) -> SearchResults:
    """What ``user`` may find for ``q``: AND of the words, or any word when none has all."""
    page = max(1, min(MAX_PAGE, page))
    per_page = max(1, min(100, per_page))
    parsed = parse(session, user, q)
    merged = parsed.filters
    if filters is not None:
        merged.kinds += filters.kinds
        merged.tags += filters.tags
        if filters.answered is not None:
            merged.answered = filters.answered
        if filters.org_id is not None and _is_staff(user):
            merged.org_id = filters.org_id
    result = SearchResults(
        query=parsed.text, page=page, per_page=per_page, total=0, hits=[], filters=merged
    )
    result.truncated = parsed.truncated
    extra = _filter_query(merged)
    if not parsed.text and not extra:
        return result
    try:
        handle = _handle(root)
    except index.IndexUnavailable as error:
        log.error("search index unavailable: %s; run `cocreate search reindex`", error)
        result.message = str(REBUILDING)
        result.unavailable = True
        return result
    searcher = handle.searcher
    allowed = allowed_docs(handle, user)
    if allowed is not None and not allowed:
        return result  # nothing to see (and Whoosh reads an empty filter as no filter)
    key = (
        "staff" if allowed is None else _viewer_org(user),
        parsed.text,
        tuple(merged.kinds),
        tuple(merged.tags),
        merged.answered,
        merged.org_id,
        page,
        per_page,
        facets,
    )
    cached = handle.results.get(key)
    if cached is not None:
        handle.results.move_to_end(key)
        for name, value in zip(_REMEMBERED, cached, strict=True):
            setattr(result, name, list(value) if isinstance(value, list) else value)
        return result
    try:
        base = text_query(parsed.text)
        results = _run(searcher, base, extra, allowed, page, per_page, facets)
        if results.scored_length() == 0 and parsed.text and _word_count(base) > 1:
            known = _known_words_only(base, searcher)
            if known is not None:
                results = _run(searcher, known, extra, allowed, page, per_page, facets)
            if results.scored_length() == 0:
                any_word = text_query(parsed.text, True)
                results = _run(searcher, any_word, extra, allowed, page, per_page, facets)
            result.any_word = results.scored_length() > 0
        _fill(result, results, parsed.text, facets, allowed)
        if result.total < 3 and parsed.text:
            suggestion = _suggest_spelling(searcher, parsed.text)
            # The vocabulary holds every organization's words: offer a correction only when
            # it finds something this viewer may see, so it never reveals a private word.
            if (
                suggestion
                and searcher.search(
                    text_query(suggestion, True), limit=1, filter=allowed, terms=False
                ).scored_length()
            ):
                result.suggestion = suggestion
    except Exception:  # hostile input must give a message, never a 500
        log.exception("search failed for %r", parsed.text[:80])
        result.hits, result.total = [], 0
        result.message = str(_l("We could not understand that search. Try simpler words."))
        return result
    handle.results[key] = tuple(
        list(value) if isinstance(value, list) else value
        for value in (getattr(result, name) for name in _REMEMBERED)
    )
    while len(handle.results) > RESULTS_CACHE_SIZE:
        handle.results.popitem(last=False)
    return result


# What a search found, remembered per searcher (the rest of SearchResults is the request's).
_REMEMBERED = (
    "total",
    "hits",
    "kind_counts",
    "tag_counts",
    "suggestion",
    "any_word",
    "facets_sampled",
    "rendered",
)


def _word_count(q: wq.Query) -> int:
    return len({t for f, t in q.iter_all_terms() if f == "content"})


def _run(
    searcher: Searcher,
    base: wq.Query,
    extra: list[wq.Query],
    allowed: set[int] | None,
    page: int,
    per_page: int,
    facets: bool,
) -> Any:
    if base is wq.NullQuery or isinstance(base, wq.NullQuery.__class__):
        q: wq.Query = wq.And(extra) if extra else wq.NullQuery
    else:
        q = wq.And([base, *extra]) if extra else base
    return searcher.search(q, limit=_limit(page, per_page, facets), filter=allowed, terms=False)


def _limit(page: int, per_page: int, facets: bool) -> int:
    return max(page * per_page, FACET_SAMPLE if facets else 0)


def _count(results: Any, allowed: set[int] | None, limit: int) -> int:
    """How many results to announce, without visiting every match.

    Fewer hits than asked for means that is all of them. Otherwise Whoosh's exact count
    re-runs the query over every match (2–3x the search), so the page shows an estimate from
    the posting lists, scaled by the share of the index this viewer may see and capped by it
    (it never counts other organizations' private documents one by one).
    """
    found = results.scored_length()
    if found < limit:
        return found
    reader = results.searcher.reader()
    estimate = results.q.estimate_size(reader)
    if allowed is not None:
        total_docs = max(1, reader.doc_count())
        estimate = min(len(allowed), round(estimate * len(allowed) / total_docs))
    return max(found, estimate)


def _fill(
    result: SearchResults, results: Any, text: str, facets: bool, allowed: set[int] | None
) -> None:
    result.total = _count(results, allowed, _limit(result.page, result.per_page, facets))
    start = (result.page - 1) * result.per_page
    pattern = _highlight_pattern(text)
    for hit in results[start : start + result.per_page]:
        fields = hit.fields()
        result.hits.append(
            Hit(
                kind=fields["kind"],
                id=int(fields["object_id"]),
                title=fields.get("title", ""),
                url=fields.get("url", ""),
                snippet=highlight(fields.get("snippet", ""), pattern),
                tags=[t for t in fields.get("tags", "").split(",") if t],
                score=hit.score or 0.0,
            )
        )
    if facets and result.total:
        _facets(result, results)


def _facets(result: SearchResults, results: Any) -> None:
    """Counts by kind and tag over the best ``FACET_SAMPLE`` hits, read from columns.

    Exact counts over every match would make Whoosh visit all of them (30+ ms on a common
    word at 10k documents); the page says when the counts are from the top hits only.
    """
    kinds, tag_column = _columns(results.searcher)
    kind_counts: Counter[str] = Counter()
    tag_counts: Counter[str] = Counter()
    top = [docnum for _score, docnum in results.top_n]
    for docnum in top:
        kind_counts[kinds[docnum]] += 1
        raw = tag_column[docnum]
        if raw:
            tag_counts.update(t for t in raw.decode().split(",") if t)
    result.kind_counts = dict(sorted(kind_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    result.tag_counts = sorted(tag_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    result.facets_sampled = result.total > len(top)


def _columns(searcher: Searcher) -> tuple[Any, Any]:
    """Column readers of this searcher (3 ms to open; kept while the searcher lives)."""
    cached = getattr(_local, "columns", None)
    if cached is None or cached[0] is not searcher:
        reader = searcher.reader()
        cached = (searcher, reader.column_reader("kind"), reader.column_reader("tag_list"))
        _local.columns = cached
    return cached[1], cached[2]


# --- as-you-type -------------------------------------------------------------------------


@dataclass
class Suggestion:
    kind: str
    id: int
    title: str
    url: str


# Above this many documents for the rarest typed prefix, suggestions skip scoring.
SUGGEST_SCORED_MAX = 500


def suggest(
    user: User | None,
    prefix: str | None,
    limit: int = 8,
    root: str | Path | None = None,
    kinds: Sequence[str] = (),
    strict: bool = False,
) -> list[Suggestion]:
    """Titles whose words start with the typed words: ``Term`` queries on edge n-grams.

    ``kinds`` limits them to some kinds (similar ideas while typing an idea, say). A missing
    or broken index suggests nothing, or with ``strict`` raises ``index.IndexUnavailable``
    (the suggest endpoint then says search is being rebuilt)."""
    text, _ = clean(prefix)
    words = [w.lower()[:10] for w in _WORDS.findall(text[:200])]
    # Two Chinese characters are a word; two Latin letters match a large part of the index
    # (p95 70 ms at 100k documents) and suggest nothing useful: those wait for a third.
    terms = [
        wq.Term("prefix", w)
        for w in words
        if (len(w) >= 3 or (len(w) == 2 and _CJK.fullmatch(w))) and w not in _OPERATOR_WORDS
    ]
    if not terms:
        return []
    try:
        handle = _handle(root)
    except index.IndexUnavailable as error:
        log.error("search index unavailable: %s; run `cocreate search reindex`", error)
        if strict:
            raise
        return []
    allowed = allowed_docs(handle, user)
    if allowed is not None and not allowed:
        return []  # Whoosh reads an empty filter set as no filter at all
    q = wq.And(terms[:8]) if len(terms) > 1 else terms[0]
    if kinds:
        q = wq.And([q, wq.Or([wq.Term("kind", k) for k in kinds])])
    searcher = handle.searcher
    limit = max(1, min(limit, 20))
    rarest = min(searcher.doc_frequency("prefix", t.text) for t in terms)
    if rarest > SUGGEST_SCORED_MAX:
        # Scoring reads every posting (about 10 µs each in Whoosh): a prefix as common as
        # "con" cost 37 ms at 100k documents. Such a prefix narrows with the next letter;
        # until then the first visible titles in index order do, and stop after ``limit``.
        docnums = islice(
            (n for n in searcher.docs_for_query(q) if allowed is None or n in allowed), limit
        )
        stored = [searcher.stored_fields(n) for n in docnums]
    else:
        results = searcher.search(q, limit=limit, filter=allowed, terms=False)
        stored = [hit.fields() for hit in results]
    return [
        Suggestion(
            kind=fields["kind"],
            id=int(fields["object_id"]),
            title=fields.get("title", ""),
            url=fields.get("url", ""),
        )
        for fields in stored
    ]
