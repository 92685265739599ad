"""Wake an idle worker when a job is queued, instead of leaving the job to the worker's next poll.

A commit that queues a job (a submit, a job released at shutdown, a requeue after a lapsed lease)
rings the doorbell, and every worker waiting between polls wakes and tries to claim at once. A
ring is only a hint: workers still poll every SERVICE_POLL_SECONDS, so a lost ring costs one poll
interval at most, and a spurious one costs one empty claim.

- SQLite (the api and the workers share the file, so they share one machine): each waiting worker
  holds a named pipe in `<database file>-doorbell/`, and a ring writes a byte to each of them
  after the commit.
- PostgreSQL: NOTIFY in the transaction that queues the job (PostgreSQL delivers it when that
  transaction commits, and never if it rolls back); each worker LISTENs on a connection of its own
  and listens again after that connection drops, polling meanwhile.
- Anything else (an in-memory database, a system without named pipes): polling only.

Wiring, at the entry points: `ring_on_commit(sessions, open_doorbell(settings))`; `jobs` marks
the transactions that queue a job with `job_queued(session)`; a worker waits on
`doorbell.listen()`.
"""

import contextlib
import errno
import logging
import os
import secrets
import selectors
import time
from pathlib import Path
from types import TracebackType

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service import repository
from service.settings import Settings

log = logging.getLogger(__name__)

# One channel per database; a worker of another schema on the same database that hears it makes
# one empty claim.
CHANNEL = "service_job_queued"
# session.info key: this transaction queued a job.
_QUEUED = "wakeup.job_queued"
# PostgreSQL: give up connecting after this long, and notice a silently dead LISTEN connection
# (no FIN, no RST: a cable pulled) within about a minute rather than the kernel's two hours.
CONNECT_TIMEOUT_SECONDS = 5
RECONNECT_SECONDS = 1.0
KEEPALIVE_IDLE_SECONDS = 30


def job_queued(session: Session) -> None:
    """Mark the session's transaction as one that queues a job: its commit rings."""
    session.info[_QUEUED] = True


def ring_on_commit(sessions: sessionmaker[Session], doorbell: "Doorbell") -> None:
    """Make every commit through `sessions` that queued a job ring `doorbell`."""

    @event.listens_for(sessions, "before_commit")
    def _before_commit(session: Session) -> None:
        if session.info.get(_QUEUED) and not session.in_nested_transaction():
            doorbell.ring_in(session)

    @event.listens_for(sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        if not session.in_nested_transaction() and session.info.pop(_QUEUED, False):
            try:
                doorbell.ring()
            except OSError as error:
                # Committed already: the job is queued, and a worker finds it when it polls.
                log.warning("could not ring the workers' doorbell: %s", error)


def open_doorbell(settings: Settings) -> "Doorbell":
    url = make_url(settings.database_url)
    if url.get_backend_name() == "postgresql":
        # libpq takes the same URL without SQLAlchemy's driver name.
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresDoorbell(conninfo=conninfo)
    on_disk = url.database not in (None, "", ":memory:")
    if url.get_backend_name() == "sqlite" and on_disk and hasattr(os, "mkfifo"):
        return PipeDoorbell(directory=Path(f"{url.database}-doorbell").resolve())
    return Doorbell()


class Listener:
    """A worker's end of the doorbell: `wait` returns at a ring, an `interrupt` or the timeout.

    This base hears only interrupts (its own pipe); subclasses add what a ring arrives on.
    """

    def __init__(self) -> None:
        self._closed = False
        self._interrupts, self._interrupter = os.pipe()
        os.set_blocking(self._interrupts, False)
        os.set_blocking(self._interrupter, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._interrupts, selectors.EVENT_READ)

    def wait(self, timeout: float) -> bool:
        """True if woken by a ring or an interrupt, False if the timeout passed first."""
        deadline = time.monotonic() + timeout
        while (ready := self._selector.select(max(0.0, deadline - time.monotonic()))) != []:
            woken = False
            for key, _ in ready:
                if key.fd == self._interrupts:
                    _drain(self._interrupts)
                    woken = True
                else:
                    woken = self._heard(key.fd) or woken
            if woken:
                return True
            if self._deaf():
                return False
        return False

    def interrupt(self) -> None:
        """End the current or next `wait` now; safe from a signal handler or another thread."""
        if not self._closed:
            _poke(self._interrupter)

    def close(self) -> None:
        self._closed = True
        self._selector.close()
        os.close(self._interrupts)
        os.close(self._interrupter)

    def _heard(self, fd: int) -> bool:
        """Read what made `fd` ready; True if it was a ring."""
        raise NotImplementedError

    def _deaf(self) -> bool:
        """Whether it lost what rings arrive on (and `wait` should return to fix that)."""
        return False

    def __enter__(self) -> "Listener":
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: object, _tb: TracebackType | None
    ) -> None:
        self.close()


