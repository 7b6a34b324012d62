"""cs_metrics: usage events keyed by (account, day, metric), without a surrogate id

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29 14:05:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The unique key becomes the primary key; the id, referenced by nothing, goes (with its
    # sequence on PostgreSQL). SQLite rebuilds the table.
    with op.batch_alter_table('cs_usage_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_cs_usage_events_organization_id_day_metric', type_='unique')
        batch_op.drop_constraint('pk_cs_usage_events', type_='primary')
        batch_op.drop_column('id')
        batch_op.create_primary_key('pk_cs_usage_events', ['organization_id', 'day', 'metric'])


def downgrade() -> None:
    with op.batch_alter_table('cs_usage_events', schema=None) as batch_op:
        batch_op.drop_constraint('pk_cs_usage_events', type_='primary')
        batch_op.create_unique_constraint(
            'uq_cs_usage_events_organization_id_day_metric', ['organization_id', 'day', 'metric']
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE cs_usage_events ADD COLUMN id BIGSERIAL')
        op.create_primary_key('pk_cs_usage_events', 'cs_usage_events', ['id'])
    else:
        # SQLite: a new table with an INTEGER PRIMARY KEY (the rowid), the rows copied over.
        with op.batch_alter_table('cs_usage_events', schema=None, recreate='always') as batch_op:
            batch_op.add_column(sa.Column('id', sa.Integer(), nullable=True))
        op.execute('UPDATE cs_usage_events SET id = rowid')
        with op.batch_alter_table('cs_usage_events', schema=None, recreate='always') as batch_op:
            batch_op.alter_column('id', existing_type=sa.Integer(), nullable=False)
            batch_op.create_primary_key('pk_cs_usage_events', ['id'])
