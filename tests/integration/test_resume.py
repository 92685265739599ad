"""A worker killed with SIGKILL mid-training: another resumes the job from its last checkpoint and
ends with per-epoch losses and weights bit-identical to an uninterrupted run."""

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.db import transaction
from service.keys import create_key
from service.settings import Settings
from service.specs import JobSpec
from service.worker.loop import Worker
from tests.factories import stochastic_spec
from tests.integration.test_worker import read, wait_for
from tests.servers import start_service

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


@pytest.mark.parametrize("settings_overrides", [{"lease_seconds": 1.5}])
def test_sigkilled_job_resumes_bit_identical(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    spec = stochastic_spec(validation_fraction=0.25)
    reference_id = queue_spec(sessions, settings, spec)
    Worker(settings=settings, sessions=sessions).run_once()
    reference = history(sessions, reference_id)

    job_id = queue_spec(sessions, settings, spec)
    doomed = start_service(settings, "worker", log_path=str(tmp_path / "doomed.log"))
    try:
        wait_for(lambda: read(sessions, job_id).epoch >= 50)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        doomed.kill()
    killed_at = read(sessions, job_id)
    assert killed_at.status == "running"
    assert 50 <= killed_at.epoch < 300

    # The lease lapses; the next claim requeues the job as attempt 2 and resumes it.
    time.sleep(settings.lease_seconds + 0.2)
    assert Worker(settings=settings, sessions=sessions).run_once()

    job = read(sessions, job_id)
    assert (job.status, job.attempt, job.epoch) == ("succeeded", 2, 300)
    resumed = history(sessions, job_id)
    assert [row[0] for row in resumed[0]] == list(range(1, 301))
    assert resumed == reference
