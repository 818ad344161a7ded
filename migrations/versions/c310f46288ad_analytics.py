"""analytics: analytics_events (raw, 7 days) and analytics_hours (hourly rollups, 90 days)

Revision ID: c310f46288ad
Revises: 5c2e8d7a1f39
Create Date: 2026-11-26 01:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c310f46288ad'
down_revision = '5c2e8d7a1f39'
branch_labels = None
depends_on = None

BUCKETS = ('le_10', 'le_25', 'le_50', 'le_100', 'le_250', 'le_500', 'le_1000', 'le_2500', 'le_5000', 'le_10000',
           'le_30000', 'le_inf')


def upgrade():
    op.create_table('analytics_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('analytics_events', schema=None) as batch_op:
        batch_op.create_index('ix_analytics_events_user_time', ['user_id', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_events_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_events_occurred_at'), ['occurred_at'], unique=False)

    op.create_table('analytics_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hour', sa.DateTime(), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in (
        'count', 'duration_ms_total', 'duration_ms_max', 'created', 'updated', 'unchanged', 'failed', *BUCKETS)],
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hour', 'integration_id', 'kind', 'outcome', name='uq_analytics_hours_slot')
    )
    with op.batch_alter_table('analytics_hours', schema=None) as batch_op:
        batch_op.create_index('ix_analytics_hours_user_hour', ['user_id', 'hour'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_hours_hour'), ['hour'], unique=False)


def downgrade():
    with op.batch_alter_table('analytics_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analytics_hours_hour'))
        batch_op.drop_index('ix_analytics_hours_user_hour')
    op.drop_table('analytics_hours')

    with op.batch_alter_table('analytics_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analytics_events_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_analytics_events_integration_id'))
        batch_op.drop_index('ix_analytics_events_user_time')
    op.drop_table('analytics_events')
