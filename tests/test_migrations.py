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
