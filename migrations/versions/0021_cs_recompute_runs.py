"""cs_metrics: recompute runs, so a CSM can recompute after an import and watch it

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29 15:45:00.000000
"""

from alembic import op
import sqlalchemy as sa

import portal.core.db


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cs_recompute_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('accounts_done', sa.Integer(), nullable=False),
        sa.Column('accounts_total', sa.Integer(), nullable=False),
        sa.Column('alerts_raised', sa.Integer(), nullable=True),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ['requested_by_id'], ['users.id'],
            name=op.f('fk_cs_recompute_runs_requested_by_id_users'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cs_recompute_runs')),
    )
    with op.batch_alter_table('cs_recompute_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cs_recompute_runs_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cs_recompute_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cs_recompute_runs_status'))
    op.drop_table('cs_recompute_runs')
