"""A worker frozen with SIGSTOP past its lease, then thawed, writes nothing and abandons the job."""

import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.db import transaction
from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import stochastic_spec
from tests.jobs import queue_spec, read, wait_for
from tests.servers import start_service


def job_row_is_free(sessions: sessionmaker[Session], job_id: str) -> bool:
    """Whether a writer could lock the job now, i.e. the frozen worker is not mid-transaction."""
    try:
        with transaction(sessions) as session:
            if session.get_bind().dialect.name == "sqlite":
                session.execute(text("PRAGMA busy_timeout=50"))
                session.execute(
                    text("UPDATE jobs SET epoch = epoch WHERE id = :id"), {"id": job_id}
                )
            else:
                session.execute(text("SET LOCAL lock_timeout = '50ms'"))
                session.execute(
                    text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": job_id}
                )
            session.rollback()
        return True
    except OperationalError:
        return False


def freeze_outside_a_transaction(process, sessions, job_id) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        process.send_signal(signal.SIGSTOP)
        if job_row_is_free(sessions, job_id):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the worker always held a lock when frozen")


@pytest.mark.parametrize("settings_overrides", [{"lease_seconds": 1.5}])
def test_a_thawed_worker_whose_lease_lapsed_writes_nothing(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    job_id = queue_spec(sessions, settings, stochastic_spec(epochs=100_000, checkpoint_every=5))
    log = tmp_path / "frozen.log"
    frozen = start_service(settings, "worker", log_path=str(log))
    try:
        wait_for(lambda: read(sessions, job_id).epoch >= 6)
        freeze_outside_a_transaction(frozen, sessions, job_id)
        first_owner = read(sessions, job_id).lease_owner
        time.sleep(settings.lease_seconds + 0.3)

        # Another worker requeues the lapsed job as attempt 2 and resumes it.
        taker = Worker(settings=settings, sessions=sessions)
        thread = threading.Thread(target=taker.run_once)
        thread.start()
        wait_for(lambda: (job := read(sessions, job_id)).attempt == 2 and job.epoch >= 20)
        second_owner = read(sessions, job_id).lease_owner
        assert second_owner is not None
        assert second_owner != first_owner

        frozen.send_signal(signal.SIGCONT)
        wait_for(lambda: "abandoned" in log.read_text(), timeout=30)
        assert read(sessions, job_id).lease_owner == second_owner

        with transaction(sessions, immediate=True) as session:
            jobs.cancel(session, job_id=job_id, owner_id=read(sessions, job_id).owner_id)
        thread.join(timeout=60)
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.send_signal(signal.SIGTERM)
        frozen.wait(timeout=60)

    job = read(sessions, job_id)
    assert (job.status, job.attempt) == ("cancelled", 2)
    with transaction(sessions) as session:
        epochs = [m.epoch for m in repository.list_metrics(session, job_id=job_id)]
    assert epochs == list(range(1, job.epoch + 1))
    assert "Traceback" not in log.read_text()
