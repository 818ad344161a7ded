"""integration creation key: one integration per create form or API Idempotency-Key; settled primaries

Revision ID: b7c41e2a9d10
Revises: fd2dafa031f7
Create Date: 2026-11-26 01:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7c41e2a9d10'
down_revision = 'fd2dafa031f7'
branch_labels = None
depends_on = None

OPERATING_PROVIDERS = ("CHATWOOT",)  # a frozen copy of the providers with can_operate today


def settle_primaries(connection):
    """Only an active integration the platform can act in may be primary: keep each user's flag on
    the one crm.integrations.service.primary_of names (the flagged one if it can be, else the oldest)."""
    rows = connection.execute(
        sa.text("SELECT id, user_id, provider, is_active, is_primary, created_at FROM integrations")
    ).all()
    by_user = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(row)
    update = sa.text("UPDATE integrations SET is_primary = :flag WHERE id = :id")
    for integrations in by_user.values():
        eligible = [r for r in integrations if r.is_active and r.provider in OPERATING_PROVIDERS]
        eligible.sort(key=lambda r: (not r.is_primary, str(r.created_at)))
        primary = eligible[0].id if eligible else None
        changes = [
            {"flag": r.id == primary, "id": r.id} for r in integrations if bool(r.is_primary) != (r.id == primary)
        ]
        if changes:
            connection.execute(update, changes)


def upgrade():
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('creation_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_integrations_user_creation_key', ['user_id', 'creation_key'])
    settle_primaries(op.get_bind())


def downgrade():
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_constraint('uq_integrations_user_creation_key', type_='unique')
        batch_op.drop_column('creation_key')
