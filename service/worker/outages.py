"""The database's faults, told apart from a job's own errors, and waited out.

A lost connection, a database restarting or unreachable, SQLite's lock wait running out, a full
disk: none of them is the job's doing, so none may fail it or end the worker. The worker stops
what it was doing, waits here with capped exponential backoff until the database takes the
write that failed, and carries on.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import exc

from service.db import SQLITE_BUSY_TIMEOUT_MS, is_database_fault

log = logging.getLogger(__name__)

T = TypeVar("T")
# Tries the work that failed again without keeping it; raises DatabaseOutage while it would fail.
Probe = Callable[[], None]

# The first wait after a fault; each further one doubles, up to the cap. The cap stays well under
# a lease (30 s by default), so a worker whose lease survived the fault hands its job back itself.
FIRST_WAIT_SECONDS = 0.1
MAX_WAIT_SECONDS = 5.0
# How often a long wait says it is still waiting.
LOG_EVERY_SECONDS = 60.0

DISK_FULL = (
    "database or disk is full: free space on the database's disk (or delete old jobs and "
    "datasets) and the work carries on by itself; waiting"
)
LOCKED = (
    "database is locked: another process held SQLite's write lock for longer than busy_timeout "
    f"({SQLITE_BUSY_TIMEOUT_MS / 1000:g} s); waiting"
)


class DatabaseOutage(Exception):
    """The database did not take a read or a write, for a reason that is not the job's."""

    def __init__(self, reason: str, *, probe: Probe | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # None: any answer from the database will do.
        self.probe = probe


class Interrupted(Exception):
    """The worker was told to shut down while it waited for the database."""


def outage_reason(error: BaseException) -> str | None:
    """What is wrong with the database if `error` is an infrastructure fault; None otherwise.

    DB-API's OperationalError and InterfaceError are, by its definition, faults of the database's
    operation rather than of the statement (PostgreSQL's AdminShutdown, connection refused or
    reset, DiskFull, a deadlock; SQLite's locked or full database); a connection SQLAlchemy found
    dead is one too, whatever the driver called it. An IntegrityError or a DataError is not.
    """
    if isinstance(error, DatabaseOutage):
        return error.reason
    if not is_database_fault(error):
        return None
    if not isinstance(error, exc.DBAPIError):
        return f"{type(error).__name__}: {error}"
    original = error.orig if error.orig is not None else error
    message = (str(original).strip().splitlines() or [""])[0]
    if "database or disk is full" in message:
        return DISK_FULL
    if "database is locked" in message:
        return LOCKED
    return f"{type(original).__name__}: {message}" if message else type(original).__name__


@contextmanager
def converted(probe: Probe | None = None) -> Iterator[None]:
    """Raise an infrastructure fault inside the block as DatabaseOutage; anything else as is."""
    try:
        yield
    except DatabaseOutage:
        raise
    except Exception as error:
        reason = outage_reason(error)
        if reason is None:
            raise
        raise DatabaseOutage(reason, probe=probe) from error


class Backoff:
    """Waits between tries at something the database must take, and says so in the log: once
    when the waiting starts, then every minute, then once when the database answers."""

    def __init__(self, *, what: str, stop: threading.Event) -> None:
        self.what = what
        self.stop = stop
        self.delay = FIRST_WAIT_SECONDS
        self.since: float | None = None
        self.logged_at = 0.0

    def wait(self, reason: str) -> None:
        """Sleep before the next try; raises Interrupted if the worker is shutting down."""
        moment = time.monotonic()
        if self.since is None:
            self.since = self.logged_at = moment
            log.warning("%s waits for the database: %s", self.what, reason)
        elif moment - self.logged_at >= LOG_EVERY_SECONDS:
            self.logged_at = moment
            log.warning(
                "%s still waits for the database after %.0f s: %s",
                self.what,
                moment - self.since,
                reason,
            )
        if self.stop.wait(self.delay):
            raise Interrupted(f"{self.what}: shut down while waiting for the database")
        self.delay = min(self.delay * 2, MAX_WAIT_SECONDS)

    def answered(self) -> None:
        """The database took the work: log how long it took, and start over."""
        if self.since is not None:
            log.info(
                "the database answers again after %.1f s; %s carries on",
                time.monotonic() - self.since,
                self.what,
            )
        self.delay = FIRST_WAIT_SECONDS
        self.since = None


def retry(work: Callable[[], T], *, what: str, stop: threading.Event) -> T:
    """`work()` until it runs without an outage, waiting with backoff between tries.

    Raises Interrupted if the worker shuts down first; any other error goes to the caller."""
    backoff = Backoff(what=what, stop=stop)
    while True:
        try:
            with converted():
                result = work()
        except DatabaseOutage as outage:
            backoff.wait(outage.reason)
            continue
        backoff.answered()
        return result
