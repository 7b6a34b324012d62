"""Receiving a template file without letting it hurt the portal.

* Streamed in chunks into a private temporary file while it is hashed; the size limit is
  checked before each chunk is written, so a 21 MB body never reaches the disk whole.
* The type comes from the content: zip magic -> a workbook (OOXML parts, opened read-only by
  openpyxl) or a bundle; text -> JSON (``{``/``[``) or CSV. Executables are named as such.
* JSON nesting is measured by a scanner before ``json.loads`` ever recurses.
* Archives are checked from the central directory before anything is read: entry count,
  declared total size and ratio, absolute paths, ``..``, backslashes, symlinks, encryption,
  duplicate names; then each entry's content is checked as a file of its own (no nested
  archives, except a workbook, which passes the workbook checks).
* Filenames are normalized (NFKC, control and bidi characters removed, reserved names,
  length), and the extension follows the detected type.
* Any refusal deletes the temporary file: nothing is stored.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import stat
import tempfile
import unicodedata
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from flask_babel import lazy_gettext as _l

from portal.core.errors import DomainError
from portal.core.storage import Storage
from portal.core.text import clean_text
from portal.gallery.manifest import manifest_schema

CHUNK_SIZE = 256 * 1024
HEAD_BYTES = 64 * 1024
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_ZIP_ENTRIES = 500
MAX_ZIP_TOTAL = 100 * 1024 * 1024
MAX_ZIP_RATIO = 100
MAX_FILENAME_BYTES = 150
PREVIEW_ROWS = 20
PREVIEW_COLUMNS = 30
PREVIEW_CELL = 200
KINDS = ("json", "csv", "xlsx", "zip")

_EXECUTABLE_MAGIC = (
    b"MZ",  # Windows PE
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O / Java class
    b"#!",
)
_ARCHIVE_MAGIC = (
    b"\x1f\x8b",  # gzip
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\x28\xb5\x2f\xfd",  # zstd
)
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"
# Bidi controls and other invisible format characters that disguise a name ("txt.exe").
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_UNSAFE_NAME = re.compile(r'[<>:"/\\|?*]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$", re.IGNORECASE)
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


class UploadRefused(DomainError):
    """A file the gallery will not keep: 422 naming the ``file`` field."""

    status_code = 422
    code = "upload_refused"

    def __init__(self, message: Any, field: str | None = "file") -> None:
        super().__init__(str(message), field=field)


@dataclass(frozen=True)
class Preview:
    """What a moderator sees before approving: escaped by the template that shows it."""

    kind: str
    rows: list[list[str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True)
class Upload:
    key: str
    sha256: str
    size: int
    filename: str
    kind: str
    manifest: dict[str, Any] | None
    preview: Preview


# --- filenames -------------------------------------------------------------------------------


def normalize_filename(raw: str | None, kind: str | None = None) -> str:
    """A name safe on every file system and in a header; never empty, never a path.

    Directory parts are dropped (``../../x`` -> ``x``), Unicode is NFKC-normalized, control
    and bidi characters removed, reserved device names prefixed, and the name cut to
    ``MAX_FILENAME_BYTES`` in UTF-8 keeping its extension. With ``kind`` the extension is
    replaced by the detected type's.
    """
    name = unicodedata.normalize("NFKC", raw or "")
    name = _INVISIBLE.sub("", _CONTROL.sub("", name))
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip().strip(".").strip()
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = " ".join(stem.split()).strip(". ") or "template"
    ext = re.sub(r"[^A-Za-z0-9]", "", ext)[:10].lower()
    if kind is not None:
        ext = kind
    if _RESERVED.match(stem.split(".")[0]):
        stem = f"_{stem}"
    suffix = f".{ext}" if ext else ""
    budget = MAX_FILENAME_BYTES - len(suffix.encode())
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", "ignore").rstrip(". ") or "template"
    return stem + suffix


# --- streaming -------------------------------------------------------------------------------


def receive(
    stream: IO[bytes],
    filename: str | None,
    storage: Storage,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_size: int = CHUNK_SIZE,
) -> Upload:
    """Copy ``stream`` into storage in chunks, check it, and keep it under its hash.

    Raises UploadRefused (and leaves no file) for anything too big or not a template file.
    """
    handle, temp = storage.new_temp()
    digest = hashlib.sha256()
    size = 0
    nul_free = True
    # SHA-256 runs in a helper thread (hashlib releases the GIL) while this one reads and
    # writes the next chunk: at most two chunks are alive at once, the one being hashed and
    # the one being copied.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-hash")
    hashing: Future[None] | None = None
    try:
        with handle:
            while True:
                chunk = stream.read(chunk_size)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRefused(
                        _l(
                            "The file is larger than %(mb)s MB.",
                            mb=f"{max_bytes / (1024 * 1024):g}",
                        )
                    )
                nul_free = nul_free and b"\x00" not in chunk
                handle.write(chunk)
                if hashing is not None:
                    hashing.result()
                hashing = hasher.submit(digest.update, chunk)
                del chunk
            if hashing is not None:
                hashing.result()
        if size == 0:
            raise UploadRefused(_l("The file is empty."))
        kind, manifest, preview = inspect(temp, nul_free=nul_free)
        key = storage.commit(temp, digest.hexdigest())
    except BaseException:
        if hashing is not None:
            hashing.cancel()
        storage.discard(temp)
        raise
    finally:
        hasher.shutdown(wait=True)
    return Upload(
        key=key,
        sha256=digest.hexdigest(),
        size=size,
        filename=normalize_filename(filename, kind),
        kind=kind,
        manifest=manifest,
        preview=preview,
    )


# --- content checks --------------------------------------------------------------------------


def inspect(path: Path, nul_free: bool | None = None) -> tuple[str, dict[str, Any] | None, Preview]:
    """(kind, manifest or None, preview) of a file on disk, or UploadRefused. ``nul_free``
    is what the streaming copy already found (None: scan the file for NUL bytes here)."""
    with path.open("rb") as handle:
        head = handle.read(8)
        handle.seek(0)
        if head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP):
            return _inspect_zip(path)
        kind, data, preview = _inspect_single(handle, head, nul_free=nul_free)
    if kind == "json":
        data = validate_manifest(data)
    return kind, data, preview


def _inspect_single(
    handle: BinaryIO, head: bytes, name: str = "", nul_free: bool | None = None
) -> tuple[str, Any, Preview]:
    where = f"{name}: " if name else ""
    if head.startswith(_EXECUTABLE_MAGIC):
        raise UploadRefused(f"{where}{_l('Executable files are not allowed.')}")
    if head.startswith(_ARCHIVE_MAGIC) or head.startswith(_ZIP_MAGIC):
        raise UploadRefused(f"{where}{_l('Archives inside a bundle are not allowed.')}")
    first = _first_text_byte(handle)
    handle.seek(0)
    if first in (b"{", b"["):
        data = _load_json(handle, where)
        return "json", data, _json_preview(data)
    return "csv", None, _csv_preview(handle, where, nul_free)


def _first_text_byte(handle: BinaryIO) -> bytes:
    sample = handle.read(4096)
    if sample.startswith(codecs.BOM_UTF8):
        sample = sample[3:]
    stripped = sample.lstrip(b" \t\r\n")
    return stripped[:1]


def _json_depth_ok(raw: bytes) -> bool:
    depth = 0
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif token in (b"]", b"}"):
            depth -= 1
    return True


def _load_json(handle: BinaryIO, where: str = "") -> Any:
    raw = handle.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise UploadRefused(f"{where}{_l('A JSON file can be at most 5 MB.')}")
    if not _json_depth_ok(raw):
        raise UploadRefused(
            f"{where}{_l('The JSON is nested too deeply (at most %(n)d levels).', n=MAX_JSON_DEPTH)}"
        )
    try:
        return _clean_strings(json.loads(raw.decode("utf-8-sig")))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UploadRefused(f"{where}{_l('The file is not valid UTF-8 JSON.')}") from error


def _clean_strings(value: Any) -> Any:
    """Control characters out of every key and string: JSON may spell a NUL as ``\\u0000``,
    which PostgreSQL cannot store and no manifest needs."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_strings(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): _clean_strings(item) for key, item in value.items()}
    return value


