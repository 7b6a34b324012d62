"""moderation: the identical-post check reads an (author, digest) index

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28 10:20:00.000000
"""

from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_items_source_digest')
        batch_op.create_index(
            'ix_moderation_items_author_digest',
            ['author_id', 'source_digest', 'submitted_at'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('moderation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_items_author_digest')
        batch_op.create_index(
            'ix_moderation_items_source_digest', ['source_digest'], unique=False
        )
