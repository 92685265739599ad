"""What the api reads about a caller's sweeps: a sweep with its trials counted by status, its
failures and its best trial; the leaderboard; a page of sweeps. Rows only; api/views.py turns
them into bodies."""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service import repository
from service.statuses import JobStatus
from service.sweeps import control
from service.sweeps import repository as sweeps_repository
from service.sweeps.scheduling import stored_spec
from service.sweeps.spec import SweepSpec
from service.tables import EpochMetric, Job, Sweep


@dataclass(frozen=True)
class TrialRow:
    job: Job
    best: EpochMetric | None  # the trial's epoch with the best value of the sweep's metric
    value: float | None  # the metric there
    rank: int | None  # 1 is best; None for a trial with no value yet


@dataclass(frozen=True)
class SweepSummary:
    sweep: Sweep
    spec: SweepSpec
    counts: dict[JobStatus, int]
    best: TrialRow | None
    failed: list[TrialRow]  # its failed trials, in trial order
    epochs_saved: int  # epochs its pruned trials did not train


@dataclass(frozen=True)
class SweepPage:
    sweeps: list[SweepSummary]
    next_cursor: str | None


def leaderboard(session: Session, *, sweep: Sweep) -> list[TrialRow]:
    """Every trial, ranked by the sweep's metric at its best epoch; trials with no value yet
    follow in trial order."""
    spec = stored_spec(sweep)
    metric = spec.metric.name
    trials = sweeps_repository.trials(session, sweep_id=sweep.id)
    best = repository.best_metrics(session, job_ids=[trial.id for trial in trials], metric=metric)
    scored = [trial for trial in trials if trial.id in best]
    sign = -1.0 if spec.metric.maximize else 1.0
    scored.sort(key=lambda trial: (sign * getattr(best[trial.id], metric), trial.sweep_trial))
    rows = [
        TrialRow(job=trial, best=best[trial.id], value=getattr(best[trial.id], metric), rank=rank)
        for rank, trial in enumerate(scored, start=1)
    ]
    rows += [
        TrialRow(job=trial, best=None, value=None, rank=None)
        for trial in trials
        if trial.id not in best
    ]
    return rows


def summary(session: Session, *, sweep: Sweep) -> SweepSummary:
    counts = sweeps_repository.count_trials_by_status(session, sweep_ids=[sweep.id])[sweep.id]
    board = leaderboard(session, sweep=sweep)
    return SweepSummary(
        sweep=sweep,
        spec=stored_spec(sweep),
        counts=counts,
        best=board[0] if board and board[0].rank is not None else None,
        failed=sorted(
            (row for row in board if row.job.status == JobStatus.FAILED),
            key=lambda row: row.job.sweep_trial or 0,
        ),
        epochs_saved=sum(
            row.job.epochs - row.job.epoch for row in board if row.job.status == JobStatus.PRUNED
        ),
    )


def sweep(session: Session, *, sweep_id: str, owner_id: str) -> SweepSummary:
    """NotFound unless the sweep exists and is the caller's."""
    return summary(session, sweep=control.get(session, sweep_id=sweep_id, owner_id=owner_id))


def trials(session: Session, *, sweep_id: str, owner_id: str) -> tuple[Sweep, list[TrialRow]]:
    """The sweep and its leaderboard; NotFound unless it exists and is the caller's."""
    found = control.get(session, sweep_id=sweep_id, owner_id=owner_id)
    return found, leaderboard(session, sweep=found)


def page(session: Session, *, owner_id: str, limit: int, cursor: str | None) -> SweepPage:
    rows = sweeps_repository.list_sweeps(session, owner_id=owner_id, limit=limit, before_id=cursor)
    next_cursor = rows[-1].id if len(rows) == limit else None
    return SweepPage(sweeps=[summary(session, sweep=row) for row in rows], next_cursor=next_cursor)
