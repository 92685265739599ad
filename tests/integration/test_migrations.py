import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from service import migrations
from service.db import make_engine
from service.settings import Settings
from service.specs import JobSpec
from service.tables import Base

TABLES = {
    "alembic_version",
    "api_keys",
    "jobs",
    "epoch_metrics",
    "checkpoints",
    "datasets",
    "sweeps",
}


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


def test_0003_writes_an_uploaded_datasets_shapes_into_its_jobs_specs_and_removes_them(
    settings: Settings,
) -> None:
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine, "0002")
        with engine.begin() as connection:
            values = {"now": datetime.now(UTC), "blob": b"x"}
            connection.execute(text(INSERT_KEY), values)
            connection.execute(text(INSERT_DATASET), values)
            for job_id, dataset_id in (("j1", "d1"), ("j2", "gone"), ("j3", None)):
                spec = OLD_SPEC if dataset_id is None else stored_uploaded_spec(dataset_id)
                connection.execute(text(INSERT_SPEC_JOB), {**values, "id": job_id, "spec": spec})

        migrations.upgrade(engine, "0003")
        specs = job_specs(engine)
        assert specs["j1"]["dataset"]["shape"] == {
            "samples": 4,
            "input_shape": [2],
            "task": "classification",
            "num_classes": 3,
            "target_shape": [],
        }
        # The migrated spec is one today's service reads; the others are left as they were.
        assert getattr(JobSpec.model_validate(specs["j1"]).dataset, "shape", None) is not None
        assert specs["j2"] == json.loads(stored_uploaded_spec("gone"))
        assert specs["j3"] == json.loads(OLD_SPEC)

        migrations.downgrade(engine, "0002")
        assert job_specs(engine)["j1"] == json.loads(stored_uploaded_spec("d1"))
    finally:
        engine.dispose()


def test_0004_stores_blobs_uncompressed_on_postgresql(settings: Settings, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("column storage is PostgreSQL's; on SQLite 0004 does nothing")
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine, "0004")
        assert blob_storage(engine) == {"weights": "e", "state": "e", "data": "e"}
        migrations.downgrade(engine, "0003")
        assert blob_storage(engine) == {"weights": "x", "state": "x", "data": "x"}
    finally:
        engine.dispose()


def test_0008_converts_an_existing_sqlite_file_to_incremental_vacuum_keeping_its_rows(
    settings: Settings,
) -> None:
    engine = make_engine(settings.database_url)
    try:
        migrations.upgrade(engine, "0004")
        with engine.begin() as connection:
            values = {"now": datetime.now(UTC), "blob": b"x" * 100_000}
            for statement in (INSERT_KEY, INSERT_JOB, INSERT_CHECKPOINT):
                connection.execute(text(statement), values)
        assert auto_vacuum(settings) in (None, 0)

        migrations.upgrade(engine, "0008")
        assert auto_vacuum(settings) in (None, 2)  # 2: INCREMENTAL
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name, last_used_at FROM api_keys")).all() == [
                ("k", None)
            ]
            assert connection.execute(text("SELECT length(weights) FROM checkpoints")).all() == [
                (100_000,)
            ]

        migrations.downgrade(engine, "0004")
        assert auto_vacuum(settings) in (None, 0)
        assert "last_used_at" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    finally:
        engine.dispose()


def auto_vacuum(settings: Settings) -> int | None:
    """SQLite's auto_vacuum mode, read on a connection of its own; None on PostgreSQL."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return None
    with closing(sqlite3.connect(str(url.database))) as connection:
        return int(connection.execute("PRAGMA auto_vacuum").fetchone()[0])


def blob_storage(engine: Engine) -> dict[str, str]:
    """pg_attribute.attstorage of the blob columns: e external, x extended (compressed)."""
    query = (
        "SELECT attname, attstorage FROM pg_attribute "
        "WHERE attrelid IN ('checkpoints'::regclass, 'datasets'::regclass) "
        "AND attname IN ('weights', 'state', 'data')"
    )
    with engine.connect() as connection:
        return {name: storage for name, storage in connection.execute(text(query)).all()}


def stored_uploaded_spec(dataset_id: str) -> str:
    return json.dumps({"dataset": {"kind": "uploaded", "id": dataset_id}, **SPEC_REST})


def job_specs(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, spec FROM jobs")).all()
    return {job_id: json.loads(spec) if isinstance(spec, str) else spec for job_id, spec in rows}


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
INSERT_DATASET = (
    "INSERT INTO datasets (id, owner_id, filename, format, samples, input_shape, task, "
    "num_classes, target_shape, sha256, size_bytes, data, created_at) VALUES ('d1', 'k1', "
    "'d.csv', 'csv', 4, '[2]', 'classification', 3, '[]', 's', 1, :blob, :now)"
)
INSERT_SPEC_JOB = (
    "INSERT INTO jobs (id, owner_id, name, status, spec, parameters, epochs, epoch, attempt, "
    "cancel_requested, created_at) "
    "VALUES (:id, 'k1', 'old', 'succeeded', :spec, 15, 1, 1, 1, false, :now)"
)
SPEC_REST = {
    "model": {"layers": [{"type": "Linear", "in_features": 2, "out_features": 3}]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "epochs": 1,
    "seed": 1,
}
OLD_SPEC = json.dumps(
    {"dataset": {"kind": "spiral", "classes": 3, "points_per_class": 2}, **SPEC_REST}
)
