"""The one write path to the search index.

Features call :func:`schedule` whenever something that may be indexed changed (published,
edited, hidden, rejected, removed, made private); the index follows the database after commit:
the (kind, id) pairs collected on the session are sent, once it commits, to the
``portal.search.update_documents`` task, which re-reads them from their search source and
adds, replaces or deletes their documents in one writer commit. With a broker that task runs
on the ``search`` queue (concurrency 1: Whoosh has one writer); inline it runs in the request
right after the commit, serialized by a process-wide lock and a writer timeout.

The database is the truth. The index lives in a directory under ``SEARCH_INDEX_DIR`` named by
the ``CURRENT`` pointer file; :func:`reindex` builds a fresh directory and swaps the pointer
atomically, so a crashed or corrupt index is replaced without a window where search is empty.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

from celery import shared_task
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session
from whoosh import index as whoosh_index
from whoosh.index import FileIndex, LockError
from whoosh.writing import OPTIMIZE

from portal.core.db import new_session
from portal.core.tasks import RETRY_POLICY, enqueue_after_commit
from portal.search.codec import new_writer
from portal.search.registry import SearchDocument, get_source, sources
from portal.search.schema import FIELD_GAP, SCHEMA, SNIPPET_CHARS, TITLE_REPEAT

log = logging.getLogger(__name__)

POINTER = "CURRENT"
_PENDING_KEY = "cocreate_search_pending"
_WRITE_LOCK = threading.RLock()  # one writer per process; the file lock covers processes
_INDEXES: dict[str, FileIndex] = {}
_INDEXES_LOCK = threading.Lock()
OPEN_ATTEMPTS = 3  # looks at a directory before calling it broken (a commit may be under way)
WRITER_TIMEOUT = 10.0  # seconds a writer waits for another process's lock
MAX_BODY_CHARS = 50_000


class IndexUnavailable(RuntimeError):
    """The index directory cannot be opened (deleted, missing table of contents, corrupt
    segment): searches say "search is being rebuilt" until ``cocreate search reindex``."""


# Roots this process has had an index in: if its CURRENT pointer vanishes, the index was
# deleted under us, and a fresh empty one would silently answer "no results" for everything.
_SEEN_ROOTS: set[str] = set()
# (root -> directory name) found empty at start-up while the database has documents: that
# directory is not searched until a reindex points CURRENT elsewhere.
_EMPTY_AT_START: dict[str, str] = {}
# The files of each opened directory when it was opened: any change (a writer's commit, or
# something outside truncating or garbling them) opens the directory again, which validates it.
_SIGNATURES: dict[str, tuple[tuple[str, int, int], ...]] = {}


# --- where the index is ------------------------------------------------------------------


def index_root(root: str | Path | None = None) -> Path:
    return Path(root if root is not None else current_app.config["SEARCH_INDEX_DIR"])


def current_name(root: Path) -> str | None:
    """The directory the ``CURRENT`` pointer names, or None before the first build."""
    try:
        name = (root / POINTER).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def _swap(root: Path, name: str) -> None:
    """Point ``CURRENT`` at ``name`` atomically (rename over the old pointer)."""
    tmp = root / f".{POINTER}.{token_hex(4)}"
    tmp.write_text(name)
    os.replace(tmp, root / POINTER)


def _new_dir(root: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = root / f"ix-{stamp}-{token_hex(3)}"
    path.mkdir(parents=True)
    return path


def _signature(path: str) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime) of the directory's tables of contents and segment files (not a
    writer's files in progress): one scandir, microseconds."""
    try:
        with os.scandir(path) as entries:
            files = [(e.name, e.stat()) for e in entries if e.name.endswith((".toc", ".seg"))]
    except (FileNotFoundError, NotADirectoryError):
        return ()
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in files))


def close_failed_files(error: BaseException) -> None:
    """Whoosh leaves a file open when it fails to read it (a garbled table of contents, a
    truncated segment) and the failed frames keep it alive: close the files those frames
    opened now, rather than leave them to a garbage collection much later."""
    from whoosh.filedb.structfile import StructFile

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # and the errors it chains
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, StructFile | io.IOBase):
                    with contextlib.suppress(Exception):
                        value.close()
            tb = tb.tb_next
        current = current.__cause__ or current.__context__


def _forget(key: str) -> None:
    with _INDEXES_LOCK:
        _INDEXES.pop(key, None)
        _SIGNATURES.pop(key, None)


