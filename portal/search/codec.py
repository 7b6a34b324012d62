"""Whoosh's own file format, written with each document's field lengths looked up once.

Whoosh writes a term's postings in blocks that record the shortest and longest document in
them (BM25 uses both to skip blocks), so for every posting it asks the new segment for that
document's field length. Each answer is a column read through a seek; a rebuild asks about
115 times per document, and those reads were 40% of merging the writer processes' postings
(``notes/whoosh-measured.md``). The lengths do not change while a segment is written, so
they are remembered per field and document. The loop over the postings is Whoosh's, with
the posting writer's per-posting method inlined (17.1 against 21.6 s of merging at 30,000
documents); a test checks that the files are byte for byte what Whoosh writes.

Segments still name Whoosh's ``W3Codec``: the files are the same, only the writing is
faster, and an index needs nothing of ours to be read.
"""

from __future__ import annotations

from typing import Any

from whoosh.codec.base import OutOfOrderError
from whoosh.codec.whoosh3 import W3Codec, W3FieldWriter, W3PerDocReader, W3Segment


class _RememberedLengths:
    def __init__(self, lengths: Any) -> None:
        self._lengths = lengths
        self._by_field: dict[str, dict[int, int]] = {}

    def field(self, fieldname: str) -> dict[int, int]:
        """The lengths of ``fieldname`` looked up so far, by document number."""
        known = self._by_field.get(fieldname)
        if known is None:
            known = self._by_field[fieldname] = {}
        return known

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int:
        known = self.field(fieldname)
        length = known.get(docnum)
        if length is None:
            length = known[docnum] = self._lengths.doc_field_length(docnum, fieldname, default)
        return length


class _FieldWriter(W3FieldWriter):
    def add_postings(self, schema: Any, lengths: Any, items: Any) -> None:
        """Whoosh's loop (``whoosh.codec.base.FieldWriter.add_postings``) with
        ``W3PostingsWriter.add_posting`` inlined: the same calls in the same order and the
        same bytes written, without what costs per posting and changes nothing in the files
        (method dispatch, type assertions, length lookups for fields that keep no lengths).
        Merging two writer processes' postings is the serial part of a rebuild: ~115
        postings per document, one at a time."""
        remembered = _RememberedLengths(lengths) if lengths else None
        lastfn: str | None = None
        lasttext: bytes | None = None
        known: dict[int, int] | None = None
        writer: Any = None
        blocklimit = 0
        for fieldname, btext, docnum, weight, value in items:
            if fieldname != lastfn:
                if lastfn is not None:
                    if fieldname < lastfn:
                        raise OutOfOrderError(f"Field {lastfn!r} .. {fieldname!r}")
                    self.finish_term()
                    self.finish_field()
                fieldobj = schema[fieldname]
                self.start_field(fieldname, fieldobj)
                # Only scorable fields keep lengths; Whoosh reads 0 for the others.
                known = remembered.field(fieldname) if remembered and fieldobj.scorable else None
                lastfn, lasttext = fieldname, None
            if docnum == -1:
                continue
            if btext != lasttext:
                if lasttext and btext < lasttext:
                    raise OutOfOrderError(f"Term {lastfn}:{lasttext!r} .. {fieldname}:{btext!r}")
                if lasttext is not None:
                    self.finish_term()
                self.start_term(btext)
                lasttext = btext
                writer = self._postwriter
                blocklimit = writer._blocklimit
            length = 0
            if known is not None:
                length = known.get(docnum)
                if length is None:
                    length = remembered.doc_field_length(docnum, fieldname)  # type: ignore[union-attr]
            if len(writer._ids) >= blocklimit:
                writer._write_block()
            writer._ids.append(docnum)
            writer._weights.append(weight)
            if weight > writer._maxweight:
                writer._maxweight = weight
            if value:
                writer._values.append(value)
            if length:
                if writer._minlength is None or length < writer._minlength:
                    writer._minlength = length
                if length > writer._maxlength:
                    writer._maxlength = length
        if lasttext is not None:
            self.finish_term()
        if lastfn is not None:
            self.finish_field()


class _PerDocReader(W3PerDocReader):
    """Remembers which column files a finished segment has: merging asks for every field of
    every document, and Whoosh answers each question about a field without lengths with a
    file-system lookup (12 per document here, ~5% of a rebuild)."""

    def __init__(self, storage: Any, segment: Any) -> None:
        super().__init__(storage, segment)
        self._has_column: dict[str, bool] = {}

    def has_column(self, fieldname: str) -> bool:
        known = self._has_column.get(fieldname)
        if known is None:
            known = self._has_column[fieldname] = super().has_column(fieldname)
        return known


class IndexCodec(W3Codec):
    """Pass as ``codec=`` to every writer of the index."""

    def per_document_reader(self, storage: Any, segment: Any) -> W3PerDocReader:
        return _PerDocReader(storage, segment)

    def field_writer(self, storage: Any, segment: Any) -> W3FieldWriter:
        return _FieldWriter(self, storage, segment)

    def new_segment(self, storage: Any, indexname: str) -> W3Segment:
        # The segment is pickled into the index's table of contents with its codec: a plain
        # W3Codec there keeps this class out of the files.
        return W3Segment(W3Codec(self._blocklimit, self._compression, self._inlinelimit), indexname)
