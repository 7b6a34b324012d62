"""Whoosh's own file format, written with each document's field lengths looked up once.

Whoosh writes a term's postings in blocks that record the shortest and longest document in
them (BM25 uses both to skip blocks), so for every posting it asks the new segment for that
document's field length. Each answer is a column read through a seek; a rebuild asks about
115 times per document, and those reads were 40% of merging the writer processes' postings
(``notes/whoosh-measured.md``). The lengths do not change while a segment is written, so
they are remembered per field and document.

Segments still name Whoosh's ``W3Codec``: the files are the same, only the writing is
faster, and an index needs nothing of ours to be read.
"""

from __future__ import annotations

from typing import Any

from whoosh.codec.whoosh3 import W3Codec, W3FieldWriter, W3Segment


class _RememberedLengths:
    def __init__(self, lengths: Any) -> None:
        self._lengths = lengths
        self._by_field: dict[str, dict[int, int]] = {}

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int:
        known = self._by_field.get(fieldname)
        if known is None:
            known = self._by_field[fieldname] = {}
        length = known.get(docnum)
        if length is None:
            length = known[docnum] = self._lengths.doc_field_length(docnum, fieldname, default)
        return length


class _FieldWriter(W3FieldWriter):
    def add_postings(self, schema: Any, lengths: Any, items: Any) -> None:
        if lengths:
            lengths = _RememberedLengths(lengths)
        super().add_postings(schema, lengths, items)


class IndexCodec(W3Codec):
    """Pass as ``codec=`` to every writer of the index."""

    def field_writer(self, storage: Any, segment: Any) -> W3FieldWriter:
        return _FieldWriter(self, storage, segment)

    def new_segment(self, storage: Any, indexname: str) -> W3Segment:
        # The segment is pickled into the index's table of contents with its codec: a plain
        # W3Codec there keeps this class out of the files.
        return W3Segment(W3Codec(self._blocklimit, self._compression, self._inlinelimit), indexname)
