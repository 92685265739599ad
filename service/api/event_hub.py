"""Live job updates for the api's event streams: one shared poller per api process.

However many streams are open, the process reads the database once per tick
(SERVICE_EVENTS_POLL_SECONDS): one query for the watched jobs' rows, and one for the epochs
stored since the last tick of the jobs that moved, then hands each stream its job's update.
A job nobody watches costs nothing, and the poller stops when the last stream closes.

The hub only ever moves forward from the epoch a job was at when it was first watched. A stream
reads its own backlog (the epochs its client has not seen) from the database, and reads again
whenever an update shows the job ahead of what it has sent, so a stream never skips an epoch,
whatever it missed between ticks or dropped while its client was slow.
"""

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from service import repository_monitoring
from service.db import DATABASE_FAULTS, database_fault, transaction
from service.errors import ServiceError
from service.schemas import EpochMetricOut
from service.statuses import JobStatus
from service.tables import EpochMetric, Job

log = logging.getLogger(__name__)

# Jobs per IN (...) list when reading the watched jobs' rows.
JOBS_PER_QUERY = 500
# Epoch rows read per tick at most, over all jobs; a job further behind catches up next tick.
EPOCHS_PER_TICK = 5000
# Updates a stream may have waiting; past that it is told to read from the database instead.
QUEUED_UPDATES = 64


@dataclass(frozen=True)
class JobSnapshot:
    """What a stream reports of a job's row."""

    id: str
    status: JobStatus
    epoch: int
    epochs: int
    attempt: int
    error: str | None
    stop_reason: str | None
    cancel_requested: bool
    started: bool

    @classmethod
    def of(cls, job: Job) -> "JobSnapshot":
        return cls(
            id=job.id,
            status=job.status,
            epoch=job.epoch,
            epochs=job.epochs,
            attempt=job.attempt,
            error=job.error,
            stop_reason=job.stop_reason,
            cancel_requested=job.cancel_requested,
            started=job.started_at is not None,
        )


@dataclass(frozen=True)
class Epoch:
    """An epoch's metrics, encoded once for every stream that sends it."""

    epoch: int
    json: str

    @classmethod
    def of(cls, row: EpochMetric) -> "Epoch":
        return cls(epoch=row.epoch, json=EpochMetricOut.model_validate(row).model_dump_json())


@dataclass(frozen=True)
class JobUpdate:
    job: JobSnapshot | None  # None: the job no longer exists
    epochs: tuple[Epoch, ...]  # stored since the previous tick, in order


class Subscription:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        # A ServiceError last of all: the database failed, and the stream should end with it.
        self.updates: asyncio.Queue[JobUpdate | ServiceError] = asyncio.Queue(
            maxsize=QUEUED_UPDATES
        )

    def fail(self, fault: ServiceError) -> None:
        while not self.updates.empty():
            self.updates.get_nowait()
        self.updates.put_nowait(fault)

    def push(self, update: JobUpdate) -> None:
        if self.updates.full():
            # A slow reader: drop what waits; the job's epoch in the snapshot makes the stream
            # read what it missed from the database.
            while not self.updates.empty():
                self.updates.get_nowait()
            update = JobUpdate(job=update.job, epochs=())
        self.updates.put_nowait(update)


class EventHub:
    """Watched jobs, the epoch each was last read up to, and the streams waiting on them."""

    def __init__(self, *, sessions: sessionmaker[Session], poll_seconds: float) -> None:
        self.sessions = sessions
        self.poll_seconds = poll_seconds
        self.subscriptions: dict[str, set[Subscription]] = {}
        self.cursors: dict[str, int] = {}
        # The row each watched job had at the last tick: streams hear only of changes.
        self.snapshots: dict[str, JobSnapshot] = {}
        self._poller: asyncio.Task[None] | None = None

    def subscribe(self, job_id: str) -> Subscription:
        subscription = Subscription(job_id)
        self.subscriptions.setdefault(job_id, set()).add(subscription)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="event-hub")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self.subscriptions.get(subscription.job_id)
        if watchers is None:
            return
        watchers.discard(subscription)
        if not watchers:
            del self.subscriptions[subscription.job_id]
            self.cursors.pop(subscription.job_id, None)
            self.snapshots.pop(subscription.job_id, None)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def _poll(self) -> None:
        while self.subscriptions:
            try:
                await self.tick()
            except DATABASE_FAULTS as error:
                # Every stream tells its client to come back later (the SSE retry field), and
                # closes: a reconnect is answered 503 until the database is back.
                fault = database_fault(error)
                log.warning("event poller: %s; ending %d streams", fault.message, self.streams())
                for watchers in list(self.subscriptions.values()):
                    for subscription in list(watchers):
                        subscription.fail(fault)
            except Exception:
                log.exception("event poller: reading job updates failed; trying again")
            await asyncio.sleep(self.poll_seconds)

    def streams(self) -> int:
        return sum(len(watchers) for watchers in self.subscriptions.values())

    async def tick(self) -> None:
        """Read every watched job's row and new epochs, and hand each stream its update."""
        job_ids = list(self.subscriptions)
        cursors = dict(self.cursors)
        snapshots, epochs = await anyio.to_thread.run_sync(
            lambda: self._read(job_ids=job_ids, cursors=cursors)
        )
        for job_id in job_ids:
            if job_id not in self.subscriptions:
                continue  # its last stream closed during the read
            snapshot = snapshots.get(job_id)
            new = epochs.get(job_id, ())
            if snapshot is not None:
                cursor = new[-1].epoch if new else cursors.get(job_id, snapshot.epoch)
                # Lower after a resume from an earlier checkpoint: those epochs are trained again.
                self.cursors[job_id] = min(cursor, snapshot.epoch)
            if not new and job_id in self.snapshots and snapshot == self.snapshots[job_id]:
                continue
            if snapshot is None:
                self.snapshots.pop(job_id, None)
            else:
                self.snapshots[job_id] = snapshot
            update = JobUpdate(job=snapshot, epochs=new)
            for subscription in list(self.subscriptions[job_id]):
                subscription.push(update)

    def _read(
        self, *, job_ids: Collection[str], cursors: Mapping[str, int]
    ) -> tuple[dict[str, JobSnapshot], dict[str, tuple[Epoch, ...]]]:
        ordered = list(job_ids)
        with transaction(self.sessions) as session:
            snapshots = {
                job.id: JobSnapshot.of(job)
                for start in range(0, len(ordered), JOBS_PER_QUERY)
                for job in repository_monitoring.job_snapshots(
                    session, job_ids=ordered[start : start + JOBS_PER_QUERY]
                )
            }
            # Only jobs seen before, with epochs stored past what was read of them.
            behind = [
                (job_id, cursors[job_id])
                for job_id, snapshot in snapshots.items()
                if job_id in cursors and snapshot.epoch > cursors[job_id]
            ]
            rows: list[EpochMetric] = []
            for start in range(0, len(behind), repository_monitoring.CURSORS_PER_QUERY):
                if len(rows) >= EPOCHS_PER_TICK:
                    break
                rows.extend(
                    repository_monitoring.metrics_after_each(
                        session,
                        after=dict(behind[start : start + repository_monitoring.CURSORS_PER_QUERY]),
                        limit=EPOCHS_PER_TICK - len(rows),
                    )
                )
            epochs: dict[str, list[Epoch]] = {}
            for row in rows:
                epochs.setdefault(row.job_id, []).append(Epoch.of(row))
        return snapshots, {job_id: tuple(found) for job_id, found in epochs.items()}
