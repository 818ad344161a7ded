"""oauth: pending authorization states, and an integration's auth state (needs reconnect)

Revision ID: d5e8b2c41f7a
Revises: 92f4643047c6
Create Date: 2026-11-26 01:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5e8b2c41f7a'
down_revision = '92f4643047c6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('oauth_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=True),
    sa.Column('pending', sa.JSON(), nullable=False),
    sa.Column('code_verifier', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_states_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state_hash', name=op.f('pk_oauth_states'))
    )
    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_states_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_states_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_state', sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_column('auth_state')

    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_states_user_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_states_created_at'))

    op.drop_table('oauth_states')
