"""contact sort key

Revision ID: fd2dafa031f7
Revises: 83815d3dd638
Create Date: 2026-11-26 00:41:01.486181

"""
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'fd2dafa031f7'
down_revision = '83815d3dd638'
branch_labels = None
depends_on = None

DIGIT_RUN = re.compile(r"[0-9]+")


def _without_accents(text):
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def natural_sort_key(name):
    # A frozen copy of crm.models.natural_sort_key: a migration must not change when the app does.
    padded = DIGIT_RUN.sub(lambda run: run.group().lstrip("0").rjust(20, "0"), _without_accents(name or "").casefold())
    return padded[:255]


def upgrade():
    # Add the column nullable, compute every existing contact's key, then enforce it and index it.
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sort_key', sa.String(length=255), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, name FROM contacts")).all()
    update = sa.text("UPDATE contacts SET sort_key = :key WHERE id = :id")
    for start in range(0, len(rows), 1000):  # executemany, a thousand rows at a time
        batch = rows[start : start + 1000]
        connection.execute(update, [{"key": natural_sort_key(name), "id": contact_id} for contact_id, name in batch])
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.alter_column('sort_key', existing_type=sa.String(length=255), nullable=False)
        batch_op.create_index('ix_contacts_user_sort', ['user_id', 'sort_key', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_user_sort')
        batch_op.drop_column('sort_key')
