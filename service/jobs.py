"""The job state machine: submit, claim, finish, requeue, cancel. No commits here.

    queued -> running                    the claim (below)
    queued -> cancelled                  cancel before a worker claims it
    running -> succeeded                 trained every epoch, or stopped early (early_stopping)
    running -> failed                    an error, or past SERVICE_MAX_JOB_SECONDS
    running -> cancelled                 stopped at an epoch boundary after a cancel
    running -> pruned                    a sweep's early stopping ended the trial
    running -> queued                    lease expired (attempt + 1), or the worker shut down

`TRANSITIONS` is this table. `transition` makes every change but one: the claim, which must find
the oldest queued job and take it in one UPDATE so that two workers never take the same job,
is `repository.claim_next_job`, given the statuses `CLAIM_FROM` and `CLAIM_TO`, checked against
the table at import.

A job that ends before its last epoch says why in `stop_reason`; a failed job's error is also
its stop reason unless one is given.
"""

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import admission, repository, wakeup
from service.errors import Conflict, InvalidSpec, NotFound
from service.settings import Settings
from service.specs import JobSpec
from service.statuses import FINAL_STATUSES, JobStatus
from service.sweeps import scheduling
from service.tables import Job

log = logging.getLogger(__name__)

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.QUEUED,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.PRUNED,
        }
    ),
}
# The claim: the one transition made in SQL, by repository.claim_next_job.
CLAIM_FROM, CLAIM_TO = JobStatus.QUEUED, JobStatus.RUNNING
if CLAIM_TO not in TRANSITIONS[CLAIM_FROM]:
    raise AssertionError(f"the claim, {CLAIM_FROM} -> {CLAIM_TO}, is not in TRANSITIONS")
if TRANSITIONS.keys() & FINAL_STATUSES:
    raise AssertionError("a final status has a transition out of it")
# Reads of a job that a worker keeps moving between our read and our write, before giving up.
CANCEL_ATTEMPTS = 5


now = admission.now


