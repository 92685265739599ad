from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service import migrations
from service.db import make_engine
from service.settings import Settings
from service.tables import Base

TABLES = {"alembic_version", "api_keys", "jobs", "epoch_metrics", "checkpoints", "datasets"}


def test_upgrade_matches_tables_and_downgrades_to_empty(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine)
        assert set(inspect(engine).get_table_names()) == TABLES
        assert migrations.current_revision(engine) == migrations.head_revision()

        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []

        migrations.downgrade(engine)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert migrations.current_revision(engine) is None
    finally:
        engine.dispose()
