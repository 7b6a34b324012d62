"""Backup and restore round trips on SQLite and PostgreSQL: data made with the factories is
backed up, changed and deleted, restored, and must come back row for row, file for file, with
the search index rebuilt; archives from newer code are refused."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import migrate
from portal.app import create_app
from portal.core.identity import Organization, User
from portal.privacy import backup as backup_module
from portal.privacy.backup import backup_command, restore_command
from portal.qa.models import Question
from portal.search import index
from tests import factories
from tests.conftest import sibling_database, test_config
from tests.qa_factories import QA, member

# On the database the suite is given, as every other test: CI's SQLite lane backs up SQLite,
# its PostgreSQL lane PostgreSQL (each case ran in both lanes, twice the time for nothing).
PG_URL = os.environ.get("TEST_DATABASE_URL", "")


@pytest.fixture(params=["postgresql" if PG_URL.startswith("postgresql") else "sqlite"])
def live(request, tmp_path) -> Iterator[tuple]:
    """An app on a database of its own (the restore really replaces it), with a session that
    commits, and its own upload directory."""
    base = "" if request.param == "sqlite" else PG_URL
    url = sibling_database(base, "backup", tmp_path)
    migrate.upgrade(url)
    app = create_app(test_config(url, tmp_path, UPLOAD_DIR=str(tmp_path / "uploads")))
    engine = app.extensions["cocreate_engine"]
    session = Session(bind=engine, expire_on_commit=False)
    factories.bind(session)
    yield app, session
    session.close()
    engine.dispose()


def snapshot(session: Session) -> dict:
    session.expire_all()
    return {
        "users": sorted(session.scalars(select(User.email))),
        "orgs": sorted(session.scalars(select(Organization.name))),
        "questions": sorted(
            (q.id, q.title, q.body_source) for q in session.scalars(select(Question))
        ),
    }


def test_round_trip_restores_rows_files_and_search(live, tmp_path):
    app, session = live
    uploads = Path(app.config["UPLOAD_DIR"])
    qa = QA(app, session)
    org = factories.OrganizationFactory(name="Acme Backup")
    author = member(organization=org, display_name="Berta Backup")
    kept = qa.question(author, title="How do I restore a backup of the portal?")
    qa.answer(kept)
    doomed = factories.UserFactory(organization=org, email="doomed@example.com")
    with app.app_context():
        session.commit()
    kept_id, doomed_id = kept.id, doomed.id
    (uploads / "gallery" / "1").mkdir(parents=True)
    (uploads / "gallery" / "1" / "shot.png").write_bytes(b"\x89PNG original bytes")
    before = snapshot(session)
    session.close()

    runner = app.test_cli_runner()
    dest = tmp_path / "backups" / "nightly.tar.gz"
    made = runner.invoke(backup_command, [str(dest)], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    assert "Backed up" in made.output and dest.is_file()

    # Change, delete and add after the backup.
    session.get(Question, kept_id).title = "Changed after the backup"
    session.delete(session.get(User, doomed_id))
    factories.OrganizationFactory(name="Created later")
    session.commit()
    (uploads / "gallery" / "1" / "shot.png").write_bytes(b"overwritten")
    (uploads / "late.txt").write_text("not in the backup")
    assert snapshot(session) != before
    session.close()

    done = runner.invoke(restore_command, [str(dest), "--yes"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "Search index rebuilt" in done.output

    assert snapshot(session) == before
    assert (uploads / "gallery" / "1" / "shot.png").read_bytes() == b"\x89PNG original bytes"
    assert not (uploads / "late.txt").exists()
    with app.app_context():
        report = index.check(session)
        assert report.ok and report.expected >= 1
    session.rollback()

    # The counts in the manifest are what the restored database holds.
    engine = app.extensions["cocreate_engine"]
    with backup_module._opened(dest) as folder:
        manifest = backup_module.read_manifest(folder)
    assert manifest.tables == backup_module.table_counts(engine)
    assert manifest.tables["users"] >= 2 and manifest.upload_files == 1
    assert manifest.alembic_revision == backup_module.database_revision(engine)
    assert manifest.dialect == engine.dialect.name


def test_directory_archive_from_newer_code_is_refused_and_nothing_changes(live, tmp_path):
    app, session = live
    factories.OrganizationFactory(name="Before")
    session.commit()
    runner = app.test_cli_runner()
    dest = tmp_path / "dir-backup"
    assert runner.invoke(backup_command, [str(dest)], catch_exceptions=False).exit_code == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    assert set(manifest) >= {"app_version", "alembic_revision", "tables", "created_at"}
    manifest["alembic_revision"] = "9999_from_the_future"
    (dest / "manifest.json").write_text(json.dumps(manifest))
    factories.OrganizationFactory(name="After")
    session.commit()

    refused = runner.invoke(restore_command, [str(dest), "--yes"])
    assert refused.exit_code != 0 and "newer" in refused.output
    assert "After" in snapshot(session)["orgs"]

    again = runner.invoke(backup_command, [str(dest)])  # never overwrites an archive
    assert again.exit_code != 0 and "already exists" in again.output


def test_restore_rejects_what_is_not_a_backup(live, tmp_path):
    app, _session = live
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not a tarball")
    result = app.test_cli_runner().invoke(restore_command, [str(junk), "--yes"])
    assert result.exit_code != 0 and "neither" in result.output
