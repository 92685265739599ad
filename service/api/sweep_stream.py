"""One sweep's Server-Sent Events stream: its trials' epochs once each and their status changes.

    event: status            a trial's status when first seen, then at every change
    data: {"job_id": "...", "trial": 2, "status": "running", "stop_reason": null, ...}

    event: epoch             one per stored epoch of each trial, in order within the trial
    data: {"job_id": "...", "trial": 2, "epoch": 4, "metrics": {"epoch": 4, "loss": 0.52, ...}}

    : keep-alive             when nothing happened for SERVICE_EVENTS_KEEPALIVE_SECONDS

    event: sweep             the last event: the sweep ended and none of its trials is active
    data: {"status": "succeeded", "error": null}

    retry: 2000              the database failed: the last event; a reconnect starts over
    event: error
    data: {"error": "DatabaseUnavailable", "detail": "..."}

Every SERVICE_EVENTS_POLL_SECONDS the stream reads, in one transaction, the sweep's row, then
its trials' rows, then the epochs each trial stored past the last one sent. In that order a
sweep read as ended has every trial ended and every epoch stored by the later reads, so the
stream ends with all of them sent. A status that lasted less than a poll may not be seen.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from service import repository_monitoring
from service.api.streams import RETRY_MS, error_event
from service.db import DATABASE_FAULTS, database_fault, transaction
from service.schemas import (
    EpochMetricOut,
    SweepStatusEventOut,
    TrialEpochEventOut,
    TrialStatusEventOut,
)
from service.statuses import ACTIVE_STATUSES, FINAL_STATUSES, JobStatus, SweepStatus
from service.sweeps import repository as sweeps_repository
from service.sweeps.repository import TrialState

# Epoch rows read per poll at most, over all trials; the rest are read at once after.
EPOCHS_PER_POLL = 5000


@dataclass(frozen=True)
class SweepPoll:
    """One read of the sweep: None for a sweep that no longer exists."""

    sweep: SweepStatusEventOut | None
    trials: list[TrialState]
    epochs: dict[str, list[EpochMetricOut]]  # per trial, after its last epoch sent, in order
    full: bool  # EPOCHS_PER_POLL rows were read: there may be more


class SweepStream:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        sweep_id: str,
        poll_seconds: float,
        keepalive_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.sweep_id = sweep_id
        self.poll_seconds = poll_seconds
        self.keepalive_seconds = keepalive_seconds
        self.sent: dict[str, int] = {}  # per trial, the last epoch sent
        self.statuses: dict[str, JobStatus] = {}  # per trial, the last status sent

    async def events(self) -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        quiet_since = time.monotonic()
        try:
            while True:
                poll = await anyio.to_thread.run_sync(self._read)
                if poll.sweep is None:
                    return  # deleted
                for event in self._events(poll):
                    quiet_since = time.monotonic()
                    yield event
                if poll.full:
                    continue
                if poll.sweep.status != SweepStatus.RUNNING and all(
                    trial.status in FINAL_STATUSES for trial in poll.trials
                ):
                    yield f"event: sweep\ndata: {poll.sweep.model_dump_json()}\n\n"
                    return
                if time.monotonic() - quiet_since >= self.keepalive_seconds:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(self.poll_seconds)
        except DATABASE_FAULTS as error:
            yield error_event(database_fault(error))

    def _events(self, poll: SweepPoll) -> Iterator[str]:
        """Per trial in trial order: a new active status, its new epochs, then a new final
        status, so a trial's epochs come between its running and its end."""
        for trial in poll.trials:
            changed = self.statuses.get(trial.job_id) != trial.status
            if changed and trial.status in ACTIVE_STATUSES:
                yield self._status(trial)
            for metrics in poll.epochs.get(trial.job_id, []):
                self.sent[trial.job_id] = metrics.epoch
                body = TrialEpochEventOut(
                    job_id=trial.job_id, trial=trial.trial, epoch=metrics.epoch, metrics=metrics
                )
                yield f"event: epoch\ndata: {body.model_dump_json()}\n\n"
            if changed and trial.status in FINAL_STATUSES:
                yield self._status(trial)

    def _status(self, trial: TrialState) -> str:
        self.statuses[trial.job_id] = trial.status
        body = TrialStatusEventOut(
            job_id=trial.job_id,
            trial=trial.trial,
            status=trial.status,
            stop_reason=trial.stop_reason,
            error=trial.error,
        )
        return f"event: status\ndata: {body.model_dump_json()}\n\n"

    def _read(self) -> SweepPoll:
        with transaction(self.sessions) as session:
            # The sweep first: see the module's docstring.
            sweep = sweeps_repository.get_sweep(session, sweep_id=self.sweep_id)
            if sweep is None:
                return SweepPoll(sweep=None, trials=[], epochs={}, full=False)
            status = SweepStatusEventOut(status=SweepStatus(sweep.status), error=sweep.error)
            trials = sweeps_repository.trial_states(session, sweep_id=self.sweep_id)
            # Only trials with epochs stored past the last one sent (a trial resumed from an
            # earlier checkpoint trains some again: those are not sent twice).
            behind = [
                (trial.job_id, self.sent.get(trial.job_id, 0))
                for trial in trials
                if trial.epoch > self.sent.get(trial.job_id, 0)
            ]
            epochs: dict[str, list[EpochMetricOut]] = {}
            read = 0
            for start in range(0, len(behind), repository_monitoring.CURSORS_PER_QUERY):
                if read >= EPOCHS_PER_POLL:
                    break
                rows = repository_monitoring.metrics_after_each(
                    session,
                    after=dict(behind[start : start + repository_monitoring.CURSORS_PER_QUERY]),
                    limit=EPOCHS_PER_POLL - read,
                )
                read += len(rows)
                for row in rows:
                    epochs.setdefault(row.job_id, []).append(EpochMetricOut.model_validate(row))
        return SweepPoll(sweep=status, trials=trials, epochs=epochs, full=read >= EPOCHS_PER_POLL)