def transition(
    session: Session,
    *,
    job_id: str,
    from_status: JobStatus,
    to_status: JobStatus,
    lease_token: str | None = None,
    error: str | None = None,
    stop_reason: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Move a job from one status to another if it is still in `from_status` (and, for a worker,
    still under its lease). Returns False if someone else moved it first.

    `error` is for `failed` (and required there); `stop_reason` for a job ending before its last
    epoch, required for `cancelled` and `pruned`; `attempt` for a requeue after a lost lease.
    """
    if to_status not in TRANSITIONS.get(from_status, frozenset()):
        raise ValueError(f"no transition from {from_status} to {to_status}")
    if (from_status, to_status) == (CLAIM_FROM, CLAIM_TO):
        raise ValueError("a job starts running only by claim(), which gives it a lease")
    if to_status == JobStatus.FAILED:
        if error is None:
            raise ValueError("a failed job needs its error")
        stop_reason = stop_reason or error
    elif error is not None:
        raise ValueError(f"only a failed job has an error, not a {to_status} one")
    if stop_reason is None and to_status in (JobStatus.CANCELLED, JobStatus.PRUNED):
        raise ValueError(f"a job {to_status} needs its stop_reason")
    if stop_reason is not None and to_status not in FINAL_STATUSES:
        raise ValueError(f"a stop_reason ends a job; {to_status} is not an end")
    if attempt is not None and (from_status, to_status) != (JobStatus.RUNNING, JobStatus.QUEUED):
        raise ValueError("only a requeue starts a new attempt")
    moved = repository.set_job_status(
        session,
        job_id=job_id,
        from_status=from_status,
        to_status=to_status,
        lease_token=lease_token,
        finished_at=now() if to_status in FINAL_STATUSES else None,
        release_lease=from_status == JobStatus.RUNNING,
        error=error,
        stop_reason=stop_reason,
        attempt=attempt,
    )
    if moved and to_status == JobStatus.QUEUED:
        wakeup.job_queued(session)
    if moved and to_status in FINAL_STATUSES:
        # A sweep's trial: its next trials are created in this transaction, under the sweep's
        # row lock, taken after the job's own row as every path takes them (a worker's write
        # holds its job's row first; a sweep's cancel locks its trials' rows first).
        sweep = scheduling.lock_sweep_of(session, job_id=job_id)
        if sweep is not None:
            scheduling.trial_ended(session, sweep=sweep)
    return moved


# --- the api's side -----------------------------------------------------------------------------


def request_hash(spec: JobSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def submit(
    session: Session,
    *,
    spec: JobSpec,
    owner_id: str,
    settings: Settings,
    idempotency_key: str | None = None,
) -> Job:
    """Validate a spec against its data, dry-run its shapes, and queue it."""
    fingerprint = request_hash(spec)
    if idempotency_key is not None:
        existing = repository.find_job_by_idempotency_key(
            session, owner_id=owner_id, key=idempotency_key
        )
        if existing is not None:
            return _same_request(existing, fingerprint)

    planned = admission.prepare(
        session, spec=spec, owner_id=owner_id, limits=admission.SizeLimits.of(settings)
    )
    admission.check_room(session, owner_id=owner_id, settings=settings)
    job = admission.new_job(
        planned=planned,
        owner_id=owner_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
    )
    try:
        with session.begin_nested():
            repository.add_job(session, job=job)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the insert.
        assert idempotency_key is not None
        existing = repository.find_job_by_idempotency_key(
            session, owner_id=owner_id, key=idempotency_key
        )
        if existing is None:
            raise
        return _same_request(existing, fingerprint)
    wakeup.job_queued(session)
    log.info("job %s queued: %s, %d parameters", job.id, job.name or "(unnamed)", job.parameters)
    return job


def _same_request(job: Job, fingerprint: str) -> Job:
    if job.request_hash != fingerprint:
        raise InvalidSpec(
            f"Idempotency-Key was already used for job {job.id} with a different spec; "
            "send the same spec to get that job back, or use a new key"
        )
    return job


def stored_spec(job: Job) -> JobSpec:
    """The job's normalised spec, parsed from its row (about 10 us for a small network)."""
    return JobSpec.model_validate(job.spec)


def get(session: Session, *, job_id: str, owner_id: str) -> Job:
    job = repository.get_job(session, job_id=job_id, owner_id=owner_id)
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist")
    return job


def cancel(session: Session, *, job_id: str, owner_id: str) -> Job:
    """Cancel a queued job now; ask a running one to stop at its next epoch boundary.

    Each step is a conditional UPDATE; if a worker moved the job between our read and our write
    (claimed it, finished it), the UPDATE matches nothing and we read the job again.
    """
    job = get(session, job_id=job_id, owner_id=owner_id)
    for _ in range(CANCEL_ATTEMPTS):
        if job.status == JobStatus.QUEUED:
            if transition(
                session,
                job_id=job.id,
                from_status=JobStatus.QUEUED,
                to_status=JobStatus.CANCELLED,
                stop_reason="cancelled before it started",
            ):
                log.info("job %s cancelled while queued", job.id)
                break
        elif job.status == JobStatus.RUNNING:
            if repository.request_cancel(session, job_id=job.id):
                log.info("job %s asked to stop at its next epoch", job.id)
                break
        else:
            raise Conflict(
                f"job {job.id} already {job.status}; only queued or running jobs can be cancelled"
            )
        session.refresh(job)
    else:
        raise Conflict(f"job {job.id} kept changing state; try the cancel again")
    session.refresh(job)
    return job


# --- the worker's side --------------------------------------------------------------------------


def claim(session: Session, *, lease_token: str, device: str, settings: Settings) -> Job | None:
    """Requeue jobs whose lease lapsed, then take the oldest queued job under a new lease."""
    moment = now()
    reap_expired(session, moment=moment, max_attempts=settings.max_attempts)
    return repository.claim_next_job(
        session,
        from_status=CLAIM_FROM,
        to_status=CLAIM_TO,
        lease_token=lease_token,
        lease_expires_at=moment + timedelta(seconds=settings.lease_seconds),
        now=moment,
        device=device,
    )


def reap_expired(session: Session, *, moment: datetime, max_attempts: int) -> None:
    for job in repository.expired_running_jobs(session, now=moment):
        if job.cancel_requested:
            # Its worker stopped before it could stop at an epoch boundary itself.
            transition(
                session,
                job_id=job.id,
                from_status=JobStatus.RUNNING,
                to_status=JobStatus.CANCELLED,
                stop_reason=f"cancelled at epoch {job.epoch}",
            )
        elif job.attempt >= max_attempts:
            transition(
                session,
                job_id=job.id,
                from_status=JobStatus.RUNNING,
                to_status=JobStatus.FAILED,
                error=f"the worker stopped renewing its lease on attempt {job.attempt} of "
                f"{max_attempts} (SERVICE_MAX_ATTEMPTS); last epoch stored: {job.epoch}",
            )
        else:
            transition(
                session,
                job_id=job.id,
                from_status=JobStatus.RUNNING,
                to_status=JobStatus.QUEUED,
                attempt=job.attempt + 1,
            )
            log.warning("job %s lease expired; requeued as attempt %d", job.id, job.attempt + 1)


def finish(
    session: Session,
    *,
    job_id: str,
    lease_token: str,
    status: JobStatus,
    error: str | None = None,
    stop_reason: str | None = None,
) -> bool:
    """End a running job under the worker's lease; see `transition` for error and stop_reason."""
    return transition(
        session,
        job_id=job_id,
        from_status=JobStatus.RUNNING,
        to_status=status,
        lease_token=lease_token,
        error=error,
        stop_reason=stop_reason,
    )


def release(session: Session, *, job_id: str, lease_token: str) -> bool:
    """Give a running job back to the queue (the worker is shutting down), same attempt."""
    return transition(
        session,
        job_id=job_id,
        from_status=JobStatus.RUNNING,
        to_status=JobStatus.QUEUED,
        lease_token=lease_token,
    )
