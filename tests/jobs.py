"""Queue jobs through the service's own submit, read them back, wait on them: for worker tests."""

import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.db import transaction
from service.keys import create_key
from service.settings import Settings
from service.specs import JobSpec
from service.tables import Job
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
        final = repository.find_checkpoint(session, job_id=job_id, ref="final", with_blobs=False)
    assert final is not None
    return [tuple(getattr(m, f) for f in FIELDS) for m in metrics], final.sha256
