"""The job state machine's table, and `transition` doing exactly what it allows."""

import itertools

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.db import transaction
from service.settings import Settings
from service.statuses import ACTIVE_STATUSES, FINAL_STATUSES, JobStatus
from service.tables import Job
from tests.jobs import queue, read

ALLOWED = {
    (JobStatus.QUEUED, JobStatus.RUNNING),
    (JobStatus.QUEUED, JobStatus.CANCELLED),
    (JobStatus.RUNNING, JobStatus.QUEUED),
    (JobStatus.RUNNING, JobStatus.SUCCEEDED),
    (JobStatus.RUNNING, JobStatus.FAILED),
    (JobStatus.RUNNING, JobStatus.CANCELLED),
    (JobStatus.RUNNING, JobStatus.PRUNED),
}
# What each target status needs from `transition` besides the two statuses.
NEEDS: dict[JobStatus, dict[str, str]] = {
    JobStatus.FAILED: {"error": "loss became nan at epoch 3"},
    JobStatus.CANCELLED: {"stop_reason": "cancelled at epoch 3"},
    JobStatus.PRUNED: {"stop_reason": "pruned by the sweep at epoch 3"},
}


def test_the_table_is_the_documented_one() -> None:
    table = {(start, end) for start, ends in jobs.TRANSITIONS.items() for end in ends}
    assert table == ALLOWED
    assert {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.PRUNED,
    } == FINAL_STATUSES
    assert {JobStatus.QUEUED, JobStatus.RUNNING} == ACTIVE_STATUSES
    assert not jobs.TRANSITIONS.keys() & FINAL_STATUSES  # pruned among them: nothing leaves


def test_the_claim_is_in_the_table() -> None:
    assert (jobs.CLAIM_FROM, jobs.CLAIM_TO) == (JobStatus.QUEUED, JobStatus.RUNNING)
    assert jobs.CLAIM_TO in jobs.TRANSITIONS[jobs.CLAIM_FROM]


def put_in(sessions: sessionmaker[Session], job_id: str, status: JobStatus) -> None:
    """Set a job's status directly, as the state machine never would, to start a case from."""
    lease = {"lease_owner": "w", "lease_expires_at": jobs.now()} if status == "running" else {}
    with transaction(sessions, immediate=True) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status, **lease))


def test_transition_makes_each_allowed_change_and_refuses_every_other(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    pairs = list(itertools.product(JobStatus, repeat=2))
    job_ids = queue(sessions, settings, count=len(pairs))
    # The claim is in the table but made only by claim(), under a lease.
    made_by_transition = ALLOWED - {(jobs.CLAIM_FROM, jobs.CLAIM_TO)}
    for (start, end), job_id in zip(pairs, job_ids, strict=True):
        put_in(sessions, job_id, start)
        values = NEEDS.get(end, {})
        with transaction(sessions, immediate=True) as session:
            if (start, end) in made_by_transition:
                assert jobs.transition(
                    session, job_id=job_id, from_status=start, to_status=end, **values
                ), (start, end)
            else:
                with pytest.raises(ValueError, match=r"no transition|only by claim"):
                    jobs.transition(
                        session, job_id=job_id, from_status=start, to_status=end, **values
                    )

        job = read(sessions, job_id)
        if (start, end) not in made_by_transition:
            assert job.status == start, (start, end)
            continue
        assert job.status == end
        assert (job.finished_at is not None) == (end in FINAL_STATUSES)
        assert job.error == values.get("error")
        # A failed job's error is also why it stopped.
        assert job.stop_reason == values.get("stop_reason", job.error)
        assert job.lease_owner is None


def test_a_moved_job_is_not_moved_again(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings)
    cancel = {"stop_reason": "cancelled before it started"}
    with transaction(sessions, immediate=True) as session:
        assert jobs.transition(
            session, job_id=job_id, from_status="queued", to_status="cancelled", **cancel
        )
        assert not jobs.transition(
            session, job_id=job_id, from_status="queued", to_status="cancelled", **cancel
        )


@pytest.mark.parametrize(
    ("end", "values", "message"),
    [
        (JobStatus.FAILED, {}, "a failed job needs its error"),
        (JobStatus.SUCCEEDED, {"error": "x"}, "only a failed job has an error"),
        (JobStatus.CANCELLED, {}, "a job cancelled needs its stop_reason"),
        (JobStatus.PRUNED, {}, "a job pruned needs its stop_reason"),
        (JobStatus.QUEUED, {"stop_reason": "x"}, "a stop_reason ends a job"),
        (JobStatus.SUCCEEDED, {"attempt": 2}, "only a requeue starts a new attempt"),
    ],
)
def test_values_that_do_not_fit_the_change_are_refused(
    sessions: sessionmaker[Session], settings: Settings, end: JobStatus, values: dict, message: str
) -> None:
    [job_id] = queue(sessions, settings)
    put_in(sessions, job_id, JobStatus.RUNNING)
    with transaction(sessions, immediate=True) as session, pytest.raises(ValueError, match=message):
        jobs.transition(session, job_id=job_id, from_status="running", to_status=end, **values)
    assert read(sessions, job_id).status == "running"