def open_index(root: str | Path | None = None, *, writing: bool = False) -> tuple[str, FileIndex]:
    """The current index (created empty on first use) and the name of its directory.

    Raises :class:`IndexUnavailable` when the directory was deleted, will not open, or its
    files changed outside a writer and no longer open: the caller says search is being
    rebuilt, and ``cocreate search reindex`` rebuilds it from the database. An index found
    empty at start-up is not searched, but ``writing`` still updates it: a worker that
    started while the first posts were being saved must index them, not refuse.
    """
    base = index_root(root)
    name = current_name(base)
    if name is None:
        if str(base) in _SEEN_ROOTS:
            raise IndexUnavailable(f"search index in {base} was deleted")
        with _WRITE_LOCK:
            name = current_name(base)
            if name is None:
                base.mkdir(parents=True, exist_ok=True)
                path = _new_dir(base)
                whoosh_index.create_in(str(path), SCHEMA)
                _swap(base, path.name)
                name = path.name
    if not writing and _EMPTY_AT_START.get(str(base)) == name:
        raise IndexUnavailable(f"search index {base / name} is empty: it must be rebuilt")
    key = str(base / name)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            ix = _open_checked(key)
            break
        except IndexUnavailable:
            # A writer committing in another thread or process swaps the table of contents
            # and deletes merged segments: look again before calling the index broken.
            if attempt == OPEN_ATTEMPTS - 1 or not os.path.isdir(key):
                raise
            time.sleep(0.02 * (attempt + 1))
    _SEEN_ROOTS.add(str(base))
    return name, ix


def _open_checked(key: str) -> FileIndex:
    """The directory's index, opened again whenever its files changed (which validates it)."""
    signature = _signature(key)
    if not any(file.endswith(".toc") for file, _size, _mtime in signature):
        _forget(key)
        raise IndexUnavailable(f"search index {key} is missing or has no table of contents")
    ix = _INDEXES.get(key)
    if ix is not None and _SIGNATURES.get(key) == signature:
        return ix
    with _INDEXES_LOCK:
        ix = _INDEXES.get(key)
        if ix is not None and _SIGNATURES.get(key) == signature:
            return ix
        try:
            ix = whoosh_index.open_dir(key, schema=SCHEMA)  # ours, not the pickled one
        except Exception as error:  # missing TOC, unreadable files, bad pickle
            _INDEXES.pop(key, None)
            _SIGNATURES.pop(key, None)
            close_failed_files(error)
            raise IndexUnavailable(f"search index {key} cannot be opened: {error}") from error
        _INDEXES[key] = ix
        _SIGNATURES[key] = signature
        return ix


def _catalog_counts(session: Session) -> dict[str, int]:
    """Indexable documents per kind in the database (what each source's catalog lists)."""
    return {kind: sum(1 for _ in source.catalog(session)) for kind, source in sources().items()}


def _index_counts(ix: FileIndex, kinds: Iterable[str]) -> dict[str, int]:
    """Live (not deleted) documents per kind in the index."""
    from whoosh.query import Term

    with ix.searcher() as searcher:
        return {kind: len(list(searcher.docs_for_query(Term("kind", kind)))) for kind in kinds}


