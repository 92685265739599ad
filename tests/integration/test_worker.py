"""A real worker training real (tiny) jobs against the database."""

import signal
import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository, repository_checkpoints
from service.db import transaction
from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import diverging_spec
from tests.jobs import queue, queue_spec, read, wait_for
from tests.servers import start_service


def test_worker_trains_a_job_to_success(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings)

    assert Worker(settings=settings, sessions=sessions).run_once() is True

    job = read(sessions, job_id)
    assert (job.status, job.epoch, job.attempt, job.device, job.error, job.stop_reason) == (
        "succeeded",
        3,
        1,
        "cpu",
        None,
        None,
    )
    assert job.lease_owner is None
    with transaction(sessions) as session:
        metrics = repository.list_metrics(session, job_id=job_id)
        checkpoints = repository_checkpoints.list_checkpoints(session, job_id=job_id)
    assert [m.epoch for m in metrics] == [1, 2, 3]
    assert all(m.accuracy is not None and 0 <= m.accuracy <= 1 for m in metrics)
    assert checkpoints[-1].epoch == 3
    assert checkpoints[-1].is_final


@pytest.mark.parametrize("settings_overrides", [{"checkpoint_seconds": 3600.0}])
def test_the_workers_checkpoint_pace_leaves_a_short_job_its_final_checkpoint(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings, checkpoint_every=None)  # the default: every epoch of 3

    assert Worker(settings=settings, sessions=sessions).run_once() is True

    with transaction(sessions) as session:
        checkpoints = repository_checkpoints.list_checkpoints(session, job_id=job_id)
        metrics = repository.list_metrics(session, job_id=job_id)
    assert [(c.epoch, c.is_periodic, c.is_final) for c in checkpoints] == [(3, False, True)]
    assert [m.epoch for m in metrics] == [1, 2, 3]


def test_empty_queue_runs_nothing(sessions: sessionmaker[Session], settings: Settings) -> None:
    assert Worker(settings=settings, sessions=sessions).run_once() is False


def test_diverging_job_fails_naming_the_epoch(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    job_id = queue_spec(sessions, settings, diverging_spec())

    Worker(settings=settings, sessions=sessions).run_once()

    job = read(sessions, job_id)
    assert job.status == "failed"
    assert job.error is not None
    assert "epoch" in job.error
    with transaction(sessions) as session:
        stored = repository_checkpoints.find_checkpoint(session, job_id=job_id, ref="latest")
    assert stored is None or stored.epoch < job.epoch + 1


def test_cancel_stops_a_running_job_at_an_epoch_boundary(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings, epochs=100_000, checkpoint_every=5)
    worker = Worker(settings=settings, sessions=sessions)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    wait_for(lambda: read(sessions, job_id).epoch >= 5)

    with transaction(sessions, immediate=True) as session:
        owner_id = read(sessions, job_id).owner_id
        assert jobs.cancel(session, job_id=job_id, owner_id=owner_id).cancel_requested
    thread.join(timeout=60)

    job = read(sessions, job_id)
    assert job.status == "cancelled"
    assert 5 <= job.epoch < 100_000
    assert job.stop_reason == f"cancelled at epoch {job.epoch}"
    with transaction(sessions) as session:
        latest = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="latest", with_blobs=False
        )
    assert latest is not None
    assert latest.epoch == job.epoch


def test_sigterm_finishes_the_epoch_checkpoints_and_requeues(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    [job_id] = queue(sessions, settings, epochs=100_000, checkpoint_every=1000)
    worker = start_service(settings, "worker", log_path=str(tmp_path / "worker.log"))
    try:
        wait_for(lambda: read(sessions, job_id).epoch >= 3)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()

    job = read(sessions, job_id)
    # Handed back, not ended: nothing says why it stopped.
    assert (job.status, job.attempt, job.lease_owner, job.stop_reason) == ("queued", 1, None, None)
    with transaction(sessions) as session:
        latest = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="latest", with_blobs=False
        )
    assert latest is not None
    assert latest.epoch == job.epoch >= 3


# Solo claims: fused, one worker may take all 50 tiny jobs in two claims of up to 32 and leave
# the other none to race for (test_fused_worker.py covers the partners' claims).
@pytest.mark.parametrize(
    "settings_overrides", [{"max_active_jobs_per_key": 100, "fuse_max_jobs": 1}]
)
def test_two_workers_racing_run_each_of_50_jobs_exactly_once(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [start_service(settings, "worker", log_path=str(log)) for log in logs]
    try:
        # Both must be polling before the jobs appear, or one could drain the queue alone.
        wait_for(lambda: all(log.exists() and "polling" in log.read_text() for log in logs))
        job_ids = queue(sessions, settings, count=50, epochs=1)
        wait_for(lambda: all(read(sessions, j).status == "succeeded" for j in job_ids), timeout=240)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)

    claimed = [
        [
            line.split("job ")[1].split(" ")[0]
            for line in log.read_text().splitlines()
            if " claimed " in line
        ]
        for log in logs
    ]
    assert sorted(claimed[0] + claimed[1]) == sorted(job_ids)
    assert claimed[0], "worker 0 ran no job: there was no race"
    assert claimed[1], "worker 1 ran no job: there was no race"
    assert all(read(sessions, j).attempt == 1 for j in job_ids)


@pytest.mark.parametrize("settings_overrides", [{"max_job_seconds": 1.0}])
def test_a_job_past_its_wall_clock_limit_fails_keeping_its_checkpoint(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings, epochs=1_000_000, checkpoint_every=100_000)

    Worker(settings=settings, sessions=sessions).run_once()

    job = read(sessions, job_id)
    assert job.status == "failed"
    reason = f"ran past 1 s (SERVICE_MAX_JOB_SECONDS) at epoch {job.epoch}"
    assert (job.error, job.stop_reason) == (reason, reason)
    with transaction(sessions) as session:
        latest = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="latest", with_blobs=False
        )
    assert latest is not None
    assert latest.epoch == job.epoch
