"""A sweep trial's early stopping, as its worker applies it: the trial's own values come from
the training loop, the other trials' from the database (what they have stored is what they
have reported), and service/sweeps/pruning.py decides."""

import math
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.sweeps import pruning
from service.sweeps import repository as sweeps_repository
from service.sweeps.spec import AshaRule, SweepSpec
from service.tables import Job
from service.training.hooks import EpochResult
from service.worker import outages


class TrialPruner:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        job_id: str,
        sweep_id: str,
        spec: SweepSpec,
        epochs: int,
    ) -> None:
        assert spec.early_stopping is not None
        self.sessions = sessions
        self.job_id = job_id
        self.sweep_id = sweep_id
        self.rule = spec.early_stopping
        self.metric = spec.metric.name
        self.maximize = spec.metric.maximize
        self.rungs = (
            set(pruning.asha_rungs(self.rule, epochs=epochs))
            if isinstance(self.rule, AshaRule)
            else set()
        )
        self.value: float | None = None  # this epoch's value of the metric
        self.best: float | None = None  # the best value so far

    def resume(self, session: Session, *, epoch: int) -> None:
        """Start from the best value the stored epochs up to `epoch` hold."""
        self.best = sweeps_repository.best_value_up_to(
            session, job_id=self.job_id, epoch=epoch, metric=self.metric, maximize=self.maximize
        )

    def observe(self, metrics: EpochResult) -> None:
        value = getattr(metrics, self.metric)
        self.value = value if value is not None and math.isfinite(value) else None
        if self.value is not None and (
            self.best is None
            or (self.value > self.best if self.maximize else self.value < self.best)
        ):
            self.best = self.value

    def decide(self, *, epoch: int, flush: Callable[[], None]) -> str | None:
        """The stop reason if the trial is pruned after `epoch`, else None. `flush` stores this
        trial's epochs, so that at an ASHA rung it has reported before it compares."""
        if isinstance(self.rule, AshaRule):
            if epoch not in self.rungs or self.value is None:
                return None
            flush()
            with outages.converted(), transaction(self.sessions) as session:
                earlier = sweeps_repository.values_at(
                    session,
                    sweep_id=self.sweep_id,
                    epoch=epoch,
                    metric=self.metric,
                    besides=self.job_id,
                )
            return pruning.asha(
                self.rule,
                metric=self.metric,
                maximize=self.maximize,
                epoch=epoch,
                value=self.value,
                earlier=earlier,
            )
        if epoch < self.rule.min_epochs or self.best is None:
            return None
        with outages.converted(), transaction(self.sessions) as session:
            others = sweeps_repository.best_values_up_to(
                session,
                sweep_id=self.sweep_id,
                epoch=epoch,
                metric=self.metric,
                maximize=self.maximize,
                besides=self.job_id,
            )
        return pruning.median(
            self.rule,
            metric=self.metric,
            maximize=self.maximize,
            epoch=epoch,
            best=self.best,
            others=others,
        )


def pruner_for(
    sessions: sessionmaker[Session], *, session: Session, job: Job, resume_epoch: int
) -> TrialPruner | None:
    """The pruner of a claimed job that is a trial of a sweep with early stopping, else None;
    read in the claim's transaction (`session`), resuming after `resume_epoch`."""
    if job.sweep_id is None:
        return None
    sweep = sweeps_repository.get_sweep(session, sweep_id=job.sweep_id)
    if sweep is None:
        return None
    spec = SweepSpec.model_validate(sweep.spec)
    if spec.early_stopping is None:
        return None
    pruner = TrialPruner(
        sessions=sessions, job_id=job.id, sweep_id=sweep.id, spec=spec, epochs=job.epochs
    )
    pruner.resume(session, epoch=resume_epoch)
    return pruner
