"""One job's Server-Sent Events stream: its epochs once each, in order, and its state changes.

    event: status            the job's state on connect, then at every change
    data: {"status": "running", "epoch": 3, "epochs": 100, ...}

    event: epoch             one per stored epoch, after the client's Last-Event-ID
    id: 4
    data: {"epoch": 4, "loss": 0.52, ...}

    : keep-alive             when nothing happened for SERVICE_EVENTS_KEEPALIVE_SECONDS

    retry: 5000              the database failed: the last event; reconnect after 5 s with
    event: error             Last-Event-ID (answered 503 with Retry-After until it is back)
    data: {"error": "DatabaseUnavailable", "detail": "..."}

The stream ends after the status event of a final state. Updates come from the process's
EventHub; whenever one shows the job ahead of what this stream has sent (the stream connected
between two ticks, or fell behind and had updates dropped), the missing epochs are read from
the database first, so the client sees every epoch exactly once.
"""

import asyncio
from collections.abc import AsyncIterator

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from service import repository_monitoring
from service.api.event_hub import Epoch, EventHub, JobSnapshot, JobUpdate
from service.db import DATABASE_FAULTS, database_fault, transaction
from service.errors import ServiceError
from service.schemas import ErrorOut, StatusEventOut
from service.statuses import FINAL_STATUSES, JobStatus

# Epochs read from the database per query while catching up.
CATCH_UP_PAGE = 1000
# How long a client waits before reconnecting after the connection drops, in milliseconds.
RETRY_MS = 2000


def epoch_event(epoch: Epoch) -> str:
    return f"event: epoch\nid: {epoch.epoch}\ndata: {epoch.json}\n\n"


def error_event(error: ServiceError) -> str:
    """The last event of a stream the database failed: come back in `retry` ms, with
    Last-Event-ID, and the stream resumes where it stopped."""
    retry_ms = (error.retry_after or 0) * 1000 or RETRY_MS
    body = ErrorOut(error=type(error).__name__, detail=error.message)
    return f"retry: {retry_ms}\nevent: error\ndata: {body.model_dump_json()}\n\n"


def status_event(job: JobSnapshot, *, status: JobStatus | None = None) -> str:
    body = StatusEventOut(
        status=status or job.status,
        epoch=job.epoch,
        epochs=job.epochs,
        attempt=job.attempt,
        error=job.error,
        stop_reason=job.stop_reason,
        cancel_requested=job.cancel_requested,
    )
    return f"event: status\ndata: {body.model_dump_json()}\n\n"


class JobStream:
    def __init__(
        self,
        *,
        hub: EventHub,
        sessions: sessionmaker[Session],
        job_id: str,
        after: int,
        keepalive_seconds: float,
    ) -> None:
        self.hub = hub
        self.sessions = sessions
        self.job_id = job_id
        self.sent = after  # the last epoch the client has
        self.keepalive_seconds = keepalive_seconds
        self.status: JobStatus | None = None

    async def events(self) -> AsyncIterator[str]:
        # Subscribe before the first read, so nothing stored after that read can be missed.
        subscription = self.hub.subscribe(self.job_id)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            update: JobUpdate | ServiceError = JobUpdate(
                job=await anyio.to_thread.run_sync(self._snapshot), epochs=()
            )
            while isinstance(update, JobUpdate):
                async for event in self._apply(update):
                    yield event
                if update.job is None or self.status in FINAL_STATUSES:
                    return
                while True:
                    try:
                        update = await asyncio.wait_for(
                            subscription.updates.get(), timeout=self.keepalive_seconds
                        )
                        break
                    except TimeoutError:
                        yield ": keep-alive\n\n"
            yield error_event(update)
        except DATABASE_FAULTS as error:
            yield error_event(database_fault(error))
        finally:
            self.hub.unsubscribe(subscription)

    async def _apply(self, update: JobUpdate) -> AsyncIterator[str]:
        """The events an update means for this client: a state the job entered before its new
        epochs (running, or queued on connect), the epochs it has not sent, then any other new
        state (a final one last of all)."""
        job = update.job
        if job is None:
            return
        before = None
        if job.status != self.status:
            if job.status == JobStatus.RUNNING or (
                self.status is None and job.status == JobStatus.QUEUED
            ):
                before = job.status
            elif self.status == JobStatus.QUEUED and job.started:
                # It started and ended (or was requeued) between two polls: it ran meanwhile.
                before = JobStatus.RUNNING
        if before is not None:
            self.status = before
            yield status_event(job, status=before)
        for epoch in update.epochs:
            if epoch.epoch == self.sent + 1:
                self.sent = epoch.epoch
                yield epoch_event(epoch)
            elif epoch.epoch > self.sent + 1:
                break  # a gap: read below
        if job.epoch > self.sent:
            async for event in self._catch_up():
                yield event
        if self.status != job.status:
            self.status = job.status
            yield status_event(job)

    async def _catch_up(self) -> AsyncIterator[str]:
        """Every stored epoch after the last one sent, from the database, a page at a time."""
        while True:
            page = await anyio.to_thread.run_sync(self._epochs_after, self.sent)
            for epoch in page:
                self.sent = epoch.epoch
                yield epoch_event(epoch)
            if len(page) < CATCH_UP_PAGE:
                return

    def _snapshot(self) -> JobSnapshot | None:
        with transaction(self.sessions) as session:
            found = repository_monitoring.job_snapshots(session, job_ids=[self.job_id])
            return JobSnapshot.of(found[0]) if found else None

    def _epochs_after(self, epoch: int) -> list[Epoch]:
        with transaction(self.sessions) as session:
            rows = repository_monitoring.metrics_after_each(
                session, after={self.job_id: epoch}, limit=CATCH_UP_PAGE
            )
            return [Epoch.of(row) for row in rows]
