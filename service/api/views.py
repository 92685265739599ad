"""Rows to response bodies; no queries here (service/job_reads.py reads what these show)."""

import csv
import io
from collections.abc import Sequence

from service.job_reads import JobPage, JobSummary
from service.schemas import CheckpointOut, DatasetOut, EpochMetricOut, JobListOut, JobOut
from service.tables import Checkpoint, Dataset, EpochMetric
from service.training.hooks import METRIC_FIELDS


def job_out(summary: JobSummary) -> JobOut:
    job = summary.job
    return JobOut(
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
        stop_reason=job.stop_reason,
        spec=summary.spec,
        latest=_metric_out(summary.latest),
        best=_metric_out(summary.best),
        sweep_id=job.sweep_id,
        params=job.params,
    )


def job_page_out(page: JobPage) -> JobListOut:
    return JobListOut(
        jobs=[job_out(summary) for summary in page.jobs], next_cursor=page.next_cursor
    )


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
        class_names=dataset.class_names,
        images=dataset.images,
        sha256=dataset.sha256,
        bytes=dataset.size_bytes,
        created_at=dataset.created_at,
    )
