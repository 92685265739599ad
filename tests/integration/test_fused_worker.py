"""A worker training queued jobs as one fused run: each member is still its own job (lease,
metrics, checkpoints, ending), and its losses are its solo run's to 1e-3 relative."""

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository_checkpoints
from service.db import transaction
from service.settings import Settings
from service.specs import JobSpec
from service.tables import Checkpoint, Job
from service.training.hooks import Resume
from service.training.loop import train
from service.worker.loop import Worker
from tests.factories import tiny_spec
from tests.jobs import queue_spec, read, wait_for
from tests.servers import start_service
from tests.solo import assert_like_solo, losses, solo_losses
from tests.unit.training.runs import CPU, RecordingHooks


def spec(**overrides: Any) -> dict[str, Any]:
    """tiny_spec with 12 epochs and a checkpoint every 2; overrides set the member's own."""
    return tiny_spec(epochs=12, checkpoint_every=2, batch_size=4) | overrides


def queue_group(sessions: sessionmaker[Session], settings: Settings) -> list[str]:
    return [
        queue_spec(sessions, settings, spec(seed=1)),
        queue_spec(sessions, settings, spec(seed=2, optimizer={"name": "adam", "lr": 0.05})),
        queue_spec(sessions, settings, spec(seed=3, epochs=5, name="short")),
    ]


