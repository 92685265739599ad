"""A sweep's life as its owner drives it: submit and cancel. Trials in between are
scheduling.py's."""

import logging
from dataclasses import asdict

from sqlalchemy.orm import Session

from service import admission, jobs, storage
from service.errors import Conflict, InvalidSpec, NotFound
from service.ids import new_id
from service.settings import Settings
from service.specs import JobSpec
from service.statuses import ACTIVE_STATUSES, SweepStatus
from service.sweeps import expansion, scheduling
from service.sweeps import repository as sweeps_repository
from service.sweeps.spec import SweepSpec
from service.tables import Sweep

log = logging.getLogger(__name__)
# Bad trials a refusal names; the count of the rest follows.
NAMED_PROBLEMS = 3
# JobSpec fields that planning copies and checks nothing of.
UNCHECKED_FIELDS = {"name", "seed", "optimizer"}


def submit(session: Session, *, spec: SweepSpec, owner_id: str, settings: Settings) -> Sweep:
    """Check every trial the sweep will run (bayes: the first `parallel`, as drawn), then store
    the sweep and queue its first trials, all in the caller's transaction."""
    count = expansion.trial_count(spec)
    limit = settings.max_active_jobs_per_key
    if spec.parallel > limit:
        raise InvalidSpec(
            f"parallel {spec.parallel} is more than the {limit} queued or running jobs a key may "
            f"have (SERVICE_MAX_ACTIVE_JOBS_PER_KEY); set parallel to {limit} or fewer"
        )
    admission.check_room(
        session, owner_id=owner_id, settings=settings, needed=min(spec.parallel, count)
    )
    limits = admission.SizeLimits.of(settings)
    planned = expansion.planned_params(spec)
    if planned is not None:
        _check_trials(session, spec=spec, planned=planned, owner_id=owner_id, limits=limits)
    sweep = Sweep(
        id=new_id(),
        owner_id=owner_id,
        name=spec.name,
        status=SweepStatus.RUNNING,
        spec=spec.model_dump(mode="json"),
        planned=planned,
        max_trials=count,
        trials_created=0,
        limits=asdict(limits),
        created_at=admission.now(),
    )
    sweeps_repository.add_sweep(session, sweep=sweep)
    scheduling.top_up(session, sweep=sweep, submitting=True)
    log.info("sweep %s: %s, %d trials, %d at once", sweep.id, spec.method, count, spec.parallel)
    return sweep


def _check_trials(
    session: Session,
    *,
    spec: SweepSpec,
    planned: list[expansion.Params],
    owner_id: str,
    limits: admission.SizeLimits,
) -> None:
    """InvalidSpec naming the trials that cannot train, if any.

    Trials alike but for their name, seed and optimizer (which no check reads) are planned once:
    a sweep of seeds or learning rates dry-runs one network, not one per trial."""
    problems: list[str] = []
    checked: dict[str, str | None] = {}
    for number, params in enumerate(planned):
        try:
            job = expansion.trial_spec(spec, params=params, trial=number)
        except InvalidSpec as error:
            problems.append(error.message)
            continue
        key = job.model_dump_json(exclude=UNCHECKED_FIELDS)
        if key not in checked:
            checked[key] = _problem(
                session, job=job, metric=spec.metric.name, owner_id=owner_id, limits=limits
            )
        if checked[key] is not None:
            problems.append(
                f"the trial with {expansion.describe(params)} cannot train: {checked[key]}"
            )
    if not problems:
        return
    named = "; ".join(problems[:NAMED_PROBLEMS])
    more = len(problems) - NAMED_PROBLEMS
    raise InvalidSpec(
        f"{len(problems)} of {len(planned)} trials cannot train, so the sweep was not created: "
        f"{named}{f'; and {more} more' if more > 0 else ''}"
    )