def validate_manifest(data: Any, field_name: str = "file") -> dict[str, Any]:
    """The manifest if it matches the published schema; else the first problem, by path."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(manifest_schema())
    error = best_match(validator.iter_errors(data))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise UploadRefused(
            _l(
                "The manifest does not match the manifest schema at %(path)s: %(problem)s",
                path=path,
                problem=error.message[:200],
            ),
            field=field_name,
        )
    return data


def neutralize(value: Any) -> str:
    """A preview or export cell: text that a spreadsheet would run as a formula gets a
    leading apostrophe; long cells are cut."""
    if value is None:
        return ""
    text = str(value)[:PREVIEW_CELL]
    text = _CONTROL.sub(" ", text) if not text.startswith(("\t", "\r")) else text
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _json_preview(data: Any) -> Preview:
    rows: list[list[str]] = []
    if isinstance(data, dict):
        for key in ("name", "version", "description"):
            if key in data:
                rows.append([key, neutralize(data[key])])
        requires = data.get("requires")
        if isinstance(requires, dict):
            rows.append(["requires.product", neutralize(requires.get("product"))])
        for source in (data.get("data_sources") or [])[:PREVIEW_ROWS]:
            if isinstance(source, dict):
                rows.append(
                    ["data_source", neutralize(f"{source.get('name')} ({source.get('type')})")]
                )
        for param in (data.get("parameters") or [])[:PREVIEW_ROWS]:
            if isinstance(param, dict):
                rows.append(["parameter", neutralize(f"{param.get('name')}: {param.get('type')}")])
    return Preview(kind="json", rows=rows[: PREVIEW_ROWS * 2])


def _csv_preview(handle: BinaryIO, where: str, nul_free: bool | None = None) -> Preview:
    """Sniffed as text: no NUL byte anywhere in the file, and valid UTF-8 in the first
    ``HEAD_BYTES``, which is also all the preview parses. (Decoding all of a 20 MB file
    would double the cost of an upload; a stray byte further down harms nobody, since the
    file is only ever downloaded.)"""
    binary = f"{where}{_l('The file is binary, not a CSV text file.')}"
    raw = handle.read(HEAD_BYTES)
    if b"\x00" in raw or nul_free is False:
        raise UploadRefused(binary)
    if nul_free is None:
        while chunk := handle.read(CHUNK_SIZE):
            if b"\x00" in chunk:
                raise UploadRefused(binary)
    try:
        head = codecs.getincrementaldecoder("utf-8-sig")().decode(raw, final=len(raw) < HEAD_BYTES)
    except UnicodeDecodeError as error:
        raise UploadRefused(
            f"{where}{_l('The CSV is not UTF-8 text: save it as CSV UTF-8 and try again.')}"
        ) from error
    if len(raw) == HEAD_BYTES and "\n" in head:
        head = head[: head.rindex("\n") + 1]  # whole rows only
    if not head.strip():
        raise UploadRefused(f"{where}{_l('The CSV file is empty.')}")
    try:
        dialect: Any = csv.Sniffer().sniff(head[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(head), dialect)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if len(rows) >= PREVIEW_ROWS:
                break
            rows.append([neutralize(cell) for cell in row[:PREVIEW_COLUMNS]])
    except csv.Error as error:
        raise UploadRefused(
            f"{where}{_l('The CSV cannot be read: %(e)s', e=str(error)[:100])}"
        ) from error
    return Preview(kind="csv", rows=rows, truncated=len(rows) >= PREVIEW_ROWS)


# --- archives --------------------------------------------------------------------------------


def _check_entries(archive: zipfile.ZipFile, archive_size: int) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise UploadRefused(
            _l("The archive has too many entries (at most %(n)d).", n=MAX_ZIP_ENTRIES)
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        path = PurePosixPath(name)
        if (
            "\\" in name
            or "\x00" in name
            or name.startswith("/")
            or re.match(r"^[A-Za-z]:", name)
            or ".." in path.parts
        ):
            raise UploadRefused(
                _l("The archive contains an unsafe path: %(name)s", name=name[:100])
            )
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadRefused(
                _l("The archive contains a symbolic link: %(name)s", name=name[:100])
            )
        if info.flag_bits & 0x1:
            raise UploadRefused(_l("Encrypted archives are not allowed."))
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded in seen:
            raise UploadRefused(
                _l("The archive contains the same name twice: %(name)s", name=name[:100])
            )
        seen.add(folded)
        total += info.file_size
        if info.file_size > 0 and (
            info.compress_size == 0 or info.file_size / info.compress_size > MAX_ZIP_RATIO
        ):
            raise UploadRefused(_l("The archive expands too much (a zip bomb?)."))
    if total > MAX_ZIP_TOTAL:
        raise UploadRefused(
            _l("The archive expands to more than %(mb)d MB.", mb=MAX_ZIP_TOTAL // (1024 * 1024))
        )
    if archive_size and total / archive_size > MAX_ZIP_RATIO:
        raise UploadRefused(_l("The archive expands too much (a zip bomb?)."))
    return infos


def _open_zip(source: Path | IO[bytes], size: int) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise UploadRefused(_l("The file is a damaged archive or workbook.")) from error
    try:
        _check_entries(archive, size)
    except BaseException:
        archive.close()
        raise
    return archive


def _is_workbook(names: set[str]) -> bool:
    return "[Content_Types].xml" in names and "xl/workbook.xml" in names


def _inspect_zip(path: Path) -> tuple[str, dict[str, Any] | None, Preview]:
    size = path.stat().st_size
    with _open_zip(path, size) as archive:
        names = {info.filename for info in archive.infolist()}
        if _is_workbook(names):
            return "xlsx", None, _workbook_preview(archive, path)
        return _inspect_bundle(archive)


def _workbook_preview(archive: zipfile.ZipFile, source: Path | IO[bytes]) -> Preview:
    names = {info.filename.lower() for info in archive.infolist()}
    if any(n.endswith("vbaproject.bin") for n in names):
        raise UploadRefused(_l("Workbooks with macros are not allowed."))
    try:
        archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise UploadRefused(_l("The file is a damaged archive or workbook.")) from error
    # openpyxl judges a path by its extension: give it the open file instead.
    handle = source.open("rb") if isinstance(source, Path) else source
    handle.seek(0)
    try:
        return _read_workbook(handle)
    finally:
        if isinstance(source, Path):
            handle.close()


def _read_workbook(handle: IO[bytes]) -> Preview:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(handle, read_only=True, data_only=False, keep_links=False)
    except Exception as error:  # noqa: BLE001 - any parser failure means "not a workbook"
        raise UploadRefused(_l("The file is not a readable .xlsx workbook.")) from error
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        rows: list[list[str]] = []
        if sheet is not None:
            for row in sheet.iter_rows(
                max_row=PREVIEW_ROWS, max_col=PREVIEW_COLUMNS, values_only=True
            ):
                cells = [neutralize(value) for value in row]
                while cells and cells[-1] == "":
                    cells.pop()  # read-only sheets pad rows to max_col
                rows.append(cells)
        files = [ws.title[:100] for ws in workbook.worksheets[:50]]
    except Exception as error:  # noqa: BLE001
        raise UploadRefused(_l("The file is not a readable .xlsx workbook.")) from error
    finally:
        workbook.close()
    return Preview(kind="xlsx", rows=rows, files=files, truncated=len(rows) >= PREVIEW_ROWS)


def _inspect_bundle(archive: zipfile.ZipFile) -> tuple[str, dict[str, Any] | None, Preview]:
    """Every file in a bundle is a JSON, CSV or workbook checked like an upload of its own;
    ``manifest.json`` at the root is required and validated."""
    manifest: dict[str, Any] | None = None
    files: list[str] = []
    first_table: list[list[str]] = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename
        files.append(name)
        with tempfile.TemporaryFile() as copy:
            with archive.open(info) as entry:
                copied = 0
                while chunk := entry.read(CHUNK_SIZE):
                    copied += len(chunk)
                    if copied > info.file_size:
                        raise UploadRefused(_l("The archive expands too much (a zip bomb?)."))
                    copy.write(chunk)
            copy.seek(0)
            head = copy.read(8)
            copy.seek(0)
            if head.startswith(_ZIP_MAGIC) and name.lower().endswith(".xlsx"):
                with _open_zip(copy, info.file_size) as inner:
                    if not _is_workbook({i.filename for i in inner.infolist()}):
                        raise UploadRefused(
                            f"{name[:100]}: {_l('Archives inside a bundle are not allowed.')}"
                        )
                    preview = _workbook_preview(inner, copy)
                kind = "xlsx"
            else:
                kind, data, preview = _inspect_single(copy, head, name=name[:100])
                if name == "manifest.json":
                    manifest = validate_manifest(data)
        if kind in {"csv", "xlsx"} and not first_table:
            first_table = preview.rows
    if manifest is None:
        raise UploadRefused(_l("A bundle needs a manifest.json at its root."))
    return "zip", manifest, Preview(kind="zip", rows=first_table, files=files)
