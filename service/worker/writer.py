"""A job's metrics, buffered and stored in batches, every write fenced by the job's lease.

A transaction per epoch costs more than a small epoch takes to train, so the training thread
only appends each EpochResult to a list. A background thread stores what has gathered every
SERVICE_METRICS_FLUSH_SECONDS, in one transaction that renews the lease (a conditional UPDATE
that also reads whether a cancel was asked) and inserts the epochs with one statement
(repository.add_epoch_metrics); it is the job's heartbeat as well. A checkpoint is handed to
the same thread, which stores it at once, while training goes on: a checkpoint write costs
more than a small job's epochs, and a network round trip besides on PostgreSQL. How the job
ended is written by the worker itself.
Either way a write takes every pending epoch and queued checkpoint along, in order, in one
transaction, so a checkpoint is never stored ahead of the epochs before it, and a killed worker
loses only what came after its last stored checkpoint, which the resume trains again.

The members of a fused run share one such thread (SharedFlush): every interval it stores all
their pending writes in one transaction, renewing their leases together.
"""

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
        shared: "SharedFlush | None" = None,
    ) -> None:
        """`shared`: the thread that stores this writer's epochs with other jobs' (a fused run's
        members) instead of one of its own."""
        self.sessions = sessions
        self.shared = shared
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
        if self.shared is not None:
            self.shared.add(self)
        else:
            self._thread.start()

    def stop(self) -> None:
        """End the background writes; what is pending stays pending for a last write."""
        self._stopped.set()
        if self.shared is not None:
            self.shared.remove(self)
            return
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _in_background(self) -> bool:
        """Whether a background thread stores this writer's queued writes."""
        if self.shared is not None:
            return self.shared.alive and not self._stopped.is_set() and self._failure is None
        return self._thread.is_alive()

    def _wake_background(self) -> None:
        if self.shared is not None:
            self.shared.wake()
        else:
            self._wake.set()

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
        if len(self._queued) > MAX_QUEUED_WRITES or not self._in_background():
            self.flush()
        elif not last:
            self._wake_background()

    def flush(self, *, epoch: int | None = None) -> None:
        """Store every pending epoch now (or, with none pending, set the job's epoch to `epoch`)."""
        self.write(_nothing, epoch=epoch)

    def write(self, also: Callable[[Session], T], *, epoch: int | None = None) -> T:
        """Renew the lease, store every pending epoch and run `also`, in one transaction.

        Raises LeaseLost (then nothing is written) or outages.DatabaseOutage, whose probe tries
        the same write again and rolls it back."""
        with self._writing:
            taken = self._take()

            def everything(session: Session) -> T:
                taken.queued_writes(session)
                return also(session)

            with (
                outages.converted(probe=partial(self._try, taken.batch, everything, epoch)),
                transaction(self.sessions, immediate=True) as session,
            ):
                result = self._store(
                    session, batch=taken.batch, also=everything, epoch=epoch, replace=taken.replace
                )
            self._written(taken)
        return result

    def _take(self) -> "Taken":
        """What the next write stores (under self._writing): it may not land, so until
        _written the epochs stay pending and a write after a failed one replaces them."""
        taken = Taken(batch=self._pending[:], queued=self._queued[:], replace=self._unsure)
        self._unsure = True
        return taken

    def _written(self, taken: "Taken") -> None:
        del self._pending[: len(taken.batch)]
        del self._queued[: len(taken.queued)]
        self._unsure = False

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


@dataclass(frozen=True)
class Taken:
    """A writer's epochs and queued writes, taken for one transaction."""

    batch: list[EpochResult]
    queued: list[Callable[[Session], object]]
    replace: bool  # an earlier write of these epochs may have landed unanswered

    def queued_writes(self, session: Session) -> None:
        for write in self.queued:
            write(session)


class SharedFlush:
    """One background thread for the writers of a fused run's members: every flush interval
    (or at once when a checkpoint is handed over) it stores every member's pending epochs and
    queued checkpoints in one transaction, each member's lease renewed in it first, so the
    leases are renewed together and the run commits once where each member would commit.

    Each member stays fenced on its own: a member whose lease is lost has written nothing (the
    renewal is its first statement) and stops alone at its next epoch, the others' writes
    commit. A fault of the database stops every member, each to pause and resume as a solo job
    does, with a probe of its own writes; anything else that fails the transaction (a bug) ends
    every member in it, as it would have ended each solo one.
    """

    def __init__(self, *, sessions: sessionmaker[Session], flush_seconds: float) -> None:
        self.sessions = sessions
        self.flush_seconds = flush_seconds
        self._writers: list[MetricsWriter] = []
        self._members = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_periodically, name="metrics-fused", daemon=True
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def wake(self) -> None:
        self._wake.set()

    def add(self, writer: MetricsWriter) -> None:
        with self._members:
            self._writers.append(writer)

    def remove(self, writer: MetricsWriter) -> None:
        """Stop storing for `writer`; a flush under way finishes its write first."""
        with self._members:
            if writer in self._writers:
                self._writers.remove(writer)
        with writer._writing:  # the shared thread stands in for the writer's own
            pass

    def flush(self) -> None:
        """Store every member's pending writes in one transaction."""
        with self._members:
            writers = [w for w in self._writers if w._failure is None]
        if not writers:
            return
        with contextlib.ExitStack() as held:
            for writer in writers:
                held.enter_context(writer._writing)
            # A member settled while this waited for its lock has written how it ended: its
            # lease is gone, and renewing it would only report it lost.
            taken = {writer: writer._take() for writer in writers if not writer._stopped.is_set()}
            if not taken:
                return
            lost: dict[MetricsWriter, LeaseLost] = {}
            try:
                with outages.converted(), transaction(self.sessions, immediate=True) as session:
                    for writer, each in taken.items():
                        try:
                            writer._store(
                                session,
                                batch=each.batch,
                                also=each.queued_writes,
                                epoch=None,
                                replace=each.replace,
                            )
                        except LeaseLost as error:
                            lost[writer] = error
            except outages.DatabaseOutage as outage:
                for writer, each in taken.items():
                    probe = partial(writer._try, each.batch, each.queued_writes, None)
                    writer._failure = outages.DatabaseOutage(outage.reason, probe=probe)
                return
            except Exception as error:
                for writer in taken:
                    writer._failure = error
                return
            for writer, each in taken.items():
                if writer in lost:
                    log.warning(
                        "job %s: lease lost; stopping at the next epoch boundary", writer.job_id
                    )
                    writer._failure = lost[writer]
                else:
                    writer._written(each)

    def _flush_periodically(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if not self._stopped.is_set():
                self.flush()
