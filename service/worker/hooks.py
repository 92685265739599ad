"""The training loop's hooks, writing to the database under the job's lease.

Epochs and checkpoints go to a MetricsWriter (see writer.py), which stores epochs in batches and
a checkpoint at once, with every epoch before it, in one transaction. Every write first renews
the lease with a conditional UPDATE in the same transaction: if the lease is no longer ours (it
expired and another worker took the job), nothing is written and LeaseLost stops training.
"""

import hashlib
import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository_checkpoints, storage
from service.settings import Settings
from service.tables import Checkpoint
from service.training.hooks import EpochResult, Snapshot, StopKind, StopReason
from service.worker.pruner import TrialPruner
from service.worker.writer import MetricsWriter, SharedFlush

log = logging.getLogger(__name__)


class DatabaseHooks:
    """TrainingHooks for one claimed job.

    Every write, the writer's periodic flush included, renews the lease and reads whether the
    job should stop (its cancel flag, or the lease gone); should_stop turns that, the job's time
    limit and the worker's shutdown into the reason training stops, if any.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: Settings,
        job_id: str,
        lease_token: str,
        started_at: datetime,
        shutdown: threading.Event,
        pruner: TrialPruner | None = None,
        shared: SharedFlush | None = None,
    ) -> None:
        """`shared`: a fused run's writing thread, which stores this job's writes with the
        other members' (writer.SharedFlush); None: a thread of its own."""
        self.sessions = sessions
        self.settings = settings
        self.job_id = job_id
        self.lease_token = lease_token
        self.shutdown = shutdown
        # A sweep's trial under its sweep's early stopping.
        self.pruner = pruner
        self.deadline = started_at + timedelta(seconds=settings.max_job_seconds)
        self.writer = MetricsWriter(
            sessions=sessions,
            job_id=job_id,
            lease_token=lease_token,
            lease_seconds=settings.lease_seconds,
            flush_seconds=settings.metrics_flush_seconds,
            shared=shared,
        )

    @property
    def cancel_requested(self) -> bool:
        return self.writer.cancel_requested

    @property
    def lease_lost(self) -> bool:
        return self.writer.lease_lost

    def flush(self) -> None:
        """Store the pending epochs now (the background thread does so every flush interval)."""
        self.writer.flush()

    def on_epoch(self, metrics: EpochResult) -> None:
        self.writer.add(metrics)
        if self.pruner is not None:
            self.pruner.observe(metrics)

    def on_checkpoint(self, snapshot: Snapshot) -> None:
        keep = self.settings.keep_periodic_checkpoints
        limit = self.settings.max_storage_bytes_per_key
        # Only periodic: a resume can start from an older one. Best and final are always kept.
        optional = snapshot.kinds == {"periodic"}
        created_at = jobs.now()

        def save(session: Session) -> None:
            size = len(snapshot.weights) + len(snapshot.state)
            if optional and not storage.room_for_job(
                session, job_id=self.job_id, adding=size, limit_bytes=limit
            ):
                log.warning(
                    "job %s: periodic checkpoint of epoch %d not kept: its API key has reached "
                    "SERVICE_MAX_STORAGE_BYTES_PER_KEY; training goes on",
                    self.job_id,
                    snapshot.epoch,
                )
                return
            # Built by the writer's thread: hashing a megabyte of weights is no work for the
            # training thread to wait on.
            row = Checkpoint(
                job_id=self.job_id,
                epoch=snapshot.epoch,
                is_periodic="periodic" in snapshot.kinds,
                is_best="best" in snapshot.kinds,
                is_final="final" in snapshot.kinds,
                metric=snapshot.metric,
                sha256=hashlib.sha256(snapshot.weights).hexdigest(),
                size_bytes=len(snapshot.weights),
                weights=snapshot.weights,
                state=snapshot.state,
                created_at=created_at,
            )
            repository_checkpoints.save_checkpoint(session, checkpoint=row, keep_periodic=keep)

        # The final checkpoint goes with the write of how the job ended, which follows it.
        self.writer.enqueue(save, last="final" in snapshot.kinds)

    def should_stop(self, *, epoch: int) -> StopReason | None:
        # A lost lease first: nothing more can be written for the job, not even how it ended.
        if self.lease_lost:
            detail = f"lease {self.lease_token} lost after epoch {epoch}"
            return StopReason(kind=StopKind.LEASE_LOST, detail=detail)
        if self.cancel_requested:
            return StopReason(kind=StopKind.CANCEL_REQUESTED, detail=f"cancelled at epoch {epoch}")
        if self.pruner is not None:
            pruned = self.pruner.decide(epoch=epoch, flush=self.flush)
            if pruned is not None:
                return StopReason(kind=StopKind.PRUNED, detail=pruned)
        if jobs.now() > self.deadline:
            detail = (
                f"ran past {self.settings.max_job_seconds:g} s (SERVICE_MAX_JOB_SECONDS) "
                f"at epoch {epoch}"
            )
            return StopReason(kind=StopKind.OUT_OF_TIME, detail=detail)
        if self.shutdown.is_set():
            detail = f"the worker shut down after epoch {epoch}"
            return StopReason(kind=StopKind.SHUTDOWN, detail=detail)
        return None
