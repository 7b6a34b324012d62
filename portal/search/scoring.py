"""Whoosh's BM25F, with each document's field length read from memory.

A common word is scored in every document that has it: Whoosh skips a block of postings only
when no document in it could reach the top results, which rarely happens for a word spread
evenly over the documents. For each document, Whoosh's scorer reads the field length through
a column reader, a quarter of the time of the slowest queries at 100,000 documents
(``notes/whoosh-measured.md``). A segment's lengths never change, so they are read once per
segment and field and kept (4 bytes a document: 400 KB for 100,000 documents), and the
length-dependent part of the formula is worked out once per distinct length.

Scores are the same floats as ``whoosh.scoring.BM25F`` gives: the formula is evaluated in
the same order (tested).
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from typing import Any

from whoosh.scoring import BM25F, BM25FScorer, WeightScorer

_KEPT_SEGMENTS = 64  # (segment, field) pairs; a few live segments times the scored fields
_lengths: OrderedDict[tuple[str, str], tuple[array[int], frozenset[int]]] = OrderedDict()
_lengths_lock = threading.Lock()


def _segment_lengths(reader: Any, fieldname: str) -> tuple[array[int], frozenset[int]] | None:
    """Every document's length of ``fieldname`` in the reader's segment, and the distinct
    lengths; None when the reader spans several segments (its document numbers are not one
    segment's)."""
    segment = reader.segment() if reader.is_atomic() else None
    if segment is None:
        return None
    key = (segment.segment_id(), fieldname)
    with _lengths_lock:
        found = _lengths.get(key)
        if found is not None:
            _lengths.move_to_end(key)
            return found
    # Read outside the lock: two threads may both read a new segment, which is harmless.
    lengths = array(
        "I", (reader.doc_field_length(n, fieldname, 1) for n in range(reader.doc_count_all()))
    )
    found = (lengths, frozenset(lengths))
    with _lengths_lock:
        _lengths[key] = found
        while len(_lengths) > _KEPT_SEGMENTS:
            _lengths.popitem(last=False)
    return found


class _Scorer(BM25FScorer):
    def __init__(self, searcher: Any, fieldname: str, text: Any, B: float, K1: float, qf=1):
        super().__init__(searcher, fieldname, text, B, K1, qf=qf)
        known = _segment_lengths(searcher.reader(), fieldname)
        if known is None:
            return
        lengths, distinct = known
        K1, B, avgfl = self.K1, self.B, self.avgfl
        norms = {fl: K1 * ((1 - B) + B * fl / avgfl) for fl in distinct}
        idf, k1_plus_1 = self.idf, K1 + 1

        def score(matcher: Any) -> float:
            tf = matcher.weight()
            return idf * ((tf * k1_plus_1) / (tf + norms[lengths[matcher.id()]]))

        self.score = score  # type: ignore[method-assign]


class BM25FromMemory(BM25F):
    """``BM25F`` with field lengths kept in memory per segment: pass as ``weighting=``."""

    def scorer(self, searcher: Any, fieldname: str, text: Any, qf=1) -> Any:
        if not searcher.schema[fieldname].scorable:
            return WeightScorer.for_(searcher, fieldname, text)
        B = self._field_B.get(fieldname, self.B)
        return _Scorer(searcher, fieldname, text, B, self.K1, qf=qf)
