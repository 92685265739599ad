"""What a sweep's curves.png draws: every trial's curve of the sweep's metric, each labelled by
the params that differ between the trials, in short ("optimizer=adam, layers=Linear-Linear")."""

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from service import repository
from service.errors import Conflict
from service.sweeps import repository as sweeps_repository
from service.sweeps.labels import short_labels
from service.sweeps.scheduling import stored_spec
from service.tables import Job, Sweep

# Epochs drawn on one trial's curve at most; longer runs are thinned evenly.
CURVE_EPOCHS = 2000


@dataclass(frozen=True)
class TrialCurve:
    label: str
    status: str
    epochs: np.ndarray
    values: np.ndarray  # the metric at each epoch (NaN where it was not measured)


@dataclass(frozen=True)
class SweepCurves:
    metric: str
    title: str
    trials: list[TrialCurve]  # in trial order; trials with no epoch yet are left out


def cache_key(session: Session, *, sweep: Sweep) -> Hashable:
    """Changes whenever any trial stores an epoch, starts again or is created."""
    trials = sweeps_repository.trials(session, sweep_id=sweep.id)
    return ("sweep_curves", sweep.id, tuple((t.id, t.attempt, t.epoch, t.status) for t in trials))


def sweep_curves(session: Session, *, sweep: Sweep) -> SweepCurves:
    """Conflict while no trial has stored an epoch."""
    metric = stored_spec(sweep).metric.name
    trials = sweeps_repository.trials(session, sweep_id=sweep.id)
    labels = short_labels([trial.params or {} for trial in trials])
    curves = [
        curve
        for trial, label in zip(trials, labels, strict=True)
        if (curve := _curve(session, trial=trial, label=label, metric=metric)) is not None
    ]
    if not curves:
        raise Conflict(
            f"sweep {sweep.id} has no trial with an epoch yet; curves.png is drawn once one of "
            "its trials stores its first epoch"
        )
    return SweepCurves(
        metric=metric, title=f"{sweep.name}: {metric} of {len(curves)} trials", trials=curves
    )


def _curve(session: Session, *, trial: Job, label: str, metric: str) -> TrialCurve | None:
    rows = repository.list_metrics(session, job_id=trial.id)
    if not rows:
        return None
    if len(rows) > CURVE_EPOCHS:
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, CURVE_EPOCHS).round()]
    values = [getattr(row, metric) for row in rows]
    return TrialCurve(
        label=label,
        status=trial.status,
        epochs=np.array([row.epoch for row in rows]),
        values=np.array([np.nan if v is None else v for v in values], dtype=float),
    )
