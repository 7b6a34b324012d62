"""media: an image is fetched only by those who may read a post that shows it

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-28 10:40:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('content_images', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('is_public', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column('audience_organization_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_content_images_audience_organization_id_organizations'),
            'organizations',
            ['audience_organization_id'],
            ['id'],
            ondelete='CASCADE',
        )
    # Images posts already show were served to anyone with the link: they stay public (the
    # next save of a private post that shows one does not narrow it).
    op.execute("UPDATE content_images SET is_public = true WHERE claimed_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('content_images', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_content_images_audience_organization_id_organizations'),
            type_='foreignkey',
        )
        batch_op.drop_column('audience_organization_id')
        batch_op.drop_column('is_public')