def _differences(expected: dict[str, int], indexed: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(indexed, in the database) for each kind whose counts differ."""
    return {k: (indexed.get(k, 0), n) for k, n in expected.items() if indexed.get(k, 0) != n}


def in_step(session: Session, root: str | Path | None = None) -> bool:
    """Whether the index opens and holds as many documents per kind as the database."""
    try:
        _name, ix = open_index(root)
        expected = _catalog_counts(session)
        return not _differences(expected, _index_counts(ix, expected))
    except Exception:  # missing, damaged, or a segment that will not read
        return False


def startup_check(root: str | Path, session: Session | None = None) -> bool:
    """Open the index once at start-up and log (not raise) when it is broken or, given a
    session, out of step with the database: its document count per kind differs from the
    catalogs' (a few thousand documents: milliseconds; ``check`` compares every id).

    An index that is empty while the database has documents (deleted while the portal was
    down) is not searched until it is rebuilt: searches say so instead of finding nothing.
    """
    base = index_root(root)
    try:
        name, ix = open_index(base)
    except IndexUnavailable as error:
        log.error("%s; run `cocreate search reindex` to rebuild it from the database", error)
        request_rebuild(base)
        return False
    if session is None:
        return True
    try:
        expected = _catalog_counts(session)
    except SQLAlchemyError as error:  # a database not migrated yet (`cocreate db upgrade`)
        session.rollback()
        log.debug("search start-up check skipped: %s", error)
        return True
    try:
        indexed = _index_counts(ix, expected)
    except Exception as error:  # a segment that will not read
        log.error(
            "search index %s cannot be read (%s); run `cocreate search reindex` to rebuild "
            "it from the database",
            base / name,
            error,
        )
        request_rebuild(base)
        return False
    differ = _differences(expected, indexed)
    if not differ:
        return True
    if not any(indexed.values()):
        _EMPTY_AT_START[str(base)] = name
    log.error(
        "search index %s is out of step with the database (%s); run `cocreate search "
        "reindex` to rebuild it",
        base / name,
        ", ".join(f"{k}: {i} indexed, {n} in the database" for k, (i, n) in sorted(differ.items())),
    )
    request_rebuild(base)
    return False


def _writer(ix: FileIndex, **kwargs: Any) -> Any:
    """A writer that waits for another process's lock instead of failing at once."""
    return new_writer(ix, timeout=WRITER_TIMEOUT, delay=0.05, **kwargs)


# --- documents ---------------------------------------------------------------------------


def doc_id(kind: str, object_id: int) -> str:
    return f"{kind}:{object_id}"


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def visibility_of(doc: SearchDocument) -> str:
    return "public" if doc.private_to_org_id is None else f"org:{doc.private_to_org_id}"


def to_fields(doc: SearchDocument) -> dict[str, Any]:
    """What Whoosh stores for one document."""
    tags = [t.replace(",", " ").strip().lower() for t in doc.tags]
    tags = [t for t in tags if t]
    body = (doc.body or "")[:MAX_BODY_CHARS]
    title = doc.title or ""
    return {
        "id": doc_id(doc.kind, doc.object_id),
        "kind": doc.kind,
        "object_id": doc.object_id,
        "title": title,
        "content": FIELD_GAP.join(
            (*[title] * TITLE_REPEAT, " ".join(tags), body, " ".join(doc.keywords))
        ),
        "tags": ",".join(tags),
        "tag_list": ",".join(tags).encode(),
        "visibility": visibility_of(doc),
        "owner_org": str(doc.owner_org_id) if doc.owner_org_id is not None else "none",
        "answered": bool(doc.answered),
        "url": doc.url,
        "updated_at": iso(doc.updated_at),
        "prefix": title,
        "spell": f"{title} {' '.join(tags)}",
        "snippet": " ".join(body[: SNIPPET_CHARS * 2].split())[:SNIPPET_CHARS],
    }


def load_documents(
    session: Session, pairs: Iterable[tuple[str, int]]
) -> tuple[list[SearchDocument], list[str]]:
    """Documents as they should be indexed now, and the ids that should leave the index."""
    by_kind: dict[str, set[int]] = defaultdict(set)
    for kind, object_id in pairs:
        by_kind[kind].add(int(object_id))
    documents: list[SearchDocument] = []
    gone: list[str] = []
    for kind, ids in by_kind.items():
        try:
            source = get_source(kind)
        except LookupError:
            gone.extend(doc_id(kind, i) for i in ids)
            continue
        found = source.load(session, sorted(ids))
        documents.extend(found)
        present = {d.object_id for d in found}
        gone.extend(doc_id(kind, i) for i in ids - present)
    return documents, gone


def apply_updates(
    session: Session, pairs: Iterable[tuple[str, int]], root: str | Path | None = None
) -> int:
    """Re-read ``pairs`` from their sources and update the index in one writer commit."""
    documents, gone = load_documents(session, pairs)
    if not documents and not gone:
        return 0
    _name, ix = open_index(root, writing=True)
    with _WRITE_LOCK:
        writer = _writer(ix)
        try:
            for key in gone:
                writer.delete_by_term("id", key)
            for doc in documents:
                writer.update_document(**to_fields(doc))
            writer.commit()
        except BaseException:
            # A commit can fail too (disk full): the writer's file lock must be let go either
            # way, or every later write waits for it and gives up until a restart.
            with contextlib.suppress(Exception):
                writer.cancel()
            with contextlib.suppress(Exception):
                writer.writelock.release()
            raise
    return len(documents) + len(gone)


# --- scheduling after commit -------------------------------------------------------------


def schedule(session: Session, kind: str, object_id: int) -> None:
    """Re-read ``kind``/``object_id`` from its search source once ``session`` commits, and
    add, update or delete its document accordingly."""
    if isinstance(session, scoped_session):
        session = session()  # the request's session (views and hooks pass db.session)
    if not session.in_transaction():
        session.begin()  # so a rollback before any flush still drops what was scheduled
    session.info.setdefault(_PENDING_KEY, set()).add((kind, int(object_id)))


@event.listens_for(Session, "before_commit")
def _enqueue_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is being released; the outer commit sends everything
    pending = session.info.pop(_PENDING_KEY, None)
    if pending and not has_app_context():
        # A script without the app: never fail its commit over the index (check repairs it).
        log.warning("search index not scheduled outside an app context: %r", sorted(pending))
        return
    if pending:
        enqueue_after_commit(session, update_documents, sorted([k, i] for k, i in pending))


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: object) -> None:
    # Any rollback of the outermost transaction (even one that never reached the database)
    # drops what was scheduled in it; a rolled-back savepoint leaves the outer work pending.
    if getattr(previous_transaction, "parent", None) is None:
        session.info.pop(_PENDING_KEY, None)


