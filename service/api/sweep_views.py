"""Sweep rows to response bodies; no queries here (service/sweeps/reads.py reads them)."""

import csv
import io
import json

from service.schemas import SweepListOut, SweepOut, TrialOut, TrialsOut
from service.statuses import JobStatus
from service.sweeps.reads import SweepPage, SweepSummary, TrialRow
from service.sweeps.scheduling import stored_spec
from service.tables import Sweep

TRIAL_CSV_FIELDS = ("rank", "trial", "job_id", "status", "value", "best_epoch", "epoch", "epochs")


def trial_out(row: TrialRow) -> TrialOut:
    job = row.job
    return TrialOut(
        rank=row.rank,
        trial=(job.sweep_trial or 0) + 1,
        job_id=job.id,
        status=job.status,
        params=job.params or {},
        value=row.value,
        best_epoch=row.best.epoch if row.best is not None else None,
        epoch=job.epoch,
        epochs=job.epochs,
        stop_reason=job.stop_reason,
        error=job.error,
    )


def trials_out(sweep: Sweep, rows: list[TrialRow]) -> TrialsOut:
    spec = stored_spec(sweep)
    return TrialsOut(
        sweep_id=sweep.id,
        metric=spec.metric.name,
        goal="maximize" if spec.metric.maximize else "minimize",
        trials=[trial_out(row) for row in rows],
    )


def sweep_out(summary: SweepSummary) -> SweepOut:
    sweep = summary.sweep
    return SweepOut(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        method=summary.spec.method,
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        max_trials=sweep.max_trials,
        trials_created=sweep.trials_created,
        parallel=summary.spec.parallel,
        counts={status: summary.counts.get(status, 0) for status in JobStatus},
        best=trial_out(summary.best) if summary.best is not None else None,
        failed_trials=[trial_out(row) for row in summary.failed],
        epochs_saved=summary.epochs_saved,
        error=sweep.error,
        spec=summary.spec,
    )


def sweep_page_out(page: SweepPage) -> SweepListOut:
    return SweepListOut(
        sweeps=[sweep_out(summary) for summary in page.sweeps], next_cursor=page.next_cursor
    )


def trials_csv(rows: list[TrialRow]) -> str:
    """One row per trial; a column per parameter path, its value as JSON."""
    paths: list[str] = []
    for row in rows:
        paths += [path for path in (row.job.params or {}) if path not in paths]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*TRIAL_CSV_FIELDS, *paths])
    for row in rows:
        body = trial_out(row).model_dump()
        params = row.job.params or {}
        writer.writerow(
            ["" if body[field] is None else body[field] for field in TRIAL_CSV_FIELDS]
            + [json.dumps(params[path]) if path in params else "" for path in paths]
        )
    return buffer.getvalue()
