"""Engines and sessions: SQLite with WAL, busy timeout and foreign keys; PostgreSQL pre-pinged.

Callers own their transactions: `transaction(...)` commits on success and rolls back on error.
On SQLite a transaction that will write should pass `immediate=True` (BEGIN IMMEDIATE): it takes
the write lock up front, so it waits on busy_timeout instead of failing when it upgrades.
"""

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.errors import DatabaseUnavailable, ServiceError, StorageFull

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_PAGE_SIZE = 65536


def make_engine(url: str, *, pool_size: int = 5, timeout_seconds: float = 30.0) -> Engine:
    """`pool_size` connections kept open, up to 10 more under load. A checkout waits at most
    `timeout_seconds` for a free connection, and a new PostgreSQL connection as long to open."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=10,
            pool_timeout=timeout_seconds,
            connect_args={
                # libpq counts whole seconds, and treats 1 as 2.
                "connect_timeout": max(2, math.ceil(timeout_seconds)),
                # A peer that vanished without closing the connection (a failover, a cable) is
                # noticed in about 25 s instead of the kernel's two hours.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=10,
        pool_timeout=timeout_seconds,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Leave BEGIN to the "begin" hook below, so it can choose DEFERRED or IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Before anything creates the file: a new database gets 64 KiB pages (an existing one
        # keeps its own). A checkpoint's megabytes then fill a few dozen pages, not hundreds,
        # each a WAL frame written at commit and copied back at the WAL checkpoint.
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, immediate: bool = False) -> Iterator[Session]:
    """One unit of work: commit if the block returns, roll back if it raises."""
    with factory() as session:
        if immediate:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# What a driver raises when the database, not the statement, is at fault: it is unreachable,
# restarting, locked past busy_timeout, out of connections, or full.
DATABASE_FAULTS = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,  # the pool's: no connection was free in time
)
POSTGRES_DISK_FULL = "53100"


def is_database_fault(error: BaseException) -> bool:
    """One of DATABASE_FAULTS, or any driver error on a connection SQLAlchemy found dead
    (whatever class the driver gave it)."""
    invalidated = isinstance(error, exc.DBAPIError) and error.connection_invalidated
    return invalidated or isinstance(error, DATABASE_FAULTS)


def database_fault(error: Exception) -> ServiceError:
    """The ServiceError one of DATABASE_FAULTS means: StorageFull when the database or its
    disk is full, else DatabaseUnavailable, each saying what happened."""
    # SQLite may roll a whole transaction back when it is full, so the error that arrives can
    # be a later one ("no such savepoint") raised while handling the first.
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__context__
    for link in chain:
        cause = getattr(link, "orig", None) or link
        if _sqlite_code(cause) == sqlite3.SQLITE_FULL or (
            getattr(cause, "sqlstate", None) == POSTGRES_DISK_FULL
        ):
            return StorageFull(
                f"the database is full ({_first_line(cause)}); nothing was stored. Free space "
                "on the disk that holds it (SERVICE_DATABASE_URL), then send the request again"
            )
    cause = getattr(error, "orig", None) or error
    reason = _first_line(cause)
    sqlite_code = _sqlite_code(cause)
    if isinstance(error, exc.TimeoutError):
        reason = "no database connection was free in time"
    elif sqlite_code == sqlite3.SQLITE_BUSY:
        reason = "another writer held it past the busy timeout"
    return DatabaseUnavailable(f"the database is unavailable ({reason}); try again shortly")


def _sqlite_code(error: object) -> int:
    """SQLite's primary result code; Python reports the extended one (SQLITE_BUSY_SNAPSHOT...)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


def _first_line(error: object) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
