"""The committed migrations build the same schema as the models, on SQLite and PostgreSQL."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from crm.extensions import db
from tests.conftest import make_app


def drop_everything() -> None:
    metadata = sa.MetaData()
    metadata.reflect(bind=db.engine)
    metadata.drop_all(bind=db.engine)


def test_migrations_match_the_models(database_url):
    app = make_app(database_url)
    with app.app_context():
        drop_everything()
        try:
            upgrade()
            with db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                differences = compare_metadata(context, db.metadata)
            assert differences == []
            tables = set(sa.inspect(db.engine).get_table_names())
            assert {"users", "integrations", "alembic_version"} <= tables
            downgrade(revision="base")
            assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        finally:
            db.session.remove()
            drop_everything()
            db.engine.dispose()


def test_upgrading_a_database_with_data(database_url):
    """Rows written under the first schema survive every later migration, with sensible values."""
    app = make_app(database_url)
    with app.app_context():
        drop_everything()
        try:
            upgrade(revision="90d4a52b9445")
            with db.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO users (id, email, password_hash, created_at) VALUES "
                        "(1, 'a@example.com', 'x', '2026-01-01'), (2, 'b@example.com', 'x', '2026-01-01')"
                    )
                )
                for integration_id, created in (
                    ("00000000-0000-4000-8000-000000000001", "2026-01-01"),
                    ("00000000-0000-4000-8000-000000000002", "2026-02-01"),
                ):
                    connection.execute(
                        sa.text(
                            "INSERT INTO integrations (id, user_id, name, type, provider, configuration, secret_hints,"
                            " is_active, created_at, updated_at) VALUES (:id, 1, 'n', 'CRM', 'CHATWOOT', '{}', '{}',"
                            " true, :created, :created)"
                        ),
                        {"id": integration_id, "created": created},
                    )
            upgrade()
            with db.engine.connect() as connection:
                primary = connection.execute(sa.text("SELECT id FROM integrations WHERE is_primary")).scalars().all()
                tokens = connection.execute(sa.text("SELECT session_token FROM users")).scalars().all()
            assert primary == ["00000000-0000-4000-8000-000000000001"]  # the older one
            assert len(set(tokens)) == 2 and all(len(t) == 32 for t in tokens)
        finally:
            db.session.remove()
            drop_everything()
            db.engine.dispose()
