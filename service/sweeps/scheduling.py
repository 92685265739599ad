"""Creating a sweep's trials: `parallel` at a time, the next ones as earlier ones end.

Every decision is made under the sweep's row lock, in the transaction that changes what it
depends on: the sweep's submission creates the first trials; `jobs.transition`, ending a trial,
calls `trial_ended`, which creates the next ones (or ends the sweep) before that transaction
commits. So however many api processes and workers end trials at once, on SQLite (writers
serialised by BEGIN IMMEDIATE) or PostgreSQL (SELECT ... FOR UPDATE on the sweep's row), each
trial number is created once (the unique index on jobs (sweep_id, sweep_trial) backs this),
no more than max_trials are created, and no more than `parallel` are queued or running. A worker
that dies mid-trial changes nothing here: the lease machinery requeues the trial, and it ends
like any other.

This module does not import jobs.py (which calls it); cancelling trials is sweeps/control.py's.
"""

import logging

from sqlalchemy.orm import Session

from service import admission, repository, wakeup
from service.errors import InvalidSpec, ServiceError
from service.specs import ACCURACY_METRICS, VALIDATION_METRICS, JobSpec
from service.statuses import FINAL_STATUSES, JobStatus, SweepStatus
from service.sweeps import bayes, expansion
from service.sweeps import repository as sweeps_repository
from service.sweeps.spec import SweepSpec
from service.tables import Job, Sweep
from service.training.plan import Plan

log = logging.getLogger(__name__)

lock_sweep_of = sweeps_repository.lock_sweep_of_job


def stored_spec(sweep: Sweep) -> SweepSpec:
    return SweepSpec.model_validate(sweep.spec)


def trial_ended(session: Session, *, sweep: Sweep) -> None:
    """A trial of `sweep` (locked by `lock_sweep_of`) just reached a final status: create the
    trials that take its place, or end the sweep if none is left to run."""
    if sweep.status == SweepStatus.RUNNING:
        top_up(session, sweep=sweep)
    elif sweep.finished_at is None and not sweeps_repository.count_active_trials(
        session, sweep_id=sweep.id
    ):
        # Cancelled: its last running trial stopped.
        sweeps_repository.set_sweep(session, sweep_id=sweep.id, finished_at=admission.now())


def top_up(session: Session, *, sweep: Sweep, submitting: bool = False) -> list[Job]:
    """Create trials until `parallel` are queued or running or max_trials exist; end the sweep
    if nothing is left to run. The caller holds the sweep's row lock (or has just inserted it).

    A bayes trial that cannot train fails the sweep, saying why, unless `submitting`: then the
    InvalidSpec refuses the whole sweep."""
    spec = stored_spec(sweep)
    active = sweeps_repository.count_active_trials(session, sweep_id=sweep.id)
    created: list[Job] = []
    while active < spec.parallel and sweep.trials_created < sweep.max_trials:
        number = sweep.trials_created
        try:
            params = _params(session, sweep=sweep, spec=spec, number=number)
            if params is None:
                # bayes: every combination of its values has been tried.
                sweeps_repository.set_sweep(session, sweep_id=sweep.id, max_trials=number)
                break
            job = _trial(session, sweep=sweep, spec=spec, params=params, number=number)
        except ServiceError as error:
            if submitting:
                raise
            log.warning("sweep %s: trial %d not created: %s", sweep.id, number, error.message)
            _finish(session, sweep=sweep, status=SweepStatus.FAILED, error=error.message)
            return created
        repository.add_job(session, job=job)
        sweeps_repository.set_sweep(session, sweep_id=sweep.id, trials_created=number + 1)
        created.append(job)
        active += 1
    if created:
        wakeup.job_queued(session)
        log.info(
            "sweep %s: %d trials queued, %d created of %d",
            sweep.id,
            len(created),
            sweep.trials_created,
            sweep.max_trials,
        )
    if active == 0:
        _end(session, sweep=sweep)
    return created