_TASK_POLICY = {**RETRY_POLICY, "autoretry_for": (*RETRY_POLICY["autoretry_for"], LockError)}


@shared_task(name="portal.search.update_documents", bind=True, **_TASK_POLICY)
def update_documents(self: Any, pairs: Sequence[Sequence[Any]]) -> int:
    """Bring the documents of ``pairs`` ([kind, id] lists) in line with the database."""
    try:
        with new_session() as session:
            return apply_updates(session, [(str(k), int(i)) for k, i in pairs])
    except Exception:
        if not self.request.is_eager:
            raise  # retried with backoff by the worker
        # Inline, in a request that already committed (a lock, a full disk, a broken index):
        # never show the user an index error for a post that was saved.
        # The next ``cocreate search check`` reports the stale ids; reindex repairs them.
        log.exception("search index not updated for %r", list(pairs))
        return 0


REBUILD_REQUEST_SECONDS = 600  # how often one process may ask for a rebuild
_REBUILD_REQUESTED: dict[str, float] = {}


def request_rebuild(root: str | Path | None = None) -> bool:
    """Ask a worker to rebuild an index found missing, damaged or out of step, so that "search
    is being rebuilt" comes true without an operator.

    Only where a worker runs tasks: inline (no broker) the rebuild would hold up the start-up
    or the request that found the damage, so the error log's `cocreate search reindex` stays
    the way. A process asks at most once per REBUILD_REQUEST_SECONDS, and the task looks
    again before it rebuilds, so every process of a deployment asking makes one rebuild."""
    if not has_app_context() or current_app.extensions["celery"].conf.task_always_eager:
        return False
    base = str(index_root(root))
    now = time.monotonic()
    if now - _REBUILD_REQUESTED.get(base, -REBUILD_REQUEST_SECONDS) < REBUILD_REQUEST_SECONDS:
        return False
    _REBUILD_REQUESTED[base] = now
    try:
        rebuild_task.apply_async(retry=False)
    except Exception as error:  # the broker is down: nothing to lose, the log says what to do
        log.error("search rebuild not requested (%s); run `cocreate search reindex`", error)
        return False
    log.warning("search index %s must be rebuilt: a worker was asked to rebuild it", base)
    return True


@shared_task(name="portal.search.rebuild", **_TASK_POLICY)
def rebuild_task() -> int:
    """Rebuild the index unless it is in step by now (another request's rebuild ran first,
    or an operator's ``cocreate search reindex``); how many documents were indexed."""
    with new_session() as session:
        if in_step(session):
            return 0
        stats = reindex(session)
        log.warning("search index rebuilt: %d documents in %.0f s", stats.documents, stats.seconds)
        return stats.documents


@shared_task(name="portal.search.optimize", **_TASK_POLICY)
def optimize_task() -> bool:
    return optimize()


def optimize(root: str | Path | None = None) -> bool:
    """Merge all segments into one (queries over one segment are 1.2–1.8x faster)."""
    _name, ix = open_index(root, writing=True)
    with _WRITE_LOCK:
        _optimize(ix)
    return True


