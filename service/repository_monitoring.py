"""The SQL of event streams and monitoring: snapshots of jobs and their new epochs for the
streams, and the counts and timings the telemetry reports; split off repository.py by subject.
Callers own the transaction."""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, load_only

from service.statuses import JobStatus
from service.tables import EpochMetric, Job

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
