"""The worker: claim a queued job, train it under a lease, record how it ended, repeat."""

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository, repository_checkpoints
from service.datasets import load_arrays
from service.db import transaction
from service.errors import LeaseLost, ServiceError
from service.settings import Settings
from service.specs import JobSpec
from service.statuses import JobStatus
from service.tables import Job
from service.training import plan
from service.training.devices import fuse_activation_budget, pick_device
from service.training.fused import compiled
from service.training.hooks import Resume, StopKind, StopReason
from service.training.loop import TrainingOutcome, train
from service.wakeup import Doorbell, Listener
from service.worker import fused, outages
from service.worker.hooks import DatabaseHooks
from service.worker.pruner import pruner_for
from service.worker.writer import SharedFlush

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        doorbell: Doorbell | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        # Wakes run_forever between polls when a job is queued; without one it only polls.
        self.doorbell = doorbell or Doorbell()
        self._listener: Listener | None = None
        self.device = pick_device(settings.device)
        self.fuse_budget = fuse_activation_budget(
            self.device, setting=settings.fuse_max_activation_bytes
        )
        self.group_sizes = fused.GroupSizes(self.device)
        # SERVICE_FUSE_COMPILE, where torch.compile works here (checked as run_forever starts).
        self.compile_fused = settings.fuse_compile
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # Set by SIGTERM/SIGINT: finish the epoch, checkpoint, hand the job back, exit.
        self.shutdown = threading.Event()

    def run_forever(self) -> None:
        backoff = outages.Backoff(what=f"worker {self.name}", stop=self.shutdown)
        if self.settings.fuse_max_jobs > 1:
            # Sizing a fused group traces its network on the meta device, whose first use
            # costs seconds: not inside the claim's transaction, while leases run.
            plan.warm_up()
            if self.compile_fused:
                self.compile_fused = compiled.works(self.device)
        # Listening before the first claim: a job queued after a claim found none still wakes the
        # wait that follows.
        with self.doorbell.listen() as self._listener:
            log.info("worker %s polling for jobs on %s", self.name, self.device)
            while not self.shutdown.is_set():
                try:
                    ran = self.run_once()
                except outages.DatabaseOutage as outage:
                    try:
                        backoff.wait(outage.reason)
                    except outages.Interrupted:
                        break
                    continue
                backoff.answered()
                if not ran:
                    self._listener.wait(self.settings.poll_seconds)
        self._listener = None
        log.info("worker %s stopped", self.name)

    def stop(self) -> None:
        """Ask run_forever to return: at once when idle, else after the current epoch (its job
        goes back to the queue). Safe from a signal handler."""
        self.shutdown.set()
        if self._listener is not None:
            self._listener.interrupt()

    def run_once(self) -> bool:
        """Claim and run one job; False if the queue was empty. Raises outages.DatabaseOutage
        if the database failed the claim; a fault later, under the job, the job waits out."""
        lease_token = f"{self.name}:{secrets.token_hex(4)}"
        with outages.converted(), transaction(self.sessions, immediate=True) as session:
            job = jobs.claim(
                session, lease_token=lease_token, device=str(self.device), settings=self.settings
            )
            if job is None:
                return False
            partners = fused.claim_partners(
                session,
                first=job,
                lease_prefix=self.name,
                device=str(self.device),
                activation_budget=self.fuse_budget,
                sizes=self.group_sizes,
                compiled=self.compile_fused,
                settings=self.settings,
            )
            # In the claim's transaction: a job starts training one commit after it was queued.
            claimed = [
                self._ready(session, job=each.job, lease_token=each.lease_token)
                for each in [fused.Claimed(job=job, lease_token=lease_token), *partners]
            ]
        if partners:
            fused.run_group(self, claimed=claimed)
            return True
        (solo,) = claimed
        log.info("job %s claimed (attempt %d) by %s", job.id, job.attempt, lease_token)
        hooks = self.hooks_for(solo)
        spec = jobs.stored_spec(job)

        def work() -> TrainingOutcome:
            uploaded = self.load_uploaded(spec)
            return train(
                spec,
                device=self.device,
                hooks=hooks,
                resume=solo.resume,
                uploaded=uploaded,
                checkpoint_seconds=self.settings.checkpoint_seconds,
            )

        hooks.writer.start()
        self.settle(hooks, work=work)
        return True

    def _ready(self, session: Session, *, job: Job, lease_token: str) -> "fused.Claimed":
        """A just-claimed job with what it resumes from and, for a sweep's trial, its pruner."""
        resume = resume_point(session, job=job)
        pruner = pruner_for(
            self.sessions, session=session, job=job, resume_epoch=resume.epoch if resume else 0
        )
        return fused.Claimed(job=job, lease_token=lease_token, resume=resume, pruner=pruner)

    def hooks_for(
        self, claimed: "fused.Claimed", *, shared: SharedFlush | None = None
    ) -> DatabaseHooks:
        """The job's hooks; `shared`: a fused run's writing thread, for its members."""
        assert claimed.job.started_at is not None
        return DatabaseHooks(
            sessions=self.sessions,
            settings=self.settings,
            job_id=claimed.job.id,
            lease_token=claimed.lease_token,
            started_at=claimed.job.started_at,
            shutdown=self.shutdown,
            pruner=claimed.pruner,
            shared=shared,
        )

    def settle(self, hooks: DatabaseHooks, *, work: Callable[[], TrainingOutcome]) -> None:
        """Run a job's training (`work`, under its started writer), then record how it ended;
        a fused run settles each member with a `work` that gives or raises its result."""
        job_id = hooks.job_id
        try:
            outcome = work()
        except LeaseLost:
            log.warning("job %s abandoned: its lease was lost, another worker owns it now", job_id)
            return
        except outages.DatabaseOutage as outage:
            hooks.writer.stop()
            self._pause(hooks, outage)
            return
        except ServiceError as error:
            self._end(hooks, status=JobStatus.FAILED, error=error.message)
            return
        except Exception as error:
            log.exception("job %s failed", job_id)
            self._end(hooks, status=JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
            return
        finally:
            hooks.writer.stop()

        match outcome.stop:
            case None:
                self._end(hooks, status=JobStatus.SUCCEEDED)
            case StopReason(kind=StopKind.EARLY_STOPPED, detail=detail):
                self._end(hooks, status=JobStatus.SUCCEEDED, stop_reason=detail)
            case StopReason(kind=StopKind.PRUNED, detail=detail):
                self._end(hooks, status=JobStatus.PRUNED, stop_reason=detail)
            case StopReason(kind=StopKind.CANCEL_REQUESTED, detail=detail):
                self._end(hooks, status=JobStatus.CANCELLED, stop_reason=detail)
            case StopReason(kind=StopKind.OUT_OF_TIME, detail=detail):
                self._end(hooks, status=JobStatus.FAILED, error=detail)
            case StopReason(kind=StopKind.SHUTDOWN):
                if self._hand_back(hooks):
                    log.info("job %s handed back to the queue at epoch %d", job_id, outcome.epoch)
            case StopReason(kind=StopKind.LEASE_LOST, detail=detail):
                log.warning("job %s abandoned (%s): another worker owns it now", job_id, detail)
            case StopReason(kind=kind):  # a kind added to StopKind without its ending here
                raise AssertionError(f"job {job_id}: no ending for a stop of kind {kind}")

    def load_uploaded(self, spec: JobSpec) -> tuple[torch.Tensor, torch.Tensor] | None:
        """An uploaded dataset's arrays, read in a transaction of their own (large reads stay
        out of the claim's write lock); None for a generated dataset."""
        if spec.dataset.kind != "uploaded":
            return None
        with outages.converted(), transaction(self.sessions) as session:
            return load_arrays(session, dataset_id=spec.dataset.id)

    # --- database writes that must land: they wait out the database's faults ------------------

    def _end(
        self,
        hooks: DatabaseHooks,
        *,
        status: JobStatus,
        error: str | None = None,
        stop_reason: str | None = None,
    ) -> None:
        """Store the job's last epochs and how it ended, in one transaction."""

        def finish(session: Session) -> bool:
            return jobs.finish(
                session,
                job_id=hooks.job_id,
                lease_token=hooks.lease_token,
                status=status,
                error=error,
                stop_reason=stop_reason,
            )

        what = f"job {hooks.job_id}"
        try:
            ended = outages.retry(lambda: hooks.writer.write(finish), what=what, stop=self.shutdown)
        except LeaseLost:
            ended = False
        except outages.Interrupted:
            log.warning("%s: shut down before it could be marked %s", what, status)
            return
        if ended:
            why = error or stop_reason
            log.info("job %s %s%s", hooks.job_id, status, f": {why}" if why else "")
        else:
            log.warning("job %s: lease lost before it could be marked %s", hooks.job_id, status)

    def _hand_back(self, hooks: DatabaseHooks, *, probe: outages.Probe | None = None) -> bool:
        """Give the job back to the queue, same attempt; False if its lease was lost (another
        worker resumes it as the next attempt) or the worker shut down first.

        `probe` first, on every try: it raises until the database would take what failed."""

        def release() -> bool:
            if probe is not None:
                probe()
            # Through the writer: the epochs and the checkpoint it still holds go first, in the
            # same transaction, so the job resumes from the epoch it stopped at.
            return hooks.writer.write(
                lambda session: jobs.release(
                    session, job_id=hooks.job_id, lease_token=hooks.lease_token
                )
            )

        try:
            released = outages.retry(release, what=f"job {hooks.job_id}", stop=self.shutdown)
        except LeaseLost:
            released = False
        except outages.Interrupted:
            log.warning("job %s: shut down while waiting for the database", hooks.job_id)
            return False
        if not released:
            log.warning(
                "job %s abandoned: its lease lapsed, it resumes as the next attempt", hooks.job_id
            )
        return released

    def _pause(self, hooks: DatabaseHooks, outage: outages.DatabaseOutage) -> None:
        """The database failed under the job: wait until it would take the write that failed,
        then hand the job back to resume from its last checkpoint (epochs after it are stored
        again, once). Its lease still held, the job keeps its attempt number."""
        log.warning("job %s paused at a database fault: %s", hooks.job_id, outage.reason)
        if self._hand_back(hooks, probe=outage.probe):
            log.info(
                "job %s handed back to the queue after a database fault; "
                "it resumes from its last checkpoint",
                hooks.job_id,
            )


def resume_point(session: Session, *, job: Job) -> Resume | None:
    """The checkpoint a just-claimed job resumes from (its newest), if any. The epochs an earlier
    attempt stored after it are dropped: the resume trains them again and stores each once."""
    row = repository_checkpoints.find_checkpoint(session, job_id=job.id, ref="latest")
    epoch = row.epoch if row else 0
    # job.epoch is the last epoch stored, set in the same transaction as its metrics; no
    # checkpoint is later than the newest.
    if job.epoch > epoch:
        repository.delete_metrics_after(session, job_id=job.id, epoch=epoch)
        job.epoch = epoch
    return Resume(epoch=row.epoch, weights=row.weights, state=row.state) if row else None
