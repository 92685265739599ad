"""The SQL of deleting and of measuring what a key stores (see service/storage.py); beside
repository.py and its sibling modules, which hold every other statement. Callers own the
transaction.

A job's rows are deleted table by table, by job id, rather than left to ON DELETE CASCADE, so
a table that holds a job's bytes (checkpoint blobs) is named here and its bytes are counted."""

from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from service.statuses import ACTIVE_STATUSES
from service.tables import Checkpoint, Dataset, EpochMetric, Job


def _blob_bytes(session: Session, column: QueryableAttribute[bytes]) -> ColumnElement[int]:
    """A blob's size in bytes: SQLite's length() of a blob, PostgreSQL's octet_length(),
    which reads a TOASTed value's size without fetching it."""
    if session.get_bind().dialect.name == "postgresql":
        return func.octet_length(column)
    return func.length(column)


# --- deleting -----------------------------------------------------------------------------------


def delete_checkpoints(session: Session, *, job_id: str) -> None:
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))


def delete_metrics(session: Session, *, job_id: str) -> None:
    session.execute(delete(EpochMetric).where(EpochMetric.job_id == job_id))


def delete_job(session: Session, *, job_id: str) -> bool:
    """The job's own row; its checkpoints and metrics first (above)."""
    result = session.execute(delete(Job).where(Job.id == job_id))
    return result.rowcount == 1  # type: ignore[attr-defined]


def lock_dataset(session: Session, *, dataset_id: str, owner_id: str) -> bool:
    """Whether the caller has this dataset; its row locked until the transaction ends, so that
    no job naming it is submitted between the check for jobs and the delete (PostgreSQL; SQLite
    serialises writers already)."""
    query = (
        select(Dataset.id)
        .where(Dataset.id == dataset_id, Dataset.owner_id == owner_id)
        .with_for_update()
    )
    return session.execute(query).one_or_none() is not None


def share_dataset(session: Session, *, dataset_id: str) -> None:
    """Hold the dataset row against a delete until the transaction ends (a submission that
    names it); a no-op on SQLite."""
    session.execute(
        select(Dataset.id).where(Dataset.id == dataset_id).with_for_update(read=True)
    ).all()


def active_jobs_using(session: Session, *, dataset_id: str) -> Sequence[str]:
    """Ids of the queued and running jobs that train on the uploaded dataset, oldest first."""
    named = Job.spec["dataset"]["id"].as_string()
    query = (
        select(Job.id).where(Job.status.in_(ACTIVE_STATUSES), named == dataset_id).order_by(Job.id)
    )
    return session.scalars(query).all()


def delete_dataset(session: Session, *, dataset_id: str) -> None:
    session.execute(delete(Dataset).where(Dataset.id == dataset_id))


def job_ids_of(session: Session, *, owner_id: str) -> Sequence[str]:
    return session.scalars(select(Job.id).where(Job.owner_id == owner_id)).all()


def dataset_ids_of(session: Session, *, owner_id: str) -> Sequence[str]:
    return session.scalars(select(Dataset.id).where(Dataset.owner_id == owner_id)).all()


# --- measuring ----------------------------------------------------------------------------------


def job_storage(session: Session, *, owner_id: str) -> Sequence[tuple[Job, int, int]]:
    """Each of the owner's jobs with its checkpoints' count and bytes (weights and state),
    the largest first."""
    stored = _blob_bytes(session, Checkpoint.weights) + _blob_bytes(session, Checkpoint.state)
    per_job = (
        select(
            Checkpoint.job_id,
            func.count().label("checkpoints"),
            func.sum(stored).label("bytes"),
        )
        .group_by(Checkpoint.job_id)
        .subquery()
    )
    checkpoints = func.coalesce(per_job.c.checkpoints, 0)
    size = func.coalesce(per_job.c.bytes, 0)
    query = (
        select(Job, checkpoints, size)
        .outerjoin(per_job, per_job.c.job_id == Job.id)
        .where(Job.owner_id == owner_id)
        .order_by(size.desc(), Job.id.desc())
    )
    return [(job, int(count), int(total)) for job, count, total in session.execute(query)]


def dataset_storage(session: Session, *, owner_id: str) -> Sequence[tuple[str, str, int]]:
    """Each of the owner's datasets as (id, filename, bytes stored), the largest first."""
    size = _blob_bytes(session, Dataset.data)
    query = (
        select(Dataset.id, Dataset.filename, size)
        .where(Dataset.owner_id == owner_id)
        .order_by(size.desc(), Dataset.id.desc())
    )
    return [(row[0], row[1], int(row[2])) for row in session.execute(query)]


def stored_bytes(session: Session, *, owner_id: str) -> int:
    """What the owner's checkpoints and datasets take, in one query."""
    checkpoints = (
        select(
            func.coalesce(
                func.sum(
                    _blob_bytes(session, Checkpoint.weights)
                    + _blob_bytes(session, Checkpoint.state)
                ),
                0,
            )
        )
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.owner_id == owner_id)
        .scalar_subquery()
    )
    datasets = (
        select(func.coalesce(func.sum(_blob_bytes(session, Dataset.data)), 0))
        .where(Dataset.owner_id == owner_id)
        .scalar_subquery()
    )
    return int(session.scalar(select(checkpoints + datasets)) or 0)
