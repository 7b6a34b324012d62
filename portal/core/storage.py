"""Where uploaded files live: content-addressed blobs behind a small interface (the gallery's
template files, the images in posts; each area under its own folder of ``UPLOAD_DIR``).

Local disk now; an object store later only has to implement ``Storage``. A blob's key is
``sha256/<2 hex>/<64 hex>``: the same bytes uploaded twice are stored once, and a key never
names a path a client chose. Incoming bytes go to a private temporary file in the same file
system, so ``commit`` is an atomic rename and a refused upload leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Collection, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

_KEY = re.compile(r"^sha256/([0-9a-f]{2})/([0-9a-f]{64})$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def key_for(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise ValueError("not a sha256 hex digest")
    return f"sha256/{digest[:2]}/{digest}"


class Storage(Protocol):
    def new_temp(self) -> tuple[BinaryIO, Path]: ...

    def commit(self, temp: Path, digest: str) -> str: ...

    def discard(self, temp: Path) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def size(self, key: str) -> int: ...

    def stored(self) -> Iterator[tuple[str, float]]: ...


class LocalStorage:
    """Blobs under ``root``; temporary files under ``root/.incoming`` (same device)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.incoming = self.root / ".incoming"

    def new_temp(self) -> tuple[BinaryIO, Path]:
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller
            dir=self.incoming, prefix="up-", suffix=".part", delete=False
        )
        return handle, Path(handle.name)

    def _path(self, key: str) -> Path:
        match = _KEY.match(key)
        if match is None:
            raise ValueError("not a storage key")
        return self.root / "sha256" / match.group(1) / match.group(2)

    def commit(self, temp: Path, digest: str) -> str:
        key = key_for(digest)
        target = self._path(key)
        if target.exists():
            temp.unlink(missing_ok=True)
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o640)
        os.replace(temp, target)
        return key

    def discard(self, temp: Path) -> None:
        temp.unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def stored(self) -> Iterator[tuple[str, float]]:
        """Every blob's key and modification time (seconds since the epoch)."""
        for path in sorted((self.root / "sha256").glob("*/*")):
            key = f"sha256/{path.parent.name}/{path.name}"
            if _KEY.match(key) and path.is_file():
                yield key, path.stat().st_mtime

    def temp_files(self) -> list[Path]:
        """Leftover incoming files (tests assert there are none after a refusal)."""
        return sorted(self.incoming.glob("*")) if self.incoming.exists() else []


def storage_for(upload_dir: str | os.PathLike[str], area: str) -> LocalStorage:
    return LocalStorage(Path(upload_dir) / area)


def delete_unreferenced(
    storage: Storage, referenced: Collection[str], min_age: timedelta = timedelta(hours=1)
) -> int:
    """Delete the stored blobs no row refers to (a blob shared by identical uploads stays
    while one row refers to it). Blobs younger than ``min_age`` stay: an upload stores its
    blob before its row commits."""
    cutoff = time.time() - min_age.total_seconds()
    removed = 0
    for key, modified in storage.stored():
        if key not in referenced and modified < cutoff:
            storage.delete(key)
            removed += 1
    return removed