def _params(
    session: Session, *, sweep: Sweep, spec: SweepSpec, number: int
) -> expansion.Params | None:
    if sweep.planned is not None:
        return dict(sweep.planned[number])
    trials = sweeps_repository.trials(session, sweep_id=sweep.id)
    ended = [trial for trial in trials if trial.status in FINAL_STATUSES]
    best = repository.best_metrics(
        session, job_ids=[trial.id for trial in ended], metric=spec.metric.name
    )
    finished = [
        bayes.Finished(
            params=trial.params or {},
            value=getattr(best[trial.id], spec.metric.name) if trial.id in best else None,
            pruned=trial.status == JobStatus.PRUNED,
        )
        for trial in ended
    ]
    taken = [trial.params or {} for trial in trials]
    return bayes.next_params(spec, trial=number, finished=finished, taken=taken)


def _trial(
    session: Session, *, sweep: Sweep, spec: SweepSpec, params: expansion.Params, number: int
) -> Job:
    planned = plan_trial(
        session,
        spec=spec,
        params=params,
        number=number,
        owner_id=sweep.owner_id,
        limits=admission.SizeLimits(**sweep.limits),
    )
    return admission.new_job(
        planned=planned,
        owner_id=sweep.owner_id,
        sweep_id=sweep.id,
        sweep_trial=number,
        params=params,
    )


def plan_trial(
    session: Session,
    *,
    spec: SweepSpec,
    params: expansion.Params,
    number: int,
    owner_id: str,
    limits: admission.SizeLimits,
) -> Plan:
    """The planned JobSpec of trial `number`; InvalidSpec naming its params if it cannot
    train, or would not measure the sweep's metric."""
    job_spec = expansion.trial_spec(spec, params=params, trial=number)
    try:
        return plan_job(
            session, job=job_spec, metric=spec.metric.name, owner_id=owner_id, limits=limits
        )
    except InvalidSpec as error:
        raise InvalidSpec(
            f"the trial with {expansion.describe(params)} cannot train: {error.message}"
        ) from error


def plan_job(
    session: Session, *, job: JobSpec, metric: str, owner_id: str, limits: admission.SizeLimits
) -> Plan:
    """A trial's JobSpec planned as a job's submission plans it; InvalidSpec if it cannot train
    or would not measure `metric`."""
    planned = admission.prepare(session, spec=job, owner_id=owner_id, limits=limits)
    problem = _unmeasured(planned.spec, metric=metric)
    if problem is not None:
        raise InvalidSpec(problem)
    return planned


def _unmeasured(job: JobSpec, *, metric: str) -> str | None:
    """Why a trial would not measure the sweep's metric, or None."""
    if metric in VALIDATION_METRICS and job.validation_fraction == 0:
        return (
            f"the sweep's metric {metric} needs a validation split; set validation_fraction "
            "in base, e.g. 0.2, or rank by loss"
        )
    if metric in ACCURACY_METRICS and job.task == "regression":
        return f"the sweep's metric {metric} is not defined for regression; rank by a loss"
    return None


def _end(session: Session, *, sweep: Sweep) -> None:
    """No trial queued or running and none left to create: the sweep succeeded, unless every
    trial failed."""
    counts = sweeps_repository.count_trials_by_status(session, sweep_ids=[sweep.id])[sweep.id]
    failed = counts.get(JobStatus.FAILED, 0)
    if failed and failed == sum(counts.values()):
        _finish(
            session,
            sweep=sweep,
            status=SweepStatus.FAILED,
            error=f"all {failed} trials failed; see each trial's error",
        )
    else:
        _finish(session, sweep=sweep, status=SweepStatus.SUCCEEDED, error=None)


def _finish(session: Session, *, sweep: Sweep, status: SweepStatus, error: str | None) -> None:
    sweeps_repository.finish_sweep(
        session, sweep_id=sweep.id, status=status, finished_at=admission.now(), error=error
    )
    log.info("sweep %s %s%s", sweep.id, status, f": {error}" if error else "")