def _optimize(ix: FileIndex) -> None:
    # An explicit merge policy: ``commit(optimize=True)`` after a multi-process writer
    # was seen to leave two segments.
    writer = _writer(ix)
    if len(ix._segments()) > 1:
        writer.commit(mergetype=OPTIMIZE)
    else:
        writer.cancel()


BEAT_SCHEDULE = {
    "search-optimize": {"task": "portal.search.optimize", "schedule": 6 * 3600.0},
}


# --- rebuild and check -------------------------------------------------------------------


@dataclass
class ReindexStats:
    documents: int
    seconds: float
    directory: str
    caught_up: int = 0

    @property
    def rate(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0


def catalog(session: Session) -> dict[str, str]:
    """Every id that should be in the index, with its last change (ISO UTC)."""
    expected: dict[str, str] = {}
    for kind, source in sources().items():
        for object_id, updated_at in source.catalog(session):
            expected[doc_id(kind, object_id)] = iso(updated_at)
    return expected


def reindex(
    session: Session,
    progress: Callable[[int, int], None] | None = None,
    root: str | Path | None = None,
    procs: int = 1,
    limitmb: int = 256,
    batch: int = 500,
) -> ReindexStats:
    """Build the whole index from the database into a fresh directory, then swap it in.

    Searches keep using the old directory until the swap; changes committed meanwhile are
    caught up from a check right after it. Older directories are removed, keeping the
    previous one for processes that still have it open.
    """
    base = index_root(root)
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    plan: list[tuple[str, list[int]]] = []
    for kind, source in sources().items():
        plan.append((kind, sorted(object_id for object_id, _ in source.catalog(session))))
    total = sum(len(ids) for _, ids in plan)
    path = _new_dir(base)
    ix = whoosh_index.create_in(str(path), SCHEMA)
    kwargs: dict[str, Any] = {"limitmb": limitmb}
    if procs > 1:
        # The writer processes' postings are merged into one segment at commit. Keeping
        # their segments and merging those afterwards (one segment answers 1.2-1.8x faster)
        # took longer than indexing itself: 1,021 against 729 docs/s at 30,000 documents.
        # At 100,000 documents on 2 cores: 1,210 docs/s with 2 processes, 999 with one.
        kwargs["procs"] = procs
    writer = new_writer(ix, **kwargs)
    done = 0
    try:
        for kind, ids in plan:
            source = get_source(kind)
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                for doc in source.load(session, chunk):
                    writer.add_document(**to_fields(doc))
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
                session.expunge_all()  # keep memory flat on big catalogs
    except BaseException:
        writer.cancel()
        shutil.rmtree(path, ignore_errors=True)
        raise
    writer.commit(optimize=True)
    documents = ix.doc_count()
    seconds = time.perf_counter() - started
    previous = current_name(base)
    with _WRITE_LOCK:
        _swap(base, path.name)
    _remove_old_dirs(base, keep={path.name, previous or ""})
    report = check(session, root=base)
    caught_up = 0
    if not report.ok:
        caught_up = apply_updates(session, report.pairs(), root=base)
    return ReindexStats(documents, seconds, str(path), caught_up)


def _remove_old_dirs(base: Path, keep: set[str]) -> None:
    for child in base.iterdir():
        if child.is_dir() and child.name.startswith("ix-") and child.name not in keep:
            with _INDEXES_LOCK:
                _INDEXES.pop(str(child), None)
            shutil.rmtree(child, ignore_errors=True)


@dataclass
class CheckReport:
    expected: int
    indexed: int
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.extra or self.error)

    def pairs(self) -> list[tuple[str, int]]:
        out = []
        for key in (*self.missing, *self.stale, *self.extra):
            kind, _, object_id = key.rpartition(":")
            if object_id.isdigit():
                out.append((kind, int(object_id)))
        return out


def check(session: Session, root: str | Path | None = None) -> CheckReport:
    """Compare the index with the database: ids missing from the index, documents whose
    ``updated_at`` differs (stale), and documents that should not be there (extra)."""
    expected = catalog(session)
    try:
        _name, ix = open_index(root)
        with ix.searcher() as searcher:
            actual = {f["id"]: f.get("updated_at") for f in searcher.all_stored_fields()}
    except IndexUnavailable as error:
        return CheckReport(len(expected), 0, sorted(expected), error=str(error))
    return CheckReport(
        expected=len(expected),
        indexed=len(actual),
        missing=sorted(set(expected) - set(actual)),
        stale=sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k]),
        extra=sorted(set(actual) - set(expected)),
    )
