"""qa: questions and answers remember when their followers were told, so a task run twice
tells nobody twice

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-29 19:45:00.000000
"""

from alembic import op
import sqlalchemy as sa

import portal.core.db


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Posts published before this revision stay unmarked: their followers were told (or their
    # task is still queued and must still tell them).
    for table in ('questions', 'answers'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    'followers_told_at', portal.core.db.UTCDateTime(timezone=True), nullable=True
                )
            )


def downgrade() -> None:
    for table in ('questions', 'answers'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('followers_told_at')
