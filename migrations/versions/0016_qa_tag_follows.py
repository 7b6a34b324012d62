"""qa: people following a tag hear of each new question with it

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28 01:45:00.000000
"""

from alembic import op
import sqlalchemy as sa
import portal.core.db


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('qa_tag_follows',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_qa_tag_follows_tag_id_tags'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_qa_tag_follows_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'tag_id', name=op.f('pk_qa_tag_follows'))
    )
    with op.batch_alter_table('qa_tag_follows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_tag_follows_tag_id'), ['tag_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('qa_tag_follows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_tag_follows_tag_id'))

    op.drop_table('qa_tag_follows')
