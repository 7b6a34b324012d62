"""task outbox: tasks tracked until they complete

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 07:10:00.000000
"""

from alembic import op
import sqlalchemy as sa
import portal.core.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('task_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_outbox'))
    )


def downgrade() -> None:
    op.drop_table('task_outbox')