def test_fusable_jobs_train_as_one_run_each_as_its_own_job(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    ids = queue_group(sessions, settings)
    other = queue_spec(sessions, settings, spec(batch_size=2))  # another kind: solo, later

    assert Worker(settings=settings, sessions=sessions).run_once()

    for job_id in ids:
        job = read(sessions, job_id)
        assert (job.status, job.device, job.error, job.stop_reason) == (
            "succeeded",
            "cpu (fused x3)",
            None,
            None,
        )
        assert job.lease_owner is None
        assert_like_solo(sessions, job_id)
        with transaction(sessions) as session:
            final = repository_checkpoints.find_checkpoint(session, job_id=job_id, ref="final")
        assert final is not None
        assert final.epoch == job.epochs
    assert read(sessions, other).status == "queued"
    assert Worker(settings=settings, sessions=sessions).run_once()
    assert read(sessions, other).device == "cpu"


@pytest.mark.parametrize("settings_overrides", [{"fuse_compile": True}])
def test_with_fuse_compile_members_train_compiled_each_like_its_solo_run(
    sessions: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.training.fused.loop")
    ids = queue_group(sessions, settings)
    assert Worker(settings=settings, sessions=sessions).run_once()
    assert "training 3 members fused on cpu, compiled" in caplog.text
    for job_id in ids:
        job = read(sessions, job_id)
        assert (job.status, job.device) == ("succeeded", "cpu (fused x3, compiled)")
        assert_like_solo(sessions, job_id)


@pytest.mark.parametrize("settings_overrides", [{"fuse_measure": True}])
def test_a_worker_fuses_as_many_as_it_measured_train_fastest(
    sessions: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.worker.fused")
    ids = queue_group(sessions, settings)
    worker = Worker(settings=settings, sessions=sessions)
    assert worker.run_once()
    [size] = worker.group_sizes.known.values()
    assert f"fused groups of Linear ReLU Linear: {size} (microseconds a member" in caplog.text
    trained = min(size, len(ids))
    statuses = [read(sessions, job_id).status for job_id in ids]
    assert statuses == ["succeeded"] * trained + ["queued"] * (len(ids) - trained)
    label = "cpu" if trained == 1 else f"cpu (fused x{trained})"
    assert read(sessions, ids[0]).device == label


@pytest.mark.parametrize("settings_overrides", [{"fuse_max_jobs": 1}])
def test_fuse_max_jobs_1_trains_every_job_solo(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    ids = queue_group(sessions, settings)
    assert Worker(settings=settings, sessions=sessions).run_once()
    assert [read(sessions, i).status for i in ids] == ["succeeded", "queued", "queued"]
    assert read(sessions, ids[0]).device == "cpu"


def test_a_diverging_member_fails_alone_naming_its_epoch(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    calm = queue_spec(sessions, settings, spec(optimizer={"name": "sgd", "lr": 0.1}))
    wild = queue_spec(sessions, settings, spec(optimizer={"name": "sgd", "lr": 1e38}, seed=5))
    assert Worker(settings=settings, sessions=sessions).run_once()
    failed = read(sessions, wild)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "at epoch 1;" in failed.error
    assert read(sessions, calm).status == "succeeded"
    assert_like_solo(sessions, calm)


def test_cancelling_one_member_leaves_the_others_training(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    long = {"epochs": 100_000, "checkpoint_every": 50}
    doomed = queue_spec(sessions, settings, spec(**long))
    kept = queue_spec(sessions, settings, spec(seed=2, epochs=1000, checkpoint_every=100))
    worker = Worker(settings=settings, sessions=sessions)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    wait_for(lambda: read(sessions, doomed).epoch >= 5)
    with transaction(sessions, immediate=True) as session:
        owner_id = read(sessions, doomed).owner_id
        jobs.cancel(session, job_id=doomed, owner_id=owner_id)
    wait_for(lambda: read(sessions, doomed).status == "cancelled")
    assert read(sessions, kept).status == "running"
    thread.join(timeout=120)
    assert read(sessions, kept).status == "succeeded"
    assert read(sessions, doomed).stop_reason is not None
    assert_like_solo(sessions, kept)


@pytest.mark.parametrize("settings_overrides", [{"lease_seconds": 1.5}])
def test_after_a_sigkill_every_member_resumes_with_metrics_stored_once(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    ids = [
        queue_spec(sessions, settings, spec(seed=s, epochs=600, checkpoint_every=50))
        for s in (1, 2, 3)
    ]
    doomed = start_service(settings, "worker", log_path=str(tmp_path / "doomed.log"))
    try:
        wait_for(lambda: all(read(sessions, i).epoch >= 100 for i in ids))
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        doomed.kill()
    assert all(read(sessions, i).status == "running" for i in ids)
    assert read(sessions, ids[0]).device == "cpu (fused x3)"
    time.sleep(settings.lease_seconds + 0.2)
    assert Worker(settings=settings, sessions=sessions).run_once()
    for job_id in ids:
        job = read(sessions, job_id)
        assert (job.status, job.attempt, job.epoch) == ("succeeded", 2, 600)
        assert_like_solo(sessions, job_id)


def test_a_solo_checkpoint_joins_a_fused_run(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    """A job stopped solo after 4 epochs (as a worker's shutdown leaves it), resumed fused."""
    first = queue_spec(sessions, settings, spec(seed=1))
    with transaction(sessions, immediate=True) as session:
        job = jobs.claim(session, lease_token="solo", device="cpu", settings=settings)
    assert job is not None
    hooks = RecordingHooks(stop_after=4)
    train(JobSpec.model_validate(job.spec), device=CPU, hooks=hooks)
    resume: Resume = hooks.resume_point()

    with transaction(sessions) as session:
        row = Checkpoint(
            job_id=first,
            epoch=resume.epoch,
            is_periodic=True,
            is_best=False,
            is_final=False,
            metric=None,
            sha256="0" * 64,
            size_bytes=len(resume.weights),
            weights=resume.weights,
            state=resume.state,
            created_at=jobs.now(),
        )
        repository_checkpoints.save_checkpoint(session, checkpoint=row, keep_periodic=3)
        jobs.release(session, job_id=first, lease_token="solo")
    second = queue_spec(sessions, settings, spec(seed=2))
    assert Worker(settings=settings, sessions=sessions).run_once()
    for job_id in (first, second):
        assert read(sessions, job_id).status == "succeeded"
        assert read(sessions, job_id).device == "cpu (fused x2)"
    stored = losses(sessions, first)
    assert [e for e, _ in stored] == list(range(5, 13))
    solo = solo_losses(sessions, first)[4:]
    torch.testing.assert_close([v for _, v in stored], [v for _, v in solo], rtol=1e-3, atol=0)


def test_the_members_writes_commit_together_from_one_thread(
    sessions: sessionmaker[Session], settings: Settings, engine: Engine
) -> None:
    """Each flush stores every member's epochs and renews every lease in one transaction: no
    member commits from a writing thread of its own."""
    ids = [queue_spec(sessions, settings, spec(seed=s, epochs=400)) for s in (1, 2, 3)]
    committers: list[str] = []

    def committed(_connection: object) -> None:
        committers.append(threading.current_thread().name)

    event.listen(engine, "commit", committed)
    try:
        assert Worker(settings=settings, sessions=sessions).run_once()
    finally:
        event.remove(engine, "commit", committed)
    for job_id in ids:
        assert read(sessions, job_id).status == "succeeded"
        assert [e for e, _ in losses(sessions, job_id)] == list(range(1, 401))
    assert not any(name.startswith("metrics-") and name != "metrics-fused" for name in committers)
    assert committers.count("metrics-fused") >= 2


def test_a_member_whose_lease_is_taken_stops_alone(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    taken = queue_spec(sessions, settings, spec(epochs=100_000, checkpoint_every=50))
    kept = queue_spec(sessions, settings, spec(seed=2, epochs=1000, checkpoint_every=100))
    thread = threading.Thread(target=Worker(settings=settings, sessions=sessions).run_once)
    thread.start()
    wait_for(lambda: read(sessions, taken).epoch >= 5)
    with transaction(sessions, immediate=True) as session:
        session.execute(update(Job).where(Job.id == taken).values(lease_owner="another-worker"))
    thread.join(timeout=120)
    # Abandoned to its new owner, untouched since; the other member trained to its end.
    stopped = read(sessions, taken)
    assert (stopped.status, stopped.lease_owner) == ("running", "another-worker")
    assert losses(sessions, taken)[-1][0] == stopped.epoch < 100_000
    assert read(sessions, kept).status == "succeeded"
    assert_like_solo(sessions, kept)
