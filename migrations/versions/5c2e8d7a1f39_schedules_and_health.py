"""schedules and health: sync_schedules, scheduled_slots, integration_health, users.timezone

Revision ID: 5c2e8d7a1f39
Revises: d5e8b2c41f7a
Create Date: 2026-11-26 01:50:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5c2e8d7a1f39'
down_revision = 'd5e8b2c41f7a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False))

    op.create_table('sync_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('cron', sa.String(length=100), nullable=True),
    sa.Column('time_of_day', sa.String(length=5), nullable=True),
    sa.Column('next_run_at', sa.DateTime(), nullable=True),
    sa.Column('last_slot_at', sa.DateTime(), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=True),
    sa.Column('last_message', sa.String(length=255), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('integration_id')
    )
    with op.batch_alter_table('sync_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_schedules_next_run_at'), ['next_run_at'], unique=False)

    op.create_table('scheduled_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=False),
    sa.Column('slot_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sync_run_id', sa.String(length=36), nullable=True),
    sa.Column('instance', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('integration_id', 'slot_at', name='uq_scheduled_slots_integration_slot')
    )
    with op.batch_alter_table('scheduled_slots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduled_slots_integration_id'), ['integration_id'], unique=False)

    op.create_table('integration_health',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_outcome', sa.String(length=32), nullable=True),
    sa.Column('last_message', sa.Text(), nullable=True),
    sa.Column('last_checked_at', sa.DateTime(), nullable=True),
    sa.Column('next_check_at', sa.DateTime(), nullable=False),
    sa.Column('notified_status', sa.String(length=8), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('integration_id')
    )
    with op.batch_alter_table('integration_health', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_integration_health_next_check_at'), ['next_check_at'], unique=False)


def downgrade():
    with op.batch_alter_table('integration_health', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_integration_health_next_check_at'))
    op.drop_table('integration_health')
    with op.batch_alter_table('scheduled_slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduled_slots_integration_id'))
    op.drop_table('scheduled_slots')
    with op.batch_alter_table('sync_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_schedules_next_run_at'))
    op.drop_table('sync_schedules')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('timezone')
