"""The Whoosh schema and analyzers: one index for every kind, English and Chinese in one field.

Why these choices (figures in ``notes/whoosh-measured.md``):

- one catch-all ``content`` field (title, tags and body) is what queries match: one matcher
  per word instead of one per word and field. The title is written into it twice, so BM25
  ranks a title match above the same words in a body (term frequency) without a second
  field to match: a separate boosted title field (``AndMaybe``) nearly doubled p95 latency;
- Chinese runs are segmented by jieba's dictionary and rules (``rjieba``, the Rust port:
  the same words as the Python ``jieba`` on the benchmark's 45,000 Chinese runs, 6x faster),
  everything else by a plain regex, then lower-cased and Porter-stemmed so
  ``report templates`` finds ``report template`` and ``客户成功`` finds ``客户成功经理如何…``;
- as-you-type suggestions use edge n-grams of title words queried with a ``Term`` (never a
  wildcard, which walks the vocabulary);
- ``spell`` keeps the unstemmed words of titles and tags for "did you mean" (the body's
  words would double the postings written per document);
- facet counts come from the ``kind`` and ``tag_list`` columns of the top hits (Whoosh's
  grouping visits every match, 30+ ms on common words);
- ``visibility`` is ``public`` or ``org:<id>``, the per-searcher filter is built from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import rjieba
from whoosh.analysis import (
    Analyzer,
    LowercaseFilter,
    NgramFilter,
    RegexAnalyzer,
    Token,
    Tokenizer,
)
from whoosh.columns import VarBytesColumn
from whoosh.fields import BOOLEAN, COLUMN, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.formats import Positions
from whoosh.lang.porter import stem
from whoosh.system import pack_uint

CJK_RUN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
_WORDS = re.compile(CJK_RUN + r"|\w+", re.UNICODE)
_CJK = re.compile(CJK_RUN)
FIELD_GAP = "\u2029"  # paragraph separator: joins title copies, tags and body in ``content``
_WORDS_OR_GAP = re.compile(CJK_RUN + r"|\w+|" + FIELD_GAP, re.UNICODE)

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "if",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "with",
        "的",
        "了",
        "和",
        "是",
    ]
)
TITLE_REPEAT = 2  # copies of the title in ``content``: its weight against the body
SNIPPET_CHARS = 600


def split_words(value: str, prefix_runs: bool = False) -> Iterator[tuple[str, int, int, int]]:
    """(word, position, startchar, endchar) of each word: regex words for Latin (and other)
    scripts, jieba words for runs of Chinese.

    Chinese runs are cut in jieba's search mode: a long word and its shorter parts, so a
    query for one part finds the longer word. ``prefix_runs`` instead yields each whole run
    and then its words, so a typed prefix of the run matches (for the edge n-gram field).
    The parts of a catch-all field (``FIELD_GAP``) are 10 positions apart, so phrases never
    match across them.
    """
    pos = 0
    for match in _WORDS_OR_GAP.finditer(value):
        word = match.group(0)
        base = match.start()
        if word == FIELD_GAP:
            pos += 10
        elif _CJK.fullmatch(word) is None:
            yield word, pos, base, match.end()
            pos += 1
        elif prefix_runs:
            yield word, pos, base, match.end()
            pos += 1
            if len(word) > 1:
                for piece in rjieba.cut(word, False):
                    yield piece, pos, base, base + len(piece)
                    base += len(piece)
                    pos += 1
        else:
            for piece, start, end in rjieba.tokenize(word, "search", False):
                yield piece, pos, base + start, base + end
                pos += 1


class MixedTokenizer(Tokenizer):
    """:func:`split_words` as a Whoosh tokenizer (for the edge n-gram field's filters)."""

    def __init__(self, prefix_runs: bool = False) -> None:
        self.prefix_runs = prefix_runs

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MixedTokenizer)
            and other.prefix_runs == self.prefix_runs
            and type(other) is type(self)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.prefix_runs))

    def __call__(  # type: ignore[override]
        self, value: str, tokenize: bool = True, **options: Any
    ) -> Iterator[Token]:
        words = split_words(value, self.prefix_runs) if tokenize else [(value, 0, 0, len(value))]
        return _tokens(((w, w, False, pos, start, end) for w, pos, start, end in words), **options)


def _tokens(
    words: Iterable[tuple[str, str, bool, int, int, int]],
    positions: bool = False,
    chars: bool = False,
    keeporiginal: bool = False,
    removestops: bool = True,
    start_pos: int = 0,
    start_char: int = 0,
    mode: str = "",
    **kwargs: Any,
) -> Iterator[Token]:
    """Whoosh's token stream (one Token reused for every word) from (text, original word,
    stopped, position, startchar, endchar)."""
    token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
    for text, original, stopped, pos, start, end in words:
        token.text = text
        token.boost = 1.0
        token.stopped = stopped
        if keeporiginal:
            token.original = original
        if positions:
            token.pos = start_pos + pos
        if chars:
            token.startchar, token.endchar = start_char + start, start_char + end
        yield token


_TERMS_CACHE_SIZE = 200_000