def _problem(
    session: Session, *, job: JobSpec, metric: str, owner_id: str, limits: admission.SizeLimits
) -> str | None:
    try:
        scheduling.plan_job(session, job=job, metric=metric, owner_id=owner_id, limits=limits)
    except InvalidSpec as error:
        return error.message
    return None


def get(session: Session, *, sweep_id: str, owner_id: str) -> Sweep:
    sweep = sweeps_repository.get_sweep(session, sweep_id=sweep_id, owner_id=owner_id)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id!r} does not exist")
    return sweep


def cancel(session: Session, *, sweep_id: str, owner_id: str) -> Sweep:
    """Create no more trials; cancel the queued ones now, stop the running ones at their next
    epoch (each keeps its checkpoints)."""
    get(session, sweep_id=sweep_id, owner_id=owner_id)
    # Trials' rows first, then the sweep's, the order in which a worker ending a trial takes
    # them: the other order could deadlock with it on PostgreSQL.
    sweeps_repository.lock_active_trials(session, sweep_id=sweep_id)
    sweep = sweeps_repository.lock_sweep(session, sweep_id=sweep_id)
    assert sweep is not None
    if sweep.status != SweepStatus.RUNNING:
        raise Conflict(
            f"sweep {sweep.id} already {sweep.status}; only a running sweep can be cancelled"
        )
    sweeps_repository.set_sweep(session, sweep_id=sweep.id, status=SweepStatus.CANCELLED)
    active = sweeps_repository.trials(session, sweep_id=sweep.id, statuses=ACTIVE_STATUSES)
    for trial in active:
        # Its end, if it is queued, calls scheduling.trial_ended: the sweep, cancelled, makes none.
        jobs.cancel(session, job_id=trial.id, owner_id=owner_id)
    if not sweeps_repository.count_active_trials(session, sweep_id=sweep.id):
        sweeps_repository.set_sweep(session, sweep_id=sweep.id, finished_at=admission.now())
    session.refresh(sweep)
    log.info("sweep %s cancelled: %d trials were queued or running", sweep.id, len(active))
    return sweep


def delete(session: Session, *, sweep_id: str, owner_id: str) -> list[str]:
    """Delete the sweep with every trial (their metrics and checkpoints: storage.delete_job);
    the ids of the trials deleted. A running trial stops at its worker's next write, which its
    deleted lease fences off; no trial ends, so none is created in its place (and a trial that
    ends in between finds no sweep: lock_sweep_of gives None)."""
    get(session, sweep_id=sweep_id, owner_id=owner_id)
    # The order cancel takes the rows in, for the same reason.
    sweeps_repository.lock_active_trials(session, sweep_id=sweep_id)
    sweep = sweeps_repository.lock_sweep(session, sweep_id=sweep_id)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id!r} does not exist")
    if sweep.status == SweepStatus.RUNNING:
        sweeps_repository.set_sweep(session, sweep_id=sweep.id, status=SweepStatus.CANCELLED)
    trials = [trial.id for trial in sweeps_repository.trials(session, sweep_id=sweep.id)]
    for trial_id in trials:
        storage.delete_job(session, job_id=trial_id, owner_id=owner_id)
    sweeps_repository.delete_sweep(session, sweep_id=sweep.id)
    log.info("sweep %s deleted with its %d trials (it was %s)", sweep.id, len(trials), sweep.status)
    return trials


def delete_job(session: Session, *, job_id: str, owner_id: str) -> None:
    """DELETE /v1/jobs/{id}: storage.delete_job, and a queued or running trial gone is a trial
    ended: its sweep creates the next one (or ends), as when one is cancelled. The sweep's row
    is locked after the job's, the order every path takes them in."""
    job = storage.delete_job(session, job_id=job_id, owner_id=owner_id)
    if job.sweep_id is not None and job.status in ACTIVE_STATUSES:
        sweep = sweeps_repository.lock_sweep(session, sweep_id=job.sweep_id)
        if sweep is not None:
            scheduling.trial_ended(session, sweep=sweep)
