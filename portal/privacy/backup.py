"""``cocreate backup DEST`` and ``cocreate restore SRC``: the database and the uploaded files
in one archive (a directory, or a ``.tar.gz`` when DEST ends so), with a manifest.

The database is copied with the engine's own tool, so the copy is consistent while the app
runs: SQLite's online backup API, or ``pg_dump --format=custom`` for PostgreSQL (restored by
``pg_restore --clean``). The manifest records the Alembic revision and the row count of every
table: a restore refuses an archive made by newer code (its schema would be unknown here) and
checks the counts afterwards. The search index is not archived; it is rebuilt from the
restored database.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess  # nosec B404: runs pg_dump / pg_restore only, never a shell
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import click
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, inspect, select, table, text
from sqlalchemy.engine import URL, Engine

import portal
from portal.core.db import db, utcnow

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
POSTGRES_FILE = "database.dump"
UPLOADS = "uploads"
MIGRATIONS_DIR = Path(portal.__file__).resolve().parent.parent / "migrations"


class BackupError(RuntimeError):
    """The archive cannot be written or restored here; nothing was changed."""


@dataclass
class Manifest:
    format: int
    app_version: str
    alembic_revision: str | None
    dialect: str
    created_at: str
    tables: dict[str, int] = field(default_factory=dict)
    upload_files: int = 0


def _app_version() -> str:
    try:
        return metadata.version("cocreate")
    except metadata.PackageNotFoundError:
        return "unknown"


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table, every table in the database (the Alembic bookkeeping included)."""
    with engine.connect() as connection:
        names = sorted(inspect(connection).get_table_names())
        return {
            name: connection.scalar(select(func.count()).select_from(table(name))) or 0
            for name in names
        }


def database_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.scalar(text("SELECT version_num FROM alembic_version"))


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def check_revision(revision: str | None) -> None:
    """Refuse a revision this code does not know: it was made by newer code."""
    if revision is None:
        return
    scripts = _scripts()
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise BackupError(
            f"The archive's database is at revision {revision}, newer than this version of "
            f"Cocreate knows (newest: {', '.join(scripts.get_heads())}). Upgrade Cocreate first."
        )


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string for the PostgreSQL tools, the password in the environment
    (never on a command line other users can read)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        raise BackupError(f"{command[0]} is not installed (it comes with the PostgreSQL client).")
    # An argument list (no shell) of a resolved tool; the values come from the app's config.
    result = subprocess.run(  # noqa: S603  # nosec B603
        [tool, *command[1:]], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")


def _dump_database(engine: Engine, folder: Path) -> None:
    if engine.dialect.name == "sqlite":
        target = sqlite3.connect(folder / SQLITE_FILE)
        try:
            with engine.connect() as connection:
                connection.connection.driver_connection.backup(target)  # type: ignore[union-attr]
        finally:
            target.close()
    elif engine.dialect.name == "postgresql":
        dsn, env = _libpq(engine.url)
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
             f"--file={folder / POSTGRES_FILE}", f"--dbname={dsn}"],
            env,
        )  # fmt: skip
    else:
        raise BackupError(f"Backing up a {engine.dialect.name} database is not supported.")


def _restore_database(engine: Engine, folder: Path, dialect: str) -> None:
    if dialect != engine.dialect.name:
        raise BackupError(
            f"The archive holds a {dialect} database; this installation uses {engine.dialect.name}."
        )
    engine.dispose()  # no pooled connection may hold the old database open
    if dialect == "sqlite":
        source = sqlite3.connect(folder / SQLITE_FILE)
        target = sqlite3.connect(str(engine.url.database), timeout=30)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
    else:
        dsn, env = _libpq(engine.url)
        _run(
            ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
             "--single-transaction", "--exit-on-error", f"--dbname={dsn}",
             str(folder / POSTGRES_FILE)],
            env,
        )  # fmt: skip


def _copy_uploads(upload_dir: Path, folder: Path) -> int:
    if not upload_dir.is_dir():
        (folder / UPLOADS).mkdir()
        return 0
    shutil.copytree(upload_dir, folder / UPLOADS, symlinks=True)
    return sum(1 for p in (folder / UPLOADS).rglob("*") if p.is_file())


