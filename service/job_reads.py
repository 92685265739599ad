"""What the api reads about a caller's jobs: each with its latest and best epochs, a page of
them, a job's epochs, a job's checkpoints. Rows only; api/views.py turns them into bodies."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service import jobs, repository, repository_checkpoints
from service.specs import JobSpec
from service.statuses import JobStatus
from service.tables import Checkpoint, EpochMetric, Job


@dataclass(frozen=True)
class JobSummary:
    job: Job
    spec: JobSpec  # the stored, normalised spec, parsed
    latest: EpochMetric | None
    best: EpochMetric | None  # by the spec's best_metric, else loss


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobSummary]
    next_cursor: str | None  # the id to pass as `cursor` for the next page; None on the last


def summaries(session: Session, rows: Sequence[Job]) -> list[JobSummary]:
    """Jobs with their latest and best epochs, read for the whole page in a few queries."""
    specs = [jobs.stored_spec(job) for job in rows]
    # A job's `epoch` is its last stored epoch, written in the same transaction as that row.
    latest = repository.metrics_at(session, keys=[(job.id, job.epoch) for job in rows if job.epoch])
    best: dict[str, EpochMetric] = {}
    for metric in {spec.best_metric or "loss" for spec in specs}:
        ids = [
            job.id
            for job, spec in zip(rows, specs, strict=True)
            if (spec.best_metric or "loss") == metric
        ]
        best.update(repository.best_metrics(session, job_ids=ids, metric=metric))
    return [
        JobSummary(
            job=job, spec=spec, latest=latest.get((job.id, job.epoch)), best=best.get(job.id)
        )
        for job, spec in zip(rows, specs, strict=True)
    ]


def summary(session: Session, job: Job) -> JobSummary:
    return summaries(session, [job])[0]


def job(session: Session, *, job_id: str, owner_id: str) -> JobSummary:
    """NotFound unless the job exists and is the caller's."""
    return summary(session, jobs.get(session, job_id=job_id, owner_id=owner_id))


def page(
    session: Session,
    *,
    owner_id: str,
    status: JobStatus | None,
    name: str | None = None,
    limit: int,
    cursor: str | None,
    sweep_id: str | None = None,
) -> JobPage:
    """The caller's jobs, newest first, `limit` at most, starting after the job `cursor`;
    with `sweep_id`, only that sweep's trials."""
    rows = repository.list_jobs(
        session,
        owner_id=owner_id,
        status=status,
        name=name,
        limit=limit,
        before_id=cursor,
        sweep_id=sweep_id,
    )
    next_cursor = rows[-1].id if len(rows) == limit else None
    return JobPage(jobs=summaries(session, rows), next_cursor=next_cursor)


def metrics(session: Session, *, job_id: str, owner_id: str, since: int) -> Sequence[EpochMetric]:
    """The job's epochs after `since`, oldest first."""
    found = jobs.get(session, job_id=job_id, owner_id=owner_id)
    return repository.list_metrics(session, job_id=found.id, since=since)


def checkpoints(session: Session, *, job_id: str, owner_id: str) -> Sequence[Checkpoint]:
    """The job's checkpoints, oldest first, without their weights."""
    found = jobs.get(session, job_id=job_id, owner_id=owner_id)
    return repository_checkpoints.list_checkpoints(session, job_id=found.id)
