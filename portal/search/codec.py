"""Whoosh's own file format, written with each document's field lengths looked up once.

Whoosh writes a term's postings in blocks that record the shortest and longest document in
them (BM25 uses both to skip blocks), so for every posting it asks the new segment for that
document's field length. Each answer is a column read through a seek; a rebuild asks about
115 times per document, and those reads were 40% of merging the writer processes' postings
(``notes/whoosh-measured.md``). The lengths do not change while a segment is written, so
they are remembered per field and document. The loop over the postings is Whoosh's, with
the posting writer's per-posting method inlined (17.1 against 21.6 s of merging at 30,000
documents); a test checks that the files are byte for byte what Whoosh writes.

The writers also sort their postings faster (:class:`TermOrderPool`) and keep run files
in chunks; ``new_writer`` opens every writer of the index with both.

Segments still name Whoosh's ``W3Codec``: the files are the same, only the writing is
faster, and an index needs nothing of ours to be read.
"""

from __future__ import annotations

import pickle  # run files our own writers wrote, in the index's temp dir  # nosec B403
from collections.abc import Iterator
from itertools import islice
from operator import itemgetter
from typing import Any

from whoosh.codec.base import OutOfOrderError
from whoosh.codec.whoosh3 import W3Codec, W3FieldWriter, W3PerDocReader, W3Segment
from whoosh.multiproc import MpWriter, SubWriterTask
from whoosh.writing import segment_writer
from whoosh.writing.posting_pool import PostingPool

_TERM = itemgetter(1)
_RUN_CHUNK = 50_000  # postings pickled together in a run file


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


class TermOrderPool(PostingPool):
    """Whoosh's posting pool, sorted by term alone where that gives the same order.

    The field writer wants postings in (field, term, document) order, and Whoosh sorts the
    pool's 5-tuples for it, comparing tuples item by item. Postings added document after
    document are already in document order, so a stable sort of each field's postings on
    the term bytes alone gives the same order with a memcmp per comparison: 1.5 against
    3.6 s for the 2.3 million postings of 20,000 documents. Postings that arrive out of
    document order (a merge reads another segment term by term) are sorted as Whoosh does.
    """

    def __init__(self, tempstore: Any, segment: Any, limitmb: int = 128, **kwargs: Any) -> None:
        super().__init__(tempstore, segment, limitmb=limitmb, **kwargs)
        self._by_field: dict[str, list[tuple[Any, ...]]] = {}
        self._last_docnum = -1
        self._in_document_order = True

    def add(self, item: tuple[Any, ...]) -> None:
        fieldname, text, docnum, _weight, value = item
        self.currentsize += 64 + len(fieldname) + len(text) + (len(value) if value else 0)
        if self.currentsize > self.limit:
            self.save()
        if docnum < self._last_docnum:
            self._in_document_order = False
        self._last_docnum = docnum
        postings = self._by_field.get(fieldname)
        if postings is None:
            postings = self._by_field[fieldname] = []
            self.fieldnames.add(fieldname)
        postings.append(item)

    def _sorted(self) -> list[tuple[Any, ...]]:
        by_field, self._by_field = self._by_field, {}
        if not self._in_document_order:
            return sorted(item for postings in by_field.values() for item in postings)
        ordered: list[tuple[Any, ...]] = []
        for fieldname in sorted(by_field):
            postings = by_field[fieldname]
            postings.sort(key=_TERM)  # stable: document order within a term is kept
            ordered.extend(postings)
        return ordered

    def save(self) -> None:
        if self._by_field:
            path, f = self._new_run()
            self._write_run(f, self._sorted())
            self._add_run(path)
        self.currentsize = 0

    def items(self, maxfiles: int = 128) -> Any:
        if not self.runs:
            return self._sorted()
        return super().items(maxfiles)

    # Runs on disk (a pool bigger than ``limitmb``) are pickled a chunk of postings at a
    # time, not one posting per call: writing 11 million postings one by one was 17 s of
    # a 100,000-document rebuild.

    def _write_run(self, f: Any, items: Any) -> None:
        try:
            iterator = iter(items)
            while chunk := list(islice(iterator, _RUN_CHUNK)):
                pickle.dump(chunk, f, pickle.HIGHEST_PROTOCOL)
        finally:
            f.close()

    def _read_run(self, path: str) -> Iterator[tuple[Any, ...]]:
        f = self._open_run(path)
        try:
            while True:
                try:
                    chunk = pickle.load(f)  # noqa: S301 - a run this writer wrote  # nosec B301
                except EOFError:
                    return
                yield from chunk
        finally:
            f.close()
            self._remove_run(path)


class _SubWriterTask(SubWriterTask):
    def run(self) -> None:
        # A process of its own: the writer it opens gets our pool, nothing else changes.
        segment_writer.PostingPool = TermOrderPool
        super().run()


class _MpWriter(MpWriter):
    """Whoosh's multi-process writer whose writer processes use :class:`TermOrderPool`:
    the run file each hands over is read back by this writer's pool (``new_writer``)."""

    def _new_task(self) -> SubWriterTask:
        task = _SubWriterTask(
            self.storage,
            self.indexname,
            self.jobqueue,
            self.resultqueue,
            self.subargs,
            self.multisegment,
            self.tempname,
        )
        self.tasks.append(task)
        task.start()
        return task


def new_writer(ix: Any, procs: int = 1, **kwargs: Any) -> Any:
    """``ix.writer(**kwargs)`` with :class:`IndexCodec` and :class:`TermOrderPool` (Whoosh's
    writers take no pool class)."""
    kwargs["codec"] = IndexCodec()
    writer = _MpWriter(ix, procs=procs, **kwargs) if procs > 1 else ix.writer(**kwargs)
    writer.pool = TermOrderPool(
        writer._tempstorage, writer.newsegment, limitmb=kwargs.get("limitmb", 128)
    )
    return writer
