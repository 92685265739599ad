"""Every SQL statement the service runs. Callers own the transaction; nothing here commits.

Writes a worker makes for a job are fenced: they name the lease token the worker got when it
claimed the job, and change nothing (returning False) once that lease has been lost.
"""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import BinaryIO

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased, defer, load_only

from service.statuses import ACTIVE_STATUSES, JobStatus
from service.tables import ApiKey, Checkpoint, Dataset, EpochMetric, Job

# Listing checkpoints or datasets reads metadata; the blobs stay in the database.
CHECKPOINT_METADATA_ONLY = (defer(Checkpoint.weights), defer(Checkpoint.state))
EPOCH_METRICS: Table = EpochMetric.__table__  # type: ignore[assignment]

# --- API keys -----------------------------------------------------------------------------------


def add_api_key(session: Session, *, key: ApiKey) -> None:
    session.add(key)
    session.flush()


def find_api_key(session: Session, *, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()


def count_api_keys(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiKey)) or 0


# --- jobs: reads --------------------------------------------------------------------------------


def add_job(session: Session, *, job: Job) -> None:
    session.add(job)
    session.flush()


def get_job(session: Session, *, job_id: str, owner_id: str | None = None) -> Job | None:
    query = select(Job).where(Job.id == job_id)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    return session.scalars(query).one_or_none()


def find_job_by_idempotency_key(session: Session, *, owner_id: str, key: str) -> Job | None:
    query = select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key)
    return session.scalars(query).one_or_none()


def list_jobs(
    session: Session,
    *,
    owner_id: str,
    status: JobStatus | None,
    name: str | None = None,
    limit: int,
    before_id: str | None,
    sweep_id: str | None = None,
) -> Sequence[Job]:
    """Newest first; `before_id` is the last id of the previous page; `name` is a substring,
    ignoring case (lower() on both sides: LIKE ignores case on SQLite, not on PostgreSQL)."""
    query = select(Job).where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status)
    if name:
        query = query.where(func.lower(Job.name).contains(name.lower(), autoescape=True))
    if sweep_id is not None:
        query = query.where(Job.sweep_id == sweep_id)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    return session.scalars(query.order_by(Job.id.desc()).limit(limit)).all()


def count_active_jobs(session: Session, *, owner_id: str) -> int:
    query = select(func.count()).where(Job.owner_id == owner_id, Job.status.in_(ACTIVE_STATUSES))
    return session.scalar(query) or 0


# --- jobs: the queue ----------------------------------------------------------------------------


