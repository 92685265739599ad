"""A job's metrics, buffered and stored in batches, every write fenced by the job's lease.

A transaction per epoch costs more than a small epoch takes to train, so the training thread
only appends each EpochResult to a list. A background thread stores what has gathered every
SERVICE_METRICS_FLUSH_SECONDS, in one transaction that renews the lease (a conditional UPDATE
that also reads whether a cancel was asked) and inserts the epochs with one executemany INSERT;
it is the job's heartbeat as well. A checkpoint is handed to the same thread, which stores it at
once, while training goes on: a checkpoint write costs more than a small job's epochs, and a
network round trip besides on PostgreSQL. How the job ended is written by the worker itself.
Either way a write takes every pending epoch and queued checkpoint along, in order, in one
transaction, so a checkpoint is never stored ahead of the epochs before it, and a killed worker
loses only what came after its last stored checkpoint, which the resume trains again.
"""

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.db import transaction
from service.errors import LeaseLost
from service.training.hooks import EpochResult
from service.worker import outages

log = logging.getLogger(__name__)

T = TypeVar("T")
# Checkpoints handed over and not yet stored before the training thread stores them itself: a
# database slower than the checkpoints come holds back training, not memory.
MAX_QUEUED_WRITES = 2


class MetricsWriter:
    """Stores one claimed job's epochs and keeps its lease, from a thread of its own."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        job_id: str,
        lease_token: str,
        lease_seconds: float,
        flush_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.lease_token = lease_token
        self.lease = timedelta(seconds=lease_seconds)
        self.flush_seconds = flush_seconds
        # Read by the training thread at each epoch boundary; set by whichever write saw them.
        self.cancel_requested = False
        self.lease_lost = False
        # Appended to by the training thread only; each write stores a copy, then drops
        # that many from the front. Both are single list operations, atomic under the GIL.
        self._pending: list[EpochResult] = []
        # Writes handed over with `enqueue` (checkpoints), stored after the pending epochs.
        self._queued: list[Callable[[Session], object]] = []
        # Set to store what is pending now rather than at the next interval.
        self._wake = threading.Event()
        # One write at a time: no epoch is stored twice, none after a later one.
        self._writing = threading.Lock()
        # Set when a write failed: its commit may have landed unanswered, so the next write of
        # those epochs replaces them instead of inserting them twice.
        self._unsure = False
        # What stopped the background thread (a lost lease, an outage, a bug), for the
        # training thread to raise at its next epoch.
        self._failure: BaseException | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_periodically, name=f"metrics-{job_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the background thread; what is pending stays pending for a last write."""
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def add(self, result: EpochResult) -> None:
        """Queue one epoch for the next write; raises what stopped the background thread."""
        if self._failure is not None:
            raise self._failure
        self._pending.append(result)

    def enqueue(self, write: Callable[[Session], object], *, last: bool = False) -> None:
        """Have `write` stored at once by the background thread, after every pending epoch, while
        the caller goes on; raises what stopped the background thread.

        `last`: the caller's own write follows at once (how the job ended), and takes this one
        along in its transaction: one commit where two would follow each other."""
        if self._failure is not None:
            raise self._failure
        self._queued.append(write)
        if len(self._queued) > MAX_QUEUED_WRITES or not self._thread.is_alive():
            self.flush()
        elif not last:
            self._wake.set()

    def flush(self, *, epoch: int | None = None) -> None:
        """Store every pending epoch now (or, with none pending, set the job's epoch to `epoch`)."""
        self.write(_nothing, epoch=epoch)

    def write(self, also: Callable[[Session], T], *, epoch: int | None = None) -> T:
        """Renew the lease, store every pending epoch and run `also`, in one transaction.

        Raises LeaseLost (then nothing is written) or outages.DatabaseOutage, whose probe tries
        the same write again and rolls it back."""
        with self._writing:
            batch = self._pending[:]
            queued = self._queued[:]

            def everything(session: Session) -> T:
                for write in queued:
                    write(session)
                return also(session)

            replace, self._unsure = self._unsure, True
            with (
                outages.converted(probe=partial(self._try, batch, everything, epoch)),
                transaction(self.sessions, immediate=True) as session,
            ):
                result = self._store(
                    session, batch=batch, also=everything, epoch=epoch, replace=replace
                )
            del self._pending[: len(batch)]
            del self._queued[: len(queued)]
            self._unsure = False
        return result

    def _store(
        self,
        session: Session,
        *,
        batch: Sequence[EpochResult],
        also: Callable[[Session], T],
        epoch: int | None,
        replace: bool,
    ) -> T:
        last = batch[-1].epoch if batch else epoch
        cancel = repository.renew_lease(
            session,
            job_id=self.job_id,
            lease_token=self.lease_token,
            lease_expires_at=jobs.now() + self.lease,
            **({} if last is None else {"epoch": last}),
        )
        if cancel is None:
            self.lease_lost = True
            raise LeaseLost(f"job {self.job_id}: lease {self.lease_token} is no longer held")
        self.cancel_requested = cancel
        if batch and replace:
            # The lease fences out every other writer: deleting first stores each epoch once
            # whether or not the failed write's commit landed.
            repository.delete_metrics_after(session, job_id=self.job_id, epoch=batch[0].epoch - 1)
        if batch:
            repository.add_epoch_metrics(
                session,
                rows=[{"job_id": self.job_id, **result.model_dump()} for result in batch],
            )
        return also(session)

    def _try(
        self, batch: Sequence[EpochResult], also: Callable[[Session], object], epoch: int | None
    ) -> None:
        """The write again, rolled back whatever happens: it raises DatabaseOutage until the
        database would take it (a full disk needs the space, not only an answer)."""
        with outages.converted(), self.sessions() as session:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                self._store(session, batch=batch, also=also, epoch=epoch, replace=True)
            finally:
                session.rollback()

    def _flush_periodically(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.flush()
            except LeaseLost as lost:
                log.warning("job %s: lease lost; stopping at the next epoch boundary", self.job_id)
                self._failure = lost
                return
            except Exception as error:  # raised in the training thread at its next epoch
                self._failure = error
                return


def _nothing(_session: Session) -> None:
    return None
