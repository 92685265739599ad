"""database_fault: what real driver errors mean for a caller, made by real SQLite files."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc, text

from service.db import DATABASE_FAULTS, database_fault, is_database_fault, make_engine
from service.errors import DatabaseUnavailable, StorageFull


def test_a_full_database_is_storage_full(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE blobs (data BLOB)"))
    with engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
        connection.execute(text(f"PRAGMA max_page_count = {pages}"))
        with pytest.raises(DATABASE_FAULTS) as raised:
            connection.execute(text("INSERT INTO blobs VALUES (randomblob(100000))"))
    fault = database_fault(raised.value)
    assert isinstance(fault, StorageFull)
    assert (fault.status_code, fault.retry_after) == (507, None)
    assert fault.message.startswith("the database is full (database or disk is full)")


def test_a_lock_held_past_the_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with pytest.raises(DATABASE_FAULTS) as raised, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    holder.close()
    fault = database_fault(raised.value)
    assert isinstance(fault, DatabaseUnavailable)
    assert (fault.status_code, fault.retry_after) == (503, 5)
    assert fault.message == (
        "the database is unavailable (another writer held it past the busy timeout); "
        "try again shortly"
    )


def test_no_free_connection_in_the_pool_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=0.01
    )
    with engine.connect(), pytest.raises(exc.TimeoutError) as raised:
        engine.connect()
    assert database_fault(raised.value).message == (
        "the database is unavailable (no database connection was free in time); try again shortly"
    )


def test_an_unreachable_postgres_is_unavailable() -> None:
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused.
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none", timeout_seconds=2)
    with pytest.raises(DATABASE_FAULTS) as raised:
        engine.connect()
    fault = database_fault(raised.value)
    assert isinstance(fault, DatabaseUnavailable)
    assert "Connection refused" in fault.message


def test_any_driver_error_on_a_dead_connection_is_a_database_fault() -> None:
    # SQLAlchemy marks an error whose connection it found dead, whatever class the driver
    # raised; a ProgrammingError on a live connection is the statement's fault.
    cause = sqlite3.ProgrammingError("Cannot operate on a closed database.")
    dead = exc.ProgrammingError("SELECT 1", {}, cause, connection_invalidated=True)
    live = exc.ProgrammingError("SELECT 1", {}, cause)
    assert is_database_fault(dead) is True
    assert is_database_fault(live) is False
    assert is_database_fault(exc.OperationalError("SELECT 1", {}, cause)) is True
    assert is_database_fault(exc.IntegrityError("INSERT", {}, cause)) is False
