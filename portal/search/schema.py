"""The Whoosh schema and analyzers: one index for every kind, English and Chinese in one field.

Why these choices (figures in ``notes/whoosh-measured.md``):

- one catch-all ``content`` field (title, tags and body) is what queries match: one matcher
  per word instead of one per word and field. The title is written into it twice, so BM25
  ranks a title match above the same words in a body (term frequency) without a second
  field to match: a separate boosted title field (``AndMaybe``) nearly doubled p95 latency;
- Chinese runs are segmented by jieba, everything else by a plain regex (running jieba over
  English text is what makes mixed indexing slow), then lower-cased and Porter-stemmed so
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
import warnings
from collections.abc import Iterator
from typing import Any

from whoosh.analysis import (
    LowercaseFilter,
    NgramFilter,
    RegexAnalyzer,
    StemFilter,
    StopFilter,
    Token,
    Tokenizer,
)
from whoosh.columns import VarBytesColumn
from whoosh.fields import BOOLEAN, COLUMN, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.formats import Positions

with warnings.catch_warnings():
    # jieba opens its dictionary without closing it (ResourceWarning) and logs to stderr.
    warnings.simplefilter("ignore")
    import jieba

    jieba.setLogLevel(60)

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


class MixedTokenizer(Tokenizer):
    """Regex words for Latin (and other) scripts, jieba words for runs of Chinese.

    ``mode="search"`` yields a long Chinese word and its shorter parts, so a query for one
    part finds the longer word.
    """

    def __init__(self, prefix_runs: bool = False) -> None:
        # prefix_runs: also yield each whole Chinese run, so a typed prefix of it matches
        # (for the edge n-gram field).
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
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            token.original = token.text = value
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = start_pos
            if chars:
                token.startchar, token.endchar = start_char, start_char + len(value)
            yield token
            return
        pos = start_pos
        for match in _WORDS_OR_GAP.finditer(value):
            word = match.group(0)
            if word == FIELD_GAP:
                pos += 10  # phrases never match across the parts of a catch-all field
                continue
            if _CJK.fullmatch(word):
                pieces: list[tuple[str, int, int]] = []
                if self.prefix_runs:
                    pieces.append((word, 0, len(word)))
                    if len(word) > 1:
                        offset = 0
                        for piece in jieba.cut(word, HMM=False):
                            pieces.append((piece, offset, offset + len(piece)))
                            offset += len(piece)
                else:
                    pieces.extend(jieba.tokenize(word, mode="search", HMM=False))
            else:
                pieces = [(word, 0, len(word))]
            for text, start, end in pieces:
                token.text = text
                token.boost = 1.0
                token.stopped = False
                if keeporiginal:
                    token.original = text
                if positions:
                    token.pos = pos
                    pos += 1
                if chars:
                    token.startchar = start_char + match.start() + start
                    token.endchar = start_char + match.start() + end
                yield token


def text_analyzer() -> Any:
    """Words of both scripts, lower-cased, common words dropped, English stemmed."""
    return (
        MixedTokenizer()
        | LowercaseFilter()
        | StopFilter(stoplist=STOP_WORDS, minsize=1, renumber=False)
        | StemFilter(cachesize=50000)
    )


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
