"""The training loop's hooks, writing to the database under the job's lease.

Every write first renews the lease with a conditional UPDATE in the same transaction: if the
lease is no longer ours (it expired and another worker took the job), nothing is written and
LeaseLost stops training.
"""

import hashlib
import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.db import transaction
from service.errors import LeaseLost
from service.settings import Settings
from service.tables import Checkpoint, EpochMetric
from service.training.hooks import EpochResult, Snapshot, StopKind, StopReason

log = logging.getLogger(__name__)


class DatabaseHooks:
    """TrainingHooks for one claimed job.

    Every lease renewal, the heartbeat thread's included, reads whether the job should stop
    (its cancel flag, or the lease gone); should_stop turns that, the job's time limit and the
    worker's shutdown into the reason training stops, if any.
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
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.job_id = job_id
        self.lease_token = lease_token
        self.shutdown = shutdown
        self.deadline = started_at + timedelta(seconds=settings.max_job_seconds)
        # What the database said at the last renewal: None, CANCEL_REQUESTED or LEASE_LOST (for
        # good: nothing replaces it).
        self.heard: StopKind | None = None

    @property
    def lease_lost(self) -> bool:
        return self.heard is StopKind.LEASE_LOST

    def renew(self, session: Session, **values: object) -> None:
        """Extend the lease and set `values` on the job, or raise LeaseLost."""
        deadline = jobs.now() + timedelta(seconds=self.settings.lease_seconds)
        cancel = repository.renew_lease(
            session,
            job_id=self.job_id,
            lease_token=self.lease_token,
            lease_expires_at=deadline,
            **values,
        )
        if cancel is None:
            self.heard = StopKind.LEASE_LOST
            raise LeaseLost(f"job {self.job_id}: lease {self.lease_token} is no longer held")
        if cancel and not self.lease_lost:
            self.heard = StopKind.CANCEL_REQUESTED

    def heartbeat(self) -> None:
        try:
            with transaction(self.sessions, immediate=True) as session:
                self.renew(session)
        except LeaseLost:
            log.warning("job %s: lease lost; stopping at the next epoch boundary", self.job_id)

    def prepare(self, *, resume_epoch: int) -> None:
        """Drop what an earlier attempt wrote after the checkpoint this attempt resumes from."""
        with transaction(self.sessions, immediate=True) as session:
            self.renew(session, epoch=resume_epoch)
            repository.delete_metrics_after(session, job_id=self.job_id, epoch=resume_epoch)
            repository.delete_checkpoints_after(session, job_id=self.job_id, epoch=resume_epoch)

    def on_epoch(self, metrics: EpochResult) -> None:
        with transaction(self.sessions, immediate=True) as session:
            self.renew(session, epoch=metrics.epoch)
            repository.add_epoch_metric(
                session, metric=EpochMetric(job_id=self.job_id, **metrics.model_dump())
            )

    def on_checkpoint(self, snapshot: Snapshot) -> None:
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
            created_at=jobs.now(),
        )
        with transaction(self.sessions, immediate=True) as session:
            self.renew(session)
            repository.save_checkpoint(
                session, checkpoint=row, keep_periodic=self.settings.keep_periodic_checkpoints
            )

    def should_stop(self, *, epoch: int) -> StopReason | None:
        # A lost lease first: nothing more can be written for the job, not even how it ended.
        match self.heard:
            case StopKind.LEASE_LOST:
                detail = f"lease {self.lease_token} lost after epoch {epoch}"
                return StopReason(kind=StopKind.LEASE_LOST, detail=detail)
            case StopKind.CANCEL_REQUESTED:
                return StopReason(
                    kind=StopKind.CANCEL_REQUESTED, detail=f"cancelled at epoch {epoch}"
                )
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
