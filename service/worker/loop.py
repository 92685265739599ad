"""The worker: claim a queued job, train it under a lease, record how it ended, repeat."""

import logging
import os
import secrets
import socket
import threading

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.datasets import load_arrays
from service.db import transaction
from service.errors import LeaseLost, ServiceError
from service.settings import Settings
from service.specs import JobSpec
from service.statuses import JobStatus
from service.training.devices import pick_device
from service.training.hooks import Resume, StopKind, StopReason
from service.training.loop import train
from service.wakeup import Doorbell, Listener
from service.worker.hooks import DatabaseHooks

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
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # Set by SIGTERM/SIGINT: finish the epoch, checkpoint, hand the job back, exit.
        self.shutdown = threading.Event()

    def run_forever(self) -> None:
        # Listening before the first claim: a job queued after a claim found none still wakes the
        # wait that follows.
        with self.doorbell.listen() as self._listener:
            log.info("worker %s polling for jobs on %s", self.name, self.device)
            while not self.shutdown.is_set():
                if not self.run_once():
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
        """Claim and run one job; False if the queue was empty."""
        lease_token = f"{self.name}:{secrets.token_hex(4)}"
        with transaction(self.sessions, immediate=True) as session:
            job = jobs.claim(
                session, lease_token=lease_token, device=str(self.device), settings=self.settings
            )
        if job is None:
            return False
        log.info("job %s claimed (attempt %d) by %s", job.id, job.attempt, lease_token)
        assert job.started_at is not None
        hooks = DatabaseHooks(
            sessions=self.sessions,
            settings=self.settings,
            job_id=job.id,
            lease_token=lease_token,
            started_at=job.started_at,
            shutdown=self.shutdown,
        )
        self._run(job_id=job.id, spec=jobs.stored_spec(job), hooks=hooks)
        return True

    def _run(self, *, job_id: str, spec: JobSpec, hooks: DatabaseHooks) -> None:
        lease_token = hooks.lease_token
        beat = _Heartbeat(hooks, interval=self.settings.lease_seconds / 3)
        beat.start()
        try:
            resume, uploaded = self._load_inputs(job_id=job_id, spec=spec)
            hooks.prepare(resume_epoch=resume.epoch if resume else 0)
            outcome = train(spec, device=self.device, hooks=hooks, resume=resume, uploaded=uploaded)
        except LeaseLost:
            log.warning("job %s abandoned: its lease was lost, another worker owns it now", job_id)
            return
        except ServiceError as error:
            self._end(job_id, lease_token, status=JobStatus.FAILED, error=error.message)
            return
        except Exception as error:
            log.exception("job %s failed", job_id)
            error_text = f"{type(error).__name__}: {error}"
            self._end(job_id, lease_token, status=JobStatus.FAILED, error=error_text)
            return
        finally:
            beat.stop()

        match outcome.stop:
            case None:
                self._end(job_id, lease_token, status=JobStatus.SUCCEEDED)
            case StopReason(kind=StopKind.CANCEL_REQUESTED, detail=detail):
                self._end(job_id, lease_token, status=JobStatus.CANCELLED, stop_reason=detail)
            case StopReason(kind=StopKind.OUT_OF_TIME, detail=detail):
                self._end(job_id, lease_token, status=JobStatus.FAILED, error=detail)
            case StopReason(kind=StopKind.SHUTDOWN):
                with transaction(self.sessions, immediate=True) as session:
                    released = jobs.release(session, job_id=job_id, lease_token=lease_token)
                if released:
                    log.info("job %s handed back to the queue at epoch %d", job_id, outcome.epoch)
                else:
                    log.warning("job %s: lease lost before it could be handed back", job_id)
            case StopReason(kind=StopKind.LEASE_LOST, detail=detail):
                log.warning("job %s abandoned (%s): another worker owns it now", job_id, detail)
            case StopReason(kind=kind):  # a kind added to StopKind without its ending here
                raise AssertionError(f"job {job_id}: no ending for a stop of kind {kind}")

    def _load_inputs(
        self, *, job_id: str, spec: JobSpec
    ) -> tuple[Resume | None, tuple[torch.Tensor, torch.Tensor] | None]:
        with transaction(self.sessions) as session:
            row = repository.find_checkpoint(session, job_id=job_id, ref="latest")
            resume = Resume(epoch=row.epoch, weights=row.weights, state=row.state) if row else None
            uploaded = None
            if spec.dataset.kind == "uploaded":
                uploaded = load_arrays(session, dataset_id=spec.dataset.id)
        return resume, uploaded

    def _end(
        self,
        job_id: str,
        lease_token: str,
        *,
        status: JobStatus,
        error: str | None = None,
        stop_reason: str | None = None,
    ) -> None:
        with transaction(self.sessions, immediate=True) as session:
            if jobs.finish(
                session,
                job_id=job_id,
                lease_token=lease_token,
                status=status,
                error=error,
                stop_reason=stop_reason,
            ):
                why = error or stop_reason
                log.info("job %s %s%s", job_id, status, f": {why}" if why else "")
            else:
                log.warning("job %s: lease lost before it could be marked %s", job_id, status)


class _Heartbeat:
    """Renews the lease between epochs, for epochs longer than the lease."""

    def __init__(self, hooks: DatabaseHooks, *, interval: float) -> None:
        self.hooks = hooks
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{hooks.job_id}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval) and not self.hooks.lease_lost:
            self.hooks.heartbeat()