def _replace_uploads(source: Path, upload_dir: Path) -> None:
    """Swap the archived tree in beside the current one, then drop the current one, so a
    failure half-way leaves the old files in place."""
    upload_dir.parent.mkdir(parents=True, exist_ok=True)
    incoming = upload_dir.with_name(upload_dir.name + ".restoring")
    previous = upload_dir.with_name(upload_dir.name + ".before-restore")
    for leftover in (incoming, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(source, incoming, symlinks=True)
    if upload_dir.exists():
        upload_dir.rename(previous)
    incoming.rename(upload_dir)
    shutil.rmtree(previous, ignore_errors=True)


def backup(engine: Engine, upload_dir: Path, dest: Path) -> Manifest:
    """Write the archive to ``dest`` (a new directory, or a ``.tar.gz`` file)."""
    archive = dest.name.endswith(".tar.gz")
    if dest.exists() and (archive or not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} already exists: choose a new name.")
    with tempfile.TemporaryDirectory(prefix="cocreate-backup-") as scratch:
        folder = Path(scratch) / "backup" if archive else dest
        folder.mkdir(parents=True, exist_ok=True)
        _dump_database(engine, folder)
        uploads = _copy_uploads(upload_dir, folder)
        manifest = Manifest(
            format=FORMAT,
            app_version=_app_version(),
            alembic_revision=database_revision(engine),
            dialect=engine.dialect.name,
            created_at=utcnow().isoformat(),
            tables=table_counts(engine),
            upload_files=uploads,
        )
        (folder / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True))
        if archive:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(dest, "w:gz") as tar:
                for entry in sorted(folder.iterdir()):
                    tar.add(entry, arcname=entry.name)
    return manifest


@contextmanager
def _opened(src: Path) -> Iterator[Path]:
    """The archive as a directory (a ``.tar.gz`` is unpacked with tarfile's safe filter)."""
    if src.is_dir():
        yield src
        return
    if not tarfile.is_tarfile(src):
        raise BackupError(f"{src} is neither a backup directory nor a .tar.gz archive.")
    with tempfile.TemporaryDirectory(prefix="cocreate-restore-") as scratch:
        with tarfile.open(src, "r:*") as tar:
            tar.extractall(scratch, filter="data")
        yield Path(scratch)


def read_manifest(folder: Path) -> Manifest:
    try:
        data = json.loads((folder / MANIFEST).read_text())
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError) as error:
        raise BackupError(f"The archive has no readable {MANIFEST}: {error}") from None
    if manifest.format > FORMAT:
        raise BackupError(f"The archive format {manifest.format} is newer than this Cocreate.")
    return manifest


def restore(
    engine: Engine, upload_dir: Path, src: Path
) -> tuple[Manifest, dict[str, tuple[int, int]]]:
    """Replace the database and the uploads with the archive's; returns the manifest and the
    tables whose row counts differ from it (``{table: (expected, found)}``, empty when all
    match). The caller rebuilds the search index."""
    with _opened(src) as folder:
        manifest = read_manifest(folder)
        check_revision(manifest.alembic_revision)
        _restore_database(engine, folder, manifest.dialect)
        _replace_uploads(folder / UPLOADS, upload_dir)
    found = table_counts(engine)
    mismatches = {
        name: (expected, found.get(name, -1))
        for name, expected in manifest.tables.items()
        if found.get(name, -1) != expected
    }
    return manifest, mismatches


# --- commands --------------------------------------------------------------------------------


def _engine() -> Engine:
    return current_app.extensions["cocreate_engine"]


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@with_appcontext
def backup_command(dest: Path) -> None:
    """Back up the database and uploaded files to DEST (a new directory, or a .tar.gz)."""
    try:
        manifest = backup(_engine(), Path(current_app.config["UPLOAD_DIR"]), dest)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    rows = sum(manifest.tables.values())
    click.echo(
        f"Backed up {len(manifest.tables)} tables ({rows:,} rows, revision "
        f"{manifest.alembic_revision}) and {manifest.upload_files} files to {dest}."
    )


@click.command("restore")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore_command(src: Path, yes: bool) -> None:
    """Replace the database and uploaded files with the backup SRC, then rebuild the search
    index. Stop the web server and workers first."""
    from portal.search import index

    if not yes:
        click.confirm(
            "This replaces ALL data and uploaded files with the backup. Continue?", abort=True
        )
    db.session.remove()
    try:
        manifest, mismatches = restore(_engine(), Path(current_app.config["UPLOAD_DIR"]), src)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"Restored the backup of {manifest.created_at} (revision {manifest.alembic_revision}, "
        f"{manifest.upload_files} files)."
    )
    for name, (expected, found) in sorted(mismatches.items()):
        click.echo(f"  {name}: expected {expected} rows, found {found}", err=True)
    stats = index.reindex(db.session, procs=1)
    db.session.rollback()
    click.echo(f"Search index rebuilt: {stats.documents} documents.")
    heads = _scripts().get_heads()
    if manifest.alembic_revision not in heads:
        click.echo("The backup is from an older version: run `cocreate db upgrade` now.")
    if mismatches:
        raise click.ClickException("Row counts differ from the backup's manifest.")
