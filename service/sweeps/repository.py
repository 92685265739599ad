"""Every SQL statement about sweeps and their trials (service/repository*.py hold the rest).
Callers own the transaction; nothing here commits."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from service.statuses import ACTIVE_STATUSES, JobStatus
from service.tables import EpochMetric, Job, Sweep


def add_sweep(session: Session, *, sweep: Sweep) -> None:
    session.add(sweep)
    session.flush()


def get_sweep(session: Session, *, sweep_id: str, owner_id: str | None = None) -> Sweep | None:
    query = select(Sweep).where(Sweep.id == sweep_id)
    if owner_id is not None:
        query = query.where(Sweep.owner_id == owner_id)
    return session.scalars(query).one_or_none()


def delete_sweep(session: Session, *, sweep_id: str) -> None:
    session.execute(delete(Sweep).where(Sweep.id == sweep_id))


def sweep_ids_of(session: Session, *, owner_id: str) -> Sequence[str]:
    """Every sweep of one key (an admin's `service delete --key-name`)."""
    return session.scalars(select(Sweep.id).where(Sweep.owner_id == owner_id)).all()


def list_sweeps(
    session: Session, *, owner_id: str, limit: int, before_id: str | None
) -> Sequence[Sweep]:
    """Newest first; `before_id` is the last id of the previous page."""
    query = select(Sweep).where(Sweep.owner_id == owner_id)
    if before_id is not None:
        query = query.where(Sweep.id < before_id)
    return session.scalars(query.order_by(Sweep.id.desc()).limit(limit)).all()


def lock_sweep_of_job(session: Session, *, job_id: str) -> Sweep | None:
    """The sweep of a trial, its row locked for this transaction (PostgreSQL FOR UPDATE; SQLite
    writers are serialised by BEGIN IMMEDIATE); None for a job of no sweep.

    populate_existing: a sweep already in the session is read again, as the lock found it."""
    sweep_id = session.scalar(select(Job.sweep_id).where(Job.id == job_id))
    if sweep_id is None:
        return None
    return lock_sweep(session, sweep_id=sweep_id)


def lock_sweep(session: Session, *, sweep_id: str) -> Sweep | None:
    query = (
        select(Sweep)
        .where(Sweep.id == sweep_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).one_or_none()


def lock_active_trials(session: Session, *, sweep_id: str) -> None:
    """Lock the sweep's queued and running trials' rows (PostgreSQL), in id order."""
    query = (
        select(Job.id)
        .where(Job.sweep_id == sweep_id, Job.status.in_(ACTIVE_STATUSES))
        .order_by(Job.id)
        .with_for_update()
    )
    session.execute(query).all()


def set_sweep(session: Session, *, sweep_id: str, **values: object) -> None:
    statement = update(Sweep).where(Sweep.id == sweep_id).values(**values)
    session.execute(statement)


def trials(
    session: Session, *, sweep_id: str, statuses: frozenset[JobStatus] | None = None
) -> Sequence[Job]:
    """The sweep's trials in trial order, optionally only those in `statuses`."""
    query = select(Job).where(Job.sweep_id == sweep_id)
    if statuses is not None:
        query = query.where(Job.status.in_(statuses))
    return session.scalars(query.order_by(Job.sweep_trial)).all()


def count_active_trials(session: Session, *, sweep_id: str) -> int:
    query = select(func.count()).where(Job.sweep_id == sweep_id, Job.status.in_(ACTIVE_STATUSES))
    return session.scalar(query) or 0


def count_trials_by_status(
    session: Session, *, sweep_ids: Sequence[str]
) -> dict[str, dict[JobStatus, int]]:
    """For each sweep, how many of its trials are in each status (statuses with none left out)."""
    counts: dict[str, dict[JobStatus, int]] = {sweep_id: {} for sweep_id in sweep_ids}
    if not sweep_ids:
        return counts
    query = (
        select(Job.sweep_id, Job.status, func.count())
        .where(Job.sweep_id.in_(list(sweep_ids)))
        .group_by(Job.sweep_id, Job.status)
    )
    for sweep_id, status, count in session.execute(query):
        counts[str(sweep_id)][status] = count
    return counts


def finish_sweep(
    session: Session, *, sweep_id: str, status: str, finished_at: datetime, error: str | None
) -> None:
    set_sweep(session, sweep_id=sweep_id, status=status, finished_at=finished_at, error=error)


# --- early stopping: the values trials have reported -------------------------------------------


def values_at(
    session: Session, *, sweep_id: str, epoch: int, metric: str, besides: str
) -> list[float]:
    """The sweep's other trials' stored values of `metric` at `epoch`."""
    column = getattr(EpochMetric, metric)
    query = (
        select(column)
        .join(Job, Job.id == EpochMetric.job_id)
        .where(
            Job.sweep_id == sweep_id,
            Job.id != besides,
            EpochMetric.epoch == epoch,
            column.is_not(None),
        )
    )
    return [float(value) for value in session.scalars(query)]


def best_values_up_to(
    session: Session, *, sweep_id: str, epoch: int, metric: str, maximize: bool, besides: str
) -> list[float]:
    """For each other trial of the sweep that has stored `epoch`: its best value of `metric`
    over its epochs up to `epoch`."""
    column = getattr(EpochMetric, metric)
    best = func.max(column) if maximize else func.min(column)
    query = (
        select(best)
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.sweep_id == sweep_id, Job.id != besides, EpochMetric.epoch <= epoch)
        .group_by(EpochMetric.job_id)
        .having(func.max(EpochMetric.epoch) == epoch)
    )
    return [float(value) for value in session.scalars(query) if value is not None]


def best_value_up_to(
    session: Session, *, job_id: str, epoch: int, metric: str, maximize: bool
) -> float | None:
    column = getattr(EpochMetric, metric)
    best = func.max(column) if maximize else func.min(column)
    query = select(best).where(EpochMetric.job_id == job_id, EpochMetric.epoch <= epoch)
    value = session.scalar(query)
    return None if value is None else float(value)


# --- the sweep's event stream ------------------------------------------------------------------


@dataclass(frozen=True)
class TrialState:
    """What GET /v1/sweeps/{id}/events compares of a trial from one poll to the next."""

    job_id: str
    status: JobStatus
    stop_reason: str | None
    error: str | None
    trial: int  # its number in the sweep, from 1
    epoch: int  # its last stored epoch


def trial_states(session: Session, *, sweep_id: str) -> list[TrialState]:
    """The sweep's trials in trial order, as TrialStates."""
    query = (
        select(Job.id, Job.sweep_trial, Job.status, Job.stop_reason, Job.error, Job.epoch)
        .where(Job.sweep_id == sweep_id)
        .order_by(Job.sweep_trial)
    )
    return [
        TrialState(
            job_id=job_id,
            trial=(trial or 0) + 1,  # stored from 0, shown from 1 as on the leaderboard
            status=JobStatus(status),
            stop_reason=stop_reason,
            error=error,
            epoch=epoch,
        )
        for job_id, trial, status, stop_reason, error, epoch in session.execute(query)
    ]
