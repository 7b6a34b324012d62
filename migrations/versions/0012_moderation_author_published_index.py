"""moderation: partial index of published items by author

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 15:10:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.create_index(
            'ix_moderation_items_author_published',
            ['author_id'],
            unique=False,
            sqlite_where=sa.text("state = 'published'"),
            postgresql_where=sa.text("state = 'published'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_items_author_published')
