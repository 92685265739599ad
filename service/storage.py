"""Deleting jobs and datasets, giving their bytes back, and what a key stores: usage and quota.

Deleting a running job deletes its row with the rest: its lease goes with it, and the worker's
next write, fenced by that lease, matches nothing, so the worker stops training it (LeaseLost)
within SERVICE_METRICS_FLUSH_SECONDS and writes nothing more. Deleted bytes go back to the file
system: on SQLite (auto_vacuum=INCREMENTAL, migration 0008) by `PRAGMA incremental_vacuum` once
the delete has committed; PostgreSQL's autovacuum makes the space reusable by later rows.

A job's rows go table by table (repository_storage), and the foreign keys' ON DELETE CASCADE
takes what a worker committed in between: on PostgreSQL the job row's DELETE waits for a
worker's write transaction that holds it, which may have added rows after the earlier DELETEs
looked. A table that adds a job's rows must keep that cascade.
"""

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service import repository
from service import repository_storage as storage_sql
from service.db import SQLITE_BUSY_TIMEOUT_MS
from service.errors import Conflict, NotFound, StorageQuotaExceeded
from service.tables import Job

log = logging.getLogger(__name__)

_RECLAIM = "storage.reclaim"
# How long giving space back waits for readers before it leaves the write-ahead log as it is.
CHECKPOINT_WAIT_MS = 1000
WHAT_TO_DELETE = (
    "delete jobs or datasets you no longer need: GET /v1/usage lists them, largest first; "
    "DELETE /v1/jobs/{id} and DELETE /v1/datasets/{id} delete one"
)


def delete_job(session: Session, *, job_id: str, owner_id: str) -> Job:
    """Delete the caller's job, its metrics and its checkpoints; NotFound if it is not theirs.
    A running job stops at its worker's next write (see the module docstring). The job's row
    as it was (a sweep's trial: see sweeps.control.delete_job)."""
    job = repository.get_job(session, job_id=job_id, owner_id=owner_id)
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist")
    storage_sql.delete_checkpoints(session, job_id=job.id)
    storage_sql.delete_metrics(session, job_id=job.id)
    storage_sql.delete_job(session, job_id=job.id)
    reclaim_on_commit(session)
    log.info("job %s deleted (it was %s)", job.id, job.status)
    return job


def delete_dataset(session: Session, *, dataset_id: str, owner_id: str) -> None:
    """Delete the caller's dataset; Conflict while a queued or running job needs it. Jobs that
    trained on it keep predicting: their specs record its shapes."""
    if not storage_sql.lock_dataset(session, dataset_id=dataset_id, owner_id=owner_id):
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    needing = storage_sql.active_jobs_using(session, dataset_id=dataset_id)
    if needing:
        shown = ", ".join(needing[:10]) + (
            f" and {len(needing) - 10} more" if len(needing) > 10 else ""
        )
        raise Conflict(
            f"dataset {dataset_id} is needed by queued or running job(s) {shown}; wait for them "
            "to end or cancel them (POST /v1/jobs/{id}/cancel), then delete it"
        )
    storage_sql.delete_dataset(session, dataset_id=dataset_id)
    reclaim_on_commit(session)
    log.info("dataset %s deleted", dataset_id)


def delete_everything_of(session: Session, *, owner_id: str) -> tuple[int, int]:
    """Delete every job and dataset of one key (an admin's `service delete --key-name`);
    (jobs, datasets) deleted."""
    job_ids = storage_sql.job_ids_of(session, owner_id=owner_id)
    for job_id in job_ids:
        delete_job(session, job_id=job_id, owner_id=owner_id)
    dataset_ids = storage_sql.dataset_ids_of(session, owner_id=owner_id)
    for dataset_id in dataset_ids:
        storage_sql.delete_dataset(session, dataset_id=dataset_id)
    reclaim_on_commit(session)
    return len(job_ids), len(dataset_ids)


# --- giving the bytes back ----------------------------------------------------------------------


def reclaim_on_commit(session: Session) -> None:
    """Mark the session's transaction as one that deleted bytes: once it commits, they go back
    to the file system (see reclaim_after_commits)."""
    session.info[_RECLAIM] = True


def reclaim_after_commits(sessions: sessionmaker[Session]) -> None:
    """Make every commit through `sessions` that deleted bytes give them back."""

    @event.listens_for(sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        if not session.in_nested_transaction() and session.info.pop(_RECLAIM, False):
            bind = session.get_bind()
            assert isinstance(bind, Engine)
            give_back_space(bind)

    @event.listens_for(sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        if not session.in_nested_transaction():
            session.info.pop(_RECLAIM, None)


def give_back_space(engine: Engine) -> None:
    """SQLite: truncate the file by its free pages, then copy the write-ahead log (which now
    holds the truncation) into the file and truncate the log too. Committed already, so a
    failure is only logged: the pages stay free inside the file, reused by later writes.

    The log's truncation waits for readers on older snapshots for at most
    CHECKPOINT_WAIT_MS, holding back writers meanwhile; past that the log is left as it is,
    to be reused from its start after the next checkpoint."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            try:
                # executescript steps each statement to its end: execute() steps a statement
                # once, and incremental_vacuum frees one page per step.
                raw.executescript(
                    "PRAGMA incremental_vacuum; "
                    f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}; "
                    "PRAGMA wal_checkpoint(TRUNCATE);"
                )
            finally:
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    except Exception as error:
        log.warning("could not give deleted pages back to the file system: %s", error)


# --- usage and quota ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobUsage:
    job: Job
    checkpoints: int
    bytes: int


@dataclass(frozen=True)
class DatasetUsage:
    id: str
    filename: str
    bytes: int


@dataclass(frozen=True)
class Usage:
    jobs: list[JobUsage]
    datasets: list[DatasetUsage]
    limit_bytes: int | None

    @property
    def bytes(self) -> int:
        return sum(job.bytes for job in self.jobs) + sum(data.bytes for data in self.datasets)


def usage(session: Session, *, owner_id: str, limit_bytes: int | None) -> Usage:
    """The caller's jobs and datasets with the bytes each stores, largest first."""
    return Usage(
        jobs=[
            JobUsage(job=job, checkpoints=count, bytes=size)
            for job, count, size in storage_sql.job_storage(session, owner_id=owner_id)
        ],
        datasets=[
            DatasetUsage(id=dataset_id, filename=filename, bytes=size)
            for dataset_id, filename, size in storage_sql.dataset_storage(
                session, owner_id=owner_id
            )
        ],
        limit_bytes=limit_bytes,
    )


def room_for_job(session: Session, *, job_id: str, adding: int, limit_bytes: int | None) -> bool:
    """Whether the job's key can store `adding` more bytes (a worker's periodic checkpoint)."""
    if limit_bytes is None:
        return True
    job = repository.get_job(session, job_id=job_id)
    if job is None:
        return True  # deleted: the write's fencing refuses it anyway
    used = storage_sql.stored_bytes(session, owner_id=job.owner_id)
    return used + adding <= limit_bytes


def check_room(
    session: Session, *, owner_id: str, adding: int, what: str, limit_bytes: int | None
) -> None:
    """StorageQuotaExceeded if `adding` more bytes would take the key past its limit."""
    if limit_bytes is None:
        return
    used = storage_sql.stored_bytes(session, owner_id=owner_id)
    if used + adding > limit_bytes:
        raise StorageQuotaExceeded(
            f"{what} needs {adding} bytes, but this API key stores {used} of the {limit_bytes} "
            f"SERVICE_MAX_STORAGE_BYTES_PER_KEY allows; {WHAT_TO_DELETE}"
        )
