from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

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


def test_0002_adds_stop_reason_to_existing_jobs_and_drops_it_keeping_them(
    settings: Settings,
) -> None:
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine, "0001")
        with engine.begin() as connection:
            values = {"now": datetime.now(UTC), "blob": b"x"}
            for statement in (INSERT_KEY, INSERT_JOB, INSERT_CHECKPOINT):
                connection.execute(text(statement), values)

        migrations.upgrade(engine, "0002")
        assert "stop_reason" in job_columns(engine)
        with engine.begin() as connection:
            assert connection.execute(text(SELECT_JOB)).one() == ("j1", "cancelled", None)
            connection.execute(text("UPDATE jobs SET stop_reason = 'cancelled at epoch 1'"))

        migrations.downgrade(engine, "0001")
        assert "stop_reason" not in job_columns(engine)
        with engine.connect() as connection:
            # Dropping the column left the job and, through its foreign key, its checkpoint.
            assert connection.execute(text("SELECT id, status FROM jobs")).all() == [
                ("j1", "cancelled")
            ]
            assert connection.execute(text("SELECT job_id FROM checkpoints")).all() == [("j1",)]
    finally:
        engine.dispose()


def job_columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("jobs")}


INSERT_KEY = "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ('k1', 'k', 'h', :now)"
INSERT_JOB = (
    "INSERT INTO jobs (id, owner_id, name, status, spec, parameters, epochs, epoch, attempt, "
    "cancel_requested, created_at) "
    "VALUES ('j1', 'k1', 'old', 'cancelled', '{}', 22, 3, 1, 1, false, :now)"
)
INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (job_id, epoch, is_periodic, is_best, is_final, sha256, size_bytes, "
    "weights, state, created_at) VALUES ('j1', 1, true, false, false, 's', 1, :blob, :blob, :now)"
)
SELECT_JOB = "SELECT id, status, stop_reason FROM jobs"
