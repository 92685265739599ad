"""The buffered write path: epochs stored in batches, each batch fenced, none lost or doubled."""

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service import repository, repository_checkpoints
from service.db import transaction
from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import stochastic_spec, tiny_spec
from tests.jobs import history, queue_spec, read, wait_for
from tests.servers import start_service

EPOCHS = 1000


def stored_past_last_checkpoint(sessions: sessionmaker[Session], job_id: str) -> bool:
    """Whether a flush that was not a checkpoint's stored epochs after the latest checkpoint."""
    with transaction(sessions) as session:
        latest = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="latest", with_blobs=False
        )
        epochs = [m.epoch for m in repository.list_metrics(session, job_id=job_id)]
    return latest is not None and bool(epochs) and epochs[-1] > latest.epoch


@pytest.mark.parametrize(
    "settings_overrides", [{"lease_seconds": 1.5, "metrics_flush_seconds": 0.1}]
)
def test_a_worker_killed_between_two_flushes_resumes_to_an_uninterrupted_runs_metrics(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    # Long enough that the kill below finds its moment well before the job ends.
    spec = stochastic_spec(epochs=EPOCHS, checkpoint_every=100)
    reference_id = queue_spec(sessions, settings, spec)
    Worker(settings=settings, sessions=sessions).run_once()
    reference = history(sessions, reference_id)

    job_id = queue_spec(sessions, settings, spec)
    doomed = start_service(settings, "worker", log_path=str(tmp_path / "doomed.log"))
    try:
        wait_for(lambda: read(sessions, job_id).epoch > 100, timeout=120)
        # Frozen, the worker's committed state holds still while the test reads it: kill it
        # only where epochs after the latest checkpoint were stored by a periodic flush.
        for _ in range(500):
            doomed.send_signal(signal.SIGSTOP)
            if stored_past_last_checkpoint(sessions, job_id):
                break
            doomed.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        doomed.kill()
    killed_at = read(sessions, job_id)
    with transaction(sessions) as session:
        stored = [m.epoch for m in repository.list_metrics(session, job_id=job_id)]
        latest = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="latest", with_blobs=False
        )
    assert latest is not None
    assert killed_at.status == "running"
    assert latest.epoch < killed_at.epoch < EPOCHS
    assert stored == list(range(1, killed_at.epoch + 1))

    # The lease lapses; the resume drops the epochs after the checkpoint and trains them again.
    time.sleep(settings.lease_seconds + 0.2)
    assert Worker(settings=settings, sessions=sessions).run_once()

    job = read(sessions, job_id)
    assert (job.status, job.attempt, job.epoch) == ("succeeded", 2, EPOCHS)
    resumed = history(sessions, job_id)
    assert [row[0] for row in resumed[0]] == list(range(1, EPOCHS + 1))
    assert resumed == reference


class StatementLog:
    """The statements the engine runs, by their first words, and each COMMIT."""

    def __init__(self, engine: Engine) -> None:
        self.entries: list[str] = []
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.entries.append(" ".join(statement.split()[:3]).upper())

    def _commit(self, _connection: Any) -> None:
        self.entries.append("COMMIT")

    def transactions(self) -> list[list[str]]:
        """The statements of each committed transaction, in order."""
        found: list[list[str]] = [[]]
        for entry in self.entries:
            if entry == "COMMIT":
                found.append([])
            elif not entry.startswith(("BEGIN", "SELECT 1")):
                found[-1].append(entry)
        return [statements for statements in found[:-1] if statements]


@pytest.mark.parametrize(
    "settings_overrides", [{"lease_seconds": 600.0, "metrics_flush_seconds": 200.0}]
)
def test_the_claim_reads_the_resume_point_and_epochs_go_with_the_checkpoints(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # A flush interval longer than the job: only the checkpoints' writes store epochs. The claim
    # reads where the job resumes from. The writer's thread stores checkpoints while training
    # goes on, taking along any queued behind; the final one is left for the write of how the
    # job ended unless a write of the thread takes it first. Four writes at most after the
    # claim, where a resume read, a prepare write, three checkpoint writes and the end were six.
    job_id = queue_spec(sessions, settings, tiny_spec(epochs=60, checkpoint_every=20))
    statements = StatementLog(engine)

    assert Worker(settings=settings, sessions=sessions).run_once()

    claim, *writes = statements.transactions()
    assert "UPDATE JOBS SET" in claim
    assert any(statement.startswith("SELECT CHECKPOINTS.") for statement in claim)
    assert 2 <= len(writes) <= 4
    assert sum(write.count("INSERT INTO CHECKPOINTS") for write in writes) == 3
    assert 1 <= sum(write.count("INSERT INTO EPOCH_METRICS") for write in writes) <= 3
    job = read(sessions, job_id)
    assert (job.status, job.epoch) == ("succeeded", 60)
    with transaction(sessions) as session:
        epochs = [m.epoch for m in repository.list_metrics(session, job_id=job_id)]
        final = repository_checkpoints.find_checkpoint(
            session, job_id=job_id, ref="final", with_blobs=False
        )
    assert epochs == list(range(1, 61))
    assert final is not None
    assert final.epoch == 60


@pytest.mark.parametrize("settings_overrides", [{"metrics_flush_seconds": 0.1}])
def test_an_epoch_is_visible_over_http_while_the_next_one_trains(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # Two long epochs and one checkpoint, after the last: nothing but the background flush
    # can store epoch 1 before epoch 2 has ended.
    spec = stochastic_spec(
        dataset={"kind": "sum_bins", "samples": 40_000, "features": 16},
        batch_size=4,
        epochs=2,
        checkpoint_every=2,
    )
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202
    job_id = response.json()["id"]
    worker = threading.Thread(target=Worker(settings=settings, sessions=sessions).run_once)
    worker.start()
    try:
        first: list[int] = []
        while not first:
            first = [e["epoch"] for e in client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]
            time.sleep(0.02)
        # Epoch 2 would have come in the same transaction as the final checkpoint.
        assert first == [1]
    finally:
        worker.join(timeout=300)
    final = client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    assert [e["epoch"] for e in final] == [1, 2]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