class Doorbell:
    """Polling only: a ring wakes nobody."""

    def ring_in(self, session: Session) -> None:
        """In the transaction that queued a job, just before it commits."""

    def ring(self) -> None:
        """After the transaction that queued a job committed."""

    def listen(self) -> Listener:
        """Start listening: rings from now on wake the listener's next `wait`, even one that
        arrives before it."""
        return Listener()


# --- SQLite: a named pipe per waiting worker ------------------------------------------------------


class PipeDoorbell(Doorbell):
    def __init__(self, *, directory: Path) -> None:
        self.directory = directory

    def ring(self) -> None:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return  # no worker has listened yet
        for entry in entries:
            if entry.name.endswith(".pipe"):
                self._ring_one(Path(entry.path))

    def _ring_one(self, path: Path) -> None:
        try:
            pipe = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno == errno.ENXIO:
                # Nobody holds it open for reading: its worker died without removing it (a live
                # listener opens its pipe before the pipe gets a name a ring looks at).
                path.unlink(missing_ok=True)
            elif error.errno != errno.ENOENT:
                log.warning(
                    "cannot ring %s: %s; that worker will find the job when it polls", path, error
                )
            return
        try:
            _poke(pipe)
        finally:
            os.close(pipe)

    def listen(self) -> Listener:
        return PipeListener(directory=self.directory)


class PipeListener(Listener):
    def __init__(self, *, directory: Path) -> None:
        super().__init__()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        pending = directory / f"{name}.pending"
        os.mkfifo(pending, 0o600)
        self._reader = os.open(pending, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the pipe open between rings: with no writer left, a pipe reads as
        # closed, always ready, and the wait would spin.
        self._writer = os.open(pending, os.O_WRONLY | os.O_NONBLOCK)
        self.path = directory / f"{name}.pipe"
        pending.rename(self.path)
        self._selector.register(self._reader, selectors.EVENT_READ)

    def _heard(self, fd: int) -> bool:
        _drain(fd)
        return True

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        super().close()
        os.close(self._reader)
        os.close(self._writer)


# --- PostgreSQL: LISTEN/NOTIFY --------------------------------------------------------------------


class PostgresDoorbell(Doorbell):
    def __init__(self, *, conninfo: str) -> None:
        self.conninfo = conninfo

    def ring_in(self, session: Session) -> None:
        repository.notify(session, channel=CHANNEL)

    def listen(self) -> Listener:
        return PostgresListener(conninfo=self.conninfo)


class PostgresListener(Listener):
    def __init__(self, *, conninfo: str) -> None:
        super().__init__()
        self.conninfo = conninfo
        self._connection: psycopg.Connection | None = None
        self._socket = -1
        self._outage = False  # told the log that connecting fails; once is enough
        self._connect()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if self._connection is None:
                if self._connect():
                    return True  # rings sent while it was deaf were lost, and it is up: look now
                remaining = min(remaining, RECONNECT_SECONDS)
            if super().wait(remaining):
                return True
        return False

    def _deaf(self) -> bool:
        return self._connection is None

    def _connect(self) -> bool:
        try:
            connection = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                # Which backend is whose, in pg_stat_activity.
                application_name=f"service worker {os.getpid()} doorbell",
                keepalives=1,
                keepalives_idle=KEEPALIVE_IDLE_SECONDS,
                keepalives_interval=KEEPALIVE_IDLE_SECONDS // 3,
            )
            # On this module's own driver connection, outside SQLAlchemy: not repository's.
            connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as error:
            if not self._outage:
                log.warning("cannot LISTEN for queued jobs (%s); polling until it can", error)
            self._outage = True
            return False
        self._outage = False
        self._connection = connection
        self._socket = connection.fileno()
        self._selector.register(self._socket, selectors.EVENT_READ)
        log.info("listening for queued jobs on PostgreSQL channel %s", CHANNEL)
        return True

    def _heard(self, fd: int) -> bool:
        assert self._connection is not None
        pgconn = self._connection.pgconn
        rung = False
        try:
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                rung = True
        except psycopg.OperationalError as error:
            # Not a ring: the database may be restarting, and a claim now would fail. The wait
            # tries to listen again every RECONNECT_SECONDS until its timeout (the next poll).
            log.warning("lost the LISTEN connection (%s); polling until it reconnects", error)
            self._disconnect()
        return rung

    def _disconnect(self) -> None:
        assert self._connection is not None
        self._selector.unregister(self._socket)
        self._connection.close()
        self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._disconnect()
        super().close()


def _poke(fd: int) -> None:
    # A full pipe holds earlier rings nobody has drained yet: it is rung already.
    with contextlib.suppress(BlockingIOError):
        os.write(fd, b"\0")


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass
