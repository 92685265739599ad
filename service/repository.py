"""The SQL of jobs (their reads and the queue) and of their epoch metrics. Callers own the
transaction; nothing here commits. The other subjects have modules of their own beside it:
repository_keys.py, repository_checkpoints.py, repository_datasets.py, repository_monitoring.py,
repository_storage.py and fused_repository.py.

Writes a worker makes for a job are fenced: they name the lease token the worker got when it
claimed the job, and change nothing (returning False) once that lease has been lost.
"""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Insert,
    Table,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from service.statuses import ACTIVE_STATUSES, JobStatus
from service.tables import EpochMetric, Job

EPOCH_METRICS: Table = EpochMetric.__table__  # type: ignore[assignment]
# Core statements on the table where a worker writes beside training: no ORM bulk-update pass.
JOBS: Table = Job.__table__  # type: ignore[assignment]

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
    job = JOBS.c
    statement = (
        update(JOBS)
        .where(job.id == job_id, job.status == JobStatus.RUNNING, job.lease_owner == lease_token)
        .values(lease_expires_at=lease_expires_at, **values)
        .returning(job.cancel_requested)
    )
    return session.execute(statement).scalar_one_or_none()


# --- metrics ------------------------------------------------------------------------------------


def _unnest_insert(table: Table) -> Insert:
    """INSERT INTO table SELECT * FROM unnest(one array per column): many rows, one statement."""
    names = [column.name for column in table.columns]
    arrays = [
        cast(
            bindparam(column.name, type_=postgresql.ARRAY(column.type)),
            postgresql.ARRAY(column.type),
        )
        for column in table.columns
    ]
    rows = func.unnest(*arrays).table_valued(*names).render_derived()
    return insert(table).from_select(names, select(*(rows.c[name] for name in names)))


EPOCH_METRICS_UNNEST = _unnest_insert(EPOCH_METRICS)


def add_epoch_metrics(session: Session, *, rows: Sequence[Mapping[str, object]]) -> None:
    """Store many epochs in one INSERT. On PostgreSQL one statement of one array per column:
    psycopg's executemany sends and adapts each row in Python (about 50 µs a row, in the
    worker's thread beside training); SQLite's executemany runs in C."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        columns = {
            column.name: [row.get(column.name) for row in rows] for column in EPOCH_METRICS.columns
        }
        session.execute(EPOCH_METRICS_UNNEST, columns)
    else:
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
