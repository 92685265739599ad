"""A worker killed with SIGKILL mid-training: another resumes the job from its last checkpoint and
ends with per-epoch losses and weights bit-identical to an uninterrupted run."""

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import stochastic_spec
from tests.jobs import history, queue_spec, read, wait_for
from tests.servers import start_service


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
