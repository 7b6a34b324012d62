"""media: when a saved post first showed an image (unclaimed images are swept)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 01:10:00.000000
"""

from alembic import op
import sqlalchemy as sa
import portal.core.db


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('content_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', portal.core.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('content_images', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
