"""Queue jobs through the service's own submit, claim them by hand as a worker does, read them
back, wait on them: for worker tests."""

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository, repository_checkpoints
from service.db import transaction
from service.keys import create_key
from service.settings import Settings
from service.specs import JobSpec
from service.tables import Job
from service.worker.hooks import DatabaseHooks
from tests.factories import tiny_spec


def queue(
    sessions: sessionmaker[Session], settings: Settings, count: int = 1, **overrides: object
) -> list[str]:
    """Submit `count` copies of the tiny spec (with overrides) in one transaction."""
    with transaction(sessions, immediate=True) as session:
        owner, _ = create_key(session, name="worker-tests")
        spec = JobSpec.model_validate(tiny_spec(**overrides))
        return [
            jobs.submit(session, spec=spec, owner_id=owner.id, settings=settings).id
            for _ in range(count)
        ]


def claim(sessions: sessionmaker[Session], settings: Settings, *, token: str) -> Job | None:
    """Claim the oldest queued job in a transaction of its own, as a worker's loop does."""
    with transaction(sessions, immediate=True) as session:
        return jobs.claim(session, lease_token=token, device="cpu", settings=settings)


def claimed(sessions: sessionmaker[Session], settings: Settings, *, token: str) -> Job:
    """claim(), where a queued job is expected."""
    job = claim(sessions, settings, token=token)
    assert job is not None
    return job


def hooks_for(sessions: sessionmaker[Session], settings: Settings, job: Job) -> DatabaseHooks:
    """The hooks the worker holding `job`'s lease trains with; the one place tests build them."""
    assert job.started_at is not None
    assert job.lease_owner is not None
    return DatabaseHooks(
        sessions=sessions,
        settings=settings,
        job_id=job.id,
        lease_token=job.lease_owner,
        started_at=job.started_at,
        shutdown=threading.Event(),
    )


def claimed_hooks(
    sessions: sessionmaker[Session], settings: Settings, *, token: str
) -> DatabaseHooks:
    """Claim the oldest queued job and get the hooks a worker would write its progress with."""
    return hooks_for(sessions, settings, claimed(sessions, settings, token=token))


def read(sessions: sessionmaker[Session], job_id: str) -> Job:
    with transaction(sessions) as session:
        job = repository.get_job(session, job_id=job_id)
        assert job is not None
        return job


def wait_for(predicate: Callable[[], object], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")


def queue_spec(sessions: sessionmaker[Session], settings: Settings, spec: dict) -> str:
    with transaction(sessions, immediate=True) as session:
        owner, _ = create_key(session, name="resume")
        model = JobSpec.model_validate(spec)
        return jobs.submit(session, spec=model, owner_id=owner.id, settings=settings).id


def history(sessions: sessionmaker[Session], job_id: str) -> tuple[list[tuple], str]:
    """Every epoch's numbers (not its duration), and the final weights' sha256."""
    with transaction(sessions) as session:
        metrics = repository.list_metrics(session, job_id=job_id)
        final = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="final", with_blobs=False
        )
    assert final is not None
    return [tuple(getattr(m, f) for f in FIELDS) for m in metrics], final.sha256
