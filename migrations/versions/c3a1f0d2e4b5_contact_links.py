"""contact sync state per CRM account (contact_links); sync runs name their integration and trigger

Revision ID: c3a1f0d2e4b5
Revises: b7c41e2a9d10
Create Date: 2026-11-26 01:45:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c3a1f0d2e4b5'
down_revision = 'b7c41e2a9d10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'contact_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.String(length=36), nullable=False),
        sa.Column('target', sa.String(length=64), nullable=False),
        sa.Column('integration_id', sa.String(length=36), nullable=True),
        sa.Column('remote_id', sa.String(length=64), nullable=True),
        sa.Column('synced_hash', sa.String(length=64), nullable=True),
        sa.Column('sync_error', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('contact_id', 'target', name='uq_contact_links_contact_target'),
    )
    with op.batch_alter_table('contact_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_links_target'), ['target'], unique=False)

    # The one target each contact had becomes its first link (the key is the same account key, so an
    # unchanged contact still costs no request after the upgrade).
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, sync_target, remote_id, synced_hash, sync_error, updated_at FROM contacts "
            "WHERE sync_target IS NOT NULL OR sync_error IS NOT NULL"
        )
    ).all()
    insert = sa.text(
        "INSERT INTO contact_links (contact_id, target, remote_id, synced_hash, sync_error, updated_at) "
        "VALUES (:contact_id, :target, :remote_id, :synced_hash, :sync_error, :updated_at)"
    )
    values = [
        {
            "contact_id": contact_id,
            "target": target or "",
            "remote_id": str(remote_id) if remote_id is not None else None,
            "synced_hash": synced_hash,
            "sync_error": sync_error,
            "updated_at": updated_at,
        }
        for contact_id, target, remote_id, synced_hash, sync_error, updated_at in rows
    ]
    for start in range(0, len(values), 1000):
        connection.execute(insert, values[start : start + 1000])

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('sync_error')
        batch_op.drop_column('synced_hash')
        batch_op.drop_column('remote_id')
        batch_op.drop_column('sync_target')

    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('integration_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('trigger', sa.String(length=16), nullable=False, server_default='manual'))


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('trigger')
        batch_op.drop_column('integration_id')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sync_target', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('remote_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('synced_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('sync_error', sa.Text(), nullable=True))
    with op.batch_alter_table('contact_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_links_target'))
    op.drop_table('contact_links')
