"""media: images uploaded into posts

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 00:40:00.000000
"""

from alembic import op
import sqlalchemy as sa
import portal.core.db


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('content_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('storage_key', sa.String(length=80), nullable=False),
    sa.Column('content_type', sa.String(length=20), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('uploader_id', sa.Integer(), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_content_images_organization_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploader_id'], ['users.id'], name=op.f('fk_content_images_uploader_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content_images')),
    sa.UniqueConstraint('name', name=op.f('uq_content_images_name'))
    )
    with op.batch_alter_table('content_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_content_images_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_content_images_storage_key'), ['storage_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_content_images_uploader_id'), ['uploader_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('content_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_content_images_uploader_id'))
        batch_op.drop_index(batch_op.f('ix_content_images_storage_key'))
        batch_op.drop_index(batch_op.f('ix_content_images_organization_id'))

    op.drop_table('content_images')
