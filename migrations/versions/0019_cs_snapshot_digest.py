"""cs_metrics: a digest of each snapshot's computed figures, so a rerun skips unchanged ones

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29 02:50:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing snapshots have none: the next recompute of their day writes them once more.
    with op.batch_alter_table('cs_health_snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('computed_digest', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cs_health_snapshots', schema=None) as batch_op:
        batch_op.drop_column('computed_digest')
