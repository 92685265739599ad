"""A worker that lost its lease writes nothing: metrics, checkpoints, status, lease renewals."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository, repository_checkpoints
from service.db import transaction
from service.errors import LeaseLost
from service.settings import Settings
from service.statuses import JobStatus
from service.tables import Job
from service.training.hooks import EpochResult, Snapshot, StopKind, StopReason
from tests.jobs import claim, claimed, hooks_for, queue, read

METRICS = EpochResult(
    epoch=1, loss=0.5, accuracy=0.75, val_loss=None, val_accuracy=None, lr=0.01, seconds=0.1
)
CHECKPOINT = Snapshot(epoch=1, kinds=frozenset({"periodic"}), metric=0.5, weights=b"w", state=b"s")


def expire_lease(sessions: sessionmaker[Session], job_id: str) -> None:
    with transaction(sessions, immediate=True) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=jobs.now() - timedelta(seconds=1))
        )


def test_a_worker_whose_lease_was_taken_over_writes_nothing(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings)
    stale = hooks_for(sessions, settings, claimed(sessions, settings, token="first"))
    expire_lease(sessions, job_id)
    current = claimed(sessions, settings, token="second")  # requeued as attempt 2, then claimed
    assert (current.id, current.attempt, current.lease_owner) == (job_id, 2, "second")

    stale.on_epoch(METRICS)  # pending: epochs are stored by the next write
    with pytest.raises(LeaseLost):
        stale.flush()
    with pytest.raises(LeaseLost):
        stale.on_checkpoint(CHECKPOINT)
    assert stale.should_stop(epoch=1) == StopReason(
        kind=StopKind.LEASE_LOST, detail="lease first lost after epoch 1"
    )
    with transaction(sessions, immediate=True) as session:
        assert not jobs.finish(
            session, job_id=job_id, lease_token="first", status=JobStatus.SUCCEEDED
        )

    with transaction(sessions) as session:
        assert repository.list_metrics(session, job_id=job_id) == []
        assert repository_checkpoints.list_checkpoints(session, job_id=job_id) == []
    job = read(sessions, job_id)
    assert (job.status, job.lease_owner, job.epoch) == ("running", "second", 0)

    fresh = hooks_for(sessions, settings, current)
    fresh.on_epoch(METRICS)
    fresh.flush()
    assert read(sessions, job_id).epoch == 1


def test_past_max_attempts_an_expired_job_fails_with_the_reason(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings)
    for attempt in range(1, settings.max_attempts + 1):
        job = claimed(sessions, settings, token=f"worker-{attempt}")
        assert job.attempt == attempt
        expire_lease(sessions, job_id)

    assert claim(sessions, settings, token="late") is None

    job = read(sessions, job_id)
    assert job.status == "failed"
    assert job.error == (
        f"the worker stopped renewing its lease on attempt {settings.max_attempts} of "
        f"{settings.max_attempts} (SERVICE_MAX_ATTEMPTS); last epoch stored: 0"
    )
    assert job.stop_reason == job.error


def test_an_expired_job_asked_to_cancel_is_cancelled_at_its_last_stored_epoch(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings)
    job = claimed(sessions, settings, token="gone")
    hooks = hooks_for(sessions, settings, job)
    hooks.on_epoch(METRICS)
    hooks.flush()
    with transaction(sessions, immediate=True) as session:
        jobs.cancel(session, job_id=job_id, owner_id=job.owner_id)
    expire_lease(sessions, job_id)

    assert claim(sessions, settings, token="next") is None

    job = read(sessions, job_id)
    assert (job.status, job.stop_reason, job.lease_owner) == (
        "cancelled",
        "cancelled at epoch 1",
        None,
    )
