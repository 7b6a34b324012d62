"""The schema is whatever the migrations build: upgrade matches the models, downgrade empties."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import portal.models  # noqa: F401
from portal import migrate
from portal.core.db import Base, make_engine
from tests.conftest import TEST_DATABASE_URL, sibling_database


def test_upgrade_matches_models_and_downgrade_to_base_works(tmp_root):
    url = sibling_database(TEST_DATABASE_URL, "migrations", tmp_root)
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        migrate.downgrade(url, "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)  # and back up again from empty
        with engine.connect() as connection:
            assert set(Base.metadata.tables) <= set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