class TextAnalyzer(Analyzer):
    """Words of both scripts (:func:`split_words`), lower-cased, common words dropped, English
    Porter-stemmed.

    The same terms as ``MixedTokenizer() | LowercaseFilter() | StopFilter() | StemFilter()``,
    in one pass: that chain of generators was 40% of indexing a document. Each distinct
    word's term is remembered (a word repeats across documents), and :meth:`positions`
    gives the indexer every term's positions without a Token per word.
    """

    is_morph = True  # stems: Whoosh skips it for ``no_morph`` (unstemmed) analysis

    def __init__(self) -> None:
        self._terms: dict[str, str] = {}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __getstate__(self) -> dict[str, Any]:
        return {}  # pickled into the index's table of contents: the cache stays out

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._terms = {}

    def has_morph(self) -> bool:
        return True

    def term(self, word: str) -> str:
        """The indexed term of ``word``; "" for a stop word."""
        term = self._terms.get(word)
        if term is None:
            lower = word.lower()
            term = "" if lower in STOP_WORDS else stem(lower)
            if len(self._terms) >= _TERMS_CACHE_SIZE:
                self._terms.clear()
            self._terms[word] = term
        return term

    def positions(self, value: str) -> dict[str, list[int]]:
        """Every term of ``value`` with its positions, for the indexer."""
        found: dict[str, list[int]] = {}
        terms = self._terms
        for word, pos, _start, _end in split_words(value):
            term = terms.get(word)
            if term is None:
                term = self.term(word)
            if term:
                known = found.get(term)
                if known is None:
                    found[term] = [pos]
                else:
                    known.append(pos)
        return found

    def __call__(  # type: ignore[override]
        self,
        value: str,
        tokenize: bool = True,
        removestops: bool = True,
        no_morph: bool = False,
        **options: Any,
    ) -> Iterator[Token]:
        words = split_words(value) if tokenize else [(value, 0, 0, len(value))]
        return _tokens(
            self._analyzed(words, removestops, no_morph), removestops=removestops, **options
        )

    def _analyzed(
        self, words: Iterable[tuple[str, int, int, int]], removestops: bool, no_morph: bool
    ) -> Iterator[tuple[str, str, bool, int, int, int]]:
        for word, pos, start, end in words:
            term = self.term(word)
            stopped = not term
            if stopped and removestops:
                continue
            # Whoosh's query parser may ask to see stop words (``removestops=False``).
            yield (word.lower() if stopped or no_morph else term), word, stopped, pos, start, end


def text_analyzer() -> TextAnalyzer:
    return TextAnalyzer()


def prefix_analyzer() -> Any:
    """Edge n-grams (2–10 characters) of every title word and of every Chinese run."""
    return MixedTokenizer(prefix_runs=True) | LowercaseFilter() | NgramFilter(2, 10, at="start")


def spell_analyzer() -> Any:
    """Unstemmed Latin-script words (3+ letters) for spelling suggestions."""
    return RegexAnalyzer(r"[^\W\d_]{3,}") | LowercaseFilter()


class VarintPositions(Positions):
    """Positions as whoosh-ng writes them (varint deltas), read without its legacy branch.

    whoosh-ng reads any positions value whose last byte is ``.`` (0x2E) as a pickled value
    from old Whoosh, so a word whose last position step is 46 made every phrase query that
    touched it fail with UnpicklingError. Indexes written by this version hold no pickled
    values: a trailing byte is added so the check misses, and the varint reader stops after
    the count it reads first.
    """

    def word_values(self, value: str, analyzer: Any, **kwargs: Any) -> Iterator[Any]:
        """Whoosh's (term, frequency, weight, encoded positions), from the analyzer's
        :meth:`TextAnalyzer.positions` when it has one (no Token per word)."""
        if not isinstance(analyzer, TextAnalyzer):
            yield from super().word_values(value, analyzer, **kwargs)
            return
        boost = self.field_boost
        encode = self.encode
        for term, positions in analyzer.positions(value).items():
            yield term, len(positions), len(positions) * boost, encode(positions)

    def encode(self, positions: list[int]) -> bytes:
        """Whoosh's bytes (the count, then varint deltas) in 60% of its time. (A table of
        the common one-position values would halve it again, but pickling the block then
        writes repeats as references: files no longer Whoosh's to the byte.)"""
        out = bytearray(pack_uint(len(positions)))
        previous = 0
        for position in positions:
            delta = position - previous
            previous = position
            while delta > 0x7F:
                out.append((delta & 0x7F) | 0x80)
                delta >>= 7
            out.append(delta)
        return bytes(out)

    def decode_positions(self, valuestring: bytes) -> list[int]:
        if valuestring.endswith(b"."):
            valuestring += b"\0"
        return super().decode_positions(valuestring)


def _phrase_text(analyzer: Any) -> TEXT:
    field = TEXT(analyzer=analyzer, phrase=True)
    field.format = VarintPositions(field_boost=field.format.field_boost)
    return field


def build_schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),  # "kind:object_id"
        kind=ID(stored=True, sortable=True),
        object_id=STORED(),
        title=STORED(),
        content=_phrase_text(text_analyzer()),
        tags=KEYWORD(stored=True, lowercase=True, commas=True, scorable=False),
        tag_list=COLUMN(VarBytesColumn()),  # the same tags, read per hit for facet counts
        visibility=ID(),  # "public" or "org:<id>"
        owner_org=ID(),
        answered=BOOLEAN(),
        url=STORED(),
        updated_at=STORED(),  # ISO 8601 UTC, compared by ``check``
        prefix=TEXT(analyzer=prefix_analyzer(), phrase=False, stored=False),
        spell=TEXT(analyzer=spell_analyzer(), phrase=False, stored=False),
        snippet=STORED(),
    )


SCHEMA = build_schema()