def claim_next_job(
    session: Session,
    *,
    from_status: JobStatus,
    to_status: JobStatus,
    lease_token: str,
    lease_expires_at: datetime,
    now: datetime,
    device: str,
    job_id: str | None = None,
) -> Job | None:
    """Move the oldest job in `from_status` (queued) to `to_status` (running) under a new lease,
    atomically: the claim, the one transition jobs.transition does not make. `job_id`: claim
    that job instead (a fused run's partner), if it is still in `from_status`.

    PostgreSQL: the inner SELECT ... FOR UPDATE SKIP LOCKED lets concurrent claimers pass over
    each other's rows. SQLite ignores FOR UPDATE; the caller runs this in BEGIN IMMEDIATE, which
    serialises claimers instead.
    """
    oldest_queued = (
        select(Job.id)
        .where(Job.status == from_status)
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(Job)
        .where(Job.id == (oldest_queued if job_id is None else job_id), Job.status == from_status)
        .values(
            status=to_status,
            lease_owner=lease_token,
            lease_expires_at=lease_expires_at,
            started_at=func.coalesce(Job.started_at, now),
            device=device,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(statement).one_or_none()


def notify(session: Session, *, channel: str) -> None:
    """PostgreSQL NOTIFY in the caller's transaction: delivered when it commits, never if it
    rolls back."""
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def expired_running_jobs(session: Session, *, now: datetime) -> Sequence[Job]:
    query = select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    return session.scalars(query.with_for_update(skip_locked=True)).all()


def set_job_status(
    session: Session,
    *,
    job_id: str,
    from_status: JobStatus,
    to_status: JobStatus,
    lease_token: str | None,
    finished_at: datetime | None,
    release_lease: bool,
    error: str | None,
    stop_reason: str | None,
    attempt: int | None,
) -> bool:
    """The one conditional UPDATE behind every state transition but the claim (see jobs.py).

    Writes status, finished_at, error and stop_reason as given (a job that has not ended has
    none of them, so None changes nothing there); attempt only when given; clears the lease when
    `release_lease`."""
    conditions: list[ColumnElement[bool]] = [Job.id == job_id, Job.status == from_status]
    if lease_token is not None:
        conditions.append(Job.lease_owner == lease_token)
    values: dict[str, object] = {
        "status": to_status,
        "finished_at": finished_at,
        "error": error,
        "stop_reason": stop_reason,
    }
    if attempt is not None:
        values["attempt"] = attempt
    if release_lease:
        values.update(lease_owner=None, lease_expires_at=None)
    statement = (
        update(Job).where(*conditions).values(values).execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]


def request_cancel(session: Session, *, job_id: str) -> bool:
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]


def renew_lease(
    session: Session, *, job_id: str, lease_token: str, lease_expires_at: datetime, **values: object
) -> bool | None:
    """Extend the lease and set `values` if the lease is still held.

    Returns the job's cancel_requested flag, or None when the lease was lost."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.lease_owner == lease_token)
        .values(lease_expires_at=lease_expires_at, **values)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).scalar_one_or_none()


# --- metrics ------------------------------------------------------------------------------------


def add_epoch_metrics(session: Session, *, rows: Sequence[Mapping[str, object]]) -> None:
    """Store many epochs with one executemany INSERT: Core rows, no ORM objects to build."""
    session.execute(insert(EPOCH_METRICS), rows)


def delete_metrics_after(session: Session, *, job_id: str, epoch: int) -> None:
    """Forget epochs a resumed job will train again, so each epoch is stored exactly once."""
    session.execute(
        delete(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch > epoch)
    )


def list_metrics(session: Session, *, job_id: str, since: int = 0) -> Sequence[EpochMetric]:
    query = select(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch > since)
    return session.scalars(query.order_by(EpochMetric.epoch)).all()


def metrics_at(
    session: Session, *, keys: Collection[tuple[str, int]]
) -> dict[tuple[str, int], EpochMetric]:
    """The metric rows of the given (job id, epoch) pairs, in one query."""
    if not keys:
        return {}
    query = select(EpochMetric).where(tuple_(EpochMetric.job_id, EpochMetric.epoch).in_(list(keys)))
    return {(row.job_id, row.epoch): row for row in session.scalars(query)}


def best_metrics(
    session: Session, *, job_ids: Collection[str], metric: str
) -> dict[str, EpochMetric]:
    """Each job's epoch with the best value of `metric` (lowest loss, highest accuracy; the
    earliest on ties), in one query."""
    if not job_ids:
        return {}
    column = getattr(EpochMetric, metric)
    order = column.desc() if metric.endswith("accuracy") else column.asc()
    rank = func.row_number().over(
        partition_by=EpochMetric.job_id, order_by=(order, EpochMetric.epoch)
    )
    ranked = (
        select(EpochMetric, rank.label("rank"))
        .where(EpochMetric.job_id.in_(list(job_ids)), column.is_not(None))
        .subquery()
    )
    best = aliased(EpochMetric, ranked)
    rows = session.scalars(select(best).where(ranked.c.rank == 1))
    return {row.job_id: row for row in rows}


# --- checkpoints --------------------------------------------------------------------------------


def save_checkpoint(session: Session, *, checkpoint: Checkpoint, keep_periodic: int) -> None:
    """Store one epoch's checkpoint in place of any stored for that epoch, move the best mark to
    it and prune old periodic ones: a DELETE, an UPDATE when it is best, an INSERT."""
    job_id, epoch = checkpoint.job_id, checkpoint.epoch
    # The periodic checkpoints kept besides this one, which is kept whatever its kinds: a resume
    # starts from the newest.
    kept_periodic = (
        select(Checkpoint.epoch)
        .where(Checkpoint.job_id == job_id, Checkpoint.is_periodic, Checkpoint.epoch != epoch)
        .order_by(Checkpoint.epoch.desc())
        .limit(keep_periodic - 1 if checkpoint.is_periodic else keep_periodic)
    )
    prunable = and_(~Checkpoint.is_final, Checkpoint.epoch.not_in(kept_periodic))
    if not checkpoint.is_best:
        prunable = and_(prunable, ~Checkpoint.is_best)
    session.execute(
        delete(Checkpoint).where(
            Checkpoint.job_id == job_id, or_(Checkpoint.epoch == epoch, prunable)
        )
    )
    if checkpoint.is_best:
        # Only the row that has it: an UPDATE rewrites each row it touches, blobs and all.
        session.execute(
            update(Checkpoint)
            .where(Checkpoint.job_id == job_id, Checkpoint.is_best)
            .values(is_best=False)
            .execution_options(synchronize_session=False)
        )
    session.add(checkpoint)
    session.flush()


def list_checkpoints(session: Session, *, job_id: str) -> Sequence[Checkpoint]:
    """Metadata only: the weight blobs are not loaded."""
    query = (
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.epoch)
        .options(*CHECKPOINT_METADATA_ONLY)
    )
    return session.scalars(query).all()


def find_checkpoint(
    session: Session, *, job_id: str, ref: str | int, with_blobs: bool = True
) -> Checkpoint | None:
    """`ref` is "best", "final", "latest" or an epoch number."""
    query = select(Checkpoint).where(Checkpoint.job_id == job_id)
    if not with_blobs:
        query = query.options(*CHECKPOINT_METADATA_ONLY)
    match ref:
        case "best":
            query = query.where(Checkpoint.is_best)
        case "final":
            query = query.where(Checkpoint.is_final)
        case "latest":
            query = query.order_by(Checkpoint.epoch.desc()).limit(1)
        case int(epoch):
            query = query.where(Checkpoint.epoch == epoch)
        case _:
            return None
    return session.scalars(query).first()


# --- datasets -----------------------------------------------------------------------------------

BLOB_CHUNK_BYTES = 8 * 1024 * 1024


def add_dataset(session: Session, *, dataset: Dataset, data: BinaryIO, size: int) -> None:
    """Insert the dataset with its blob read from `data` (`size` bytes, staged on disk).

    PostgreSQL's driver takes the value whole. SQLite copies a bound value twice (binding it,
    then building the row), so there the row gets a zeroblob of the right size, which it fills
    in place from the file, a chunk at a time.
    """
    if session.get_bind().dialect.name != "sqlite":
        dataset.data = data.read()
        session.add(dataset)
        session.flush()
        return
    # Set in Core: the ORM would read a SQL expression's value back (the whole blob of zeros).
    dataset.data = b""
    session.add(dataset)
    session.flush()
    session.execute(
        update(Dataset).where(Dataset.id == dataset.id).values(data=func.zeroblob(size))
    )
    rowid: int = session.execute(
        select(literal_column("rowid")).select_from(Dataset).where(Dataset.id == dataset.id)
    ).scalar_one()
    raw = session.connection().connection.driver_connection
    with raw.blobopen("datasets", "data", rowid) as blob:  # type: ignore[union-attr]
        while chunk := data.read(BLOB_CHUNK_BYTES):
            blob.write(chunk)


def get_dataset(
    session: Session, *, dataset_id: str, owner_id: str | None = None, with_data: bool = False
) -> Dataset | None:
    query = select(Dataset).where(Dataset.id == dataset_id)
    if owner_id is not None:
        query = query.where(Dataset.owner_id == owner_id)
    if not with_data:
        query = query.options(defer(Dataset.data))
    return session.scalars(query).one_or_none()


# --- event streams and monitoring ---------------------------------------------------------------

# SQLite parses a chain of ORs as a tree no deeper than 1000; stay far below it.
CURSORS_PER_QUERY = 100


def job_snapshots(session: Session, *, job_ids: Collection[str]) -> Sequence[Job]:
    """These jobs with only the columns an event stream reports loaded; the spec stays behind."""
    query = (
        select(Job)
        .where(Job.id.in_(job_ids))
        .options(
            load_only(
                Job.status,
                Job.epoch,
                Job.epochs,
                Job.attempt,
                Job.error,
                Job.stop_reason,
                Job.cancel_requested,
                Job.started_at,
                raiseload=True,
            )
        )
    )
    return session.scalars(query).all()


def metrics_after_each(
    session: Session, *, after: Mapping[str, int], limit: int
) -> Sequence[EpochMetric]:
    """New epochs of several jobs in one query: for each job id, its epochs after the given one;
    ordered by job, then epoch, at most `limit` rows (the rest come on the next call)."""
    if not after:
        return []
    conditions = [
        and_(EpochMetric.job_id == job_id, EpochMetric.epoch > epoch)
        for job_id, epoch in after.items()
    ]
    query = (
        select(EpochMetric)
        .where(or_(*conditions))
        .order_by(EpochMetric.job_id, EpochMetric.epoch)
        .limit(limit)
    )
    return session.scalars(query).all()


def count_jobs_by_status(session: Session) -> dict[JobStatus, int]:
    query = select(Job.status, func.count()).group_by(Job.status)
    return {status: count for status, count in session.execute(query)}


def oldest_queued_created_at(session: Session) -> datetime | None:
    return session.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED))


def running_epoch_timings(session: Session, *, last: int) -> Sequence[tuple[int, float]]:
    """For each running job, (epochs, their seconds in total) over its `last` stored epochs."""
    query = (
        select(func.count(), func.coalesce(func.sum(EpochMetric.seconds), 0.0))
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.status == JobStatus.RUNNING, EpochMetric.epoch > Job.epoch - last)
        .group_by(Job.id)
    )
    return [(int(count), float(seconds)) for count, seconds in session.execute(query)]


def stored_epochs(session: Session) -> int:
    """Epochs stored over all jobs (a job's `epoch` is its last stored one)."""
    return int(session.scalar(select(func.coalesce(func.sum(Job.epoch), 0))) or 0)
