"""Rows to response bodies."""

import csv
import io
from collections.abc import Sequence

from sqlalchemy.orm import Session

from service import repository
from service.jobs import stored_spec
from service.schemas import CheckpointOut, DatasetOut, EpochMetricOut, JobOut
from service.tables import Checkpoint, Dataset, EpochMetric, Job
from service.training.hooks import METRIC_FIELDS


def job_out(session: Session, job: Job) -> JobOut:
    return jobs_out(session, [job])[0]


def jobs_out(session: Session, jobs: Sequence[Job]) -> list[JobOut]:
    """Jobs with their latest and best epochs, read for the whole page in a few queries."""
    specs = [stored_spec(job) for job in jobs]
    # A job's `epoch` is its last stored epoch, written in the same transaction as that row.
    latest = repository.metrics_at(session, keys=[(job.id, job.epoch) for job in jobs if job.epoch])
    best: dict[str, EpochMetric] = {}
    for metric in {spec.best_metric or "loss" for spec in specs}:
        ids = [
            job.id
            for job, spec in zip(jobs, specs, strict=True)
            if (spec.best_metric or "loss") == metric
        ]
        best.update(repository.best_metrics(session, job_ids=ids, metric=metric))
    return [
        JobOut(
            id=job.id,
            name=job.name,
            status=job.status,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            epoch=job.epoch,
            epochs=job.epochs,
            attempt=job.attempt,
            device=job.device,
            parameters=job.parameters,
            cancel_requested=job.cancel_requested,
            error=job.error,
            spec=spec,
            latest=_metric_out(latest.get((job.id, job.epoch))),
            best=_metric_out(best.get(job.id)),
        )
        for job, spec in zip(jobs, specs, strict=True)
    ]


def _metric_out(row: EpochMetric | None) -> EpochMetricOut | None:
    return EpochMetricOut.model_validate(row) if row is not None else None


def metrics_out(metrics: Sequence[EpochMetric]) -> list[EpochMetricOut]:
    return [EpochMetricOut.model_validate(metric) for metric in metrics]


def metrics_csv(metrics: Sequence[EpochMetric]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRIC_FIELDS)
    for metric in metrics:
        writer.writerow(
            ["" if (value := getattr(metric, f)) is None else value for f in METRIC_FIELDS]
        )
    return buffer.getvalue()


def checkpoints_out(checkpoints: Sequence[Checkpoint]) -> list[CheckpointOut]:
    """One entry per kind: an epoch that is both periodic and best is listed twice."""
    entries = []
    for row in checkpoints:
        flags = {"periodic": row.is_periodic, "best": row.is_best, "final": row.is_final}
        for kind, present in flags.items():
            if present:
                entries.append(
                    CheckpointOut(
                        epoch=row.epoch,
                        kind=kind,
                        metric=row.metric,
                        sha256=row.sha256,
                        bytes=row.size_bytes,
                        created_at=row.created_at,
                    )
                )
    return entries


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        filename=dataset.filename,
        format=dataset.format,
        samples=dataset.samples,
        input_shape=dataset.input_shape,
        task=dataset.task,
        num_classes=dataset.num_classes,
        target_shape=dataset.target_shape,
        sha256=dataset.sha256,
        bytes=dataset.size_bytes,
        created_at=dataset.created_at,
    )
