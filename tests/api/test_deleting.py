"""DELETE /v1/jobs/{id} and /v1/datasets/{id}: what goes, what stays, and the bytes given back."""

import io
import os
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from service.tables import Checkpoint, EpochMetric, Job
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.factories import stochastic_spec, tiny_spec, uploaded_spec
from tests.jobs import read, wait_for
from tests.predictions import POINTS, predict, train
from tests.servers import serve_in_thread

CSV = b"a,b,target\n0.0,0.1,0\n0.2,0.1,0\n0.9,1.0,1\n1.0,0.8,1\n0.1,0.3,0\n0.8,0.9,1\n"


def rows_of(sessions: sessionmaker[Session], job_id: str) -> tuple[int, int, int]:
    """(job rows, metric rows, checkpoint rows) stored for the job id."""
    with transaction(sessions) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table).where(column == job_id))
            for table, column in (
                (Job, Job.id),
                (EpochMetric, EpochMetric.job_id),
                (Checkpoint, Checkpoint.job_id),
            )
        )


def other_client(server: str, sessions: sessionmaker[Session]) -> httpx.Client:
    key = create_api_key(sessions, name="someone-else")
    return httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_finished_job_goes_with_its_metrics_and_checkpoints(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)
    kept = train(client, sessions, settings)
    assert rows_of(sessions, job["id"]) == (1, 3, 3)
    predict(client, job, inputs=POINTS)  # cached in the api process: forgotten on delete

    response = client.delete(f"/v1/jobs/{job['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert rows_of(sessions, job["id"]) == (0, 0, 0)
    for path in ("", "/checkpoints", "/export"):
        assert client.get(f"/v1/jobs/{job['id']}{path}").status_code == 404
    gone = client.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": POINTS})
    assert gone.status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert rows_of(sessions, kept["id"]) == (1, 3, 3)
    assert [listed["id"] for listed in client.get("/v1/jobs").json()["jobs"]] == [kept["id"]]


def test_a_queued_job_is_deleted_before_any_worker_takes_it(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = client.post("/v1/jobs", json=tiny_spec()).json()

    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204

    assert rows_of(sessions, job["id"]) == (0, 0, 0)
    assert not Worker(settings=settings, sessions=sessions).run_once()


def test_a_running_job_stops_and_its_worker_writes_nothing_more(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = client.post("/v1/jobs", json=stochastic_spec(epochs=100_000)).json()
    worker = Worker(settings=settings, sessions=sessions)
    running = threading.Thread(target=worker.run_once)
    running.start()
    wait_for(lambda: read(sessions, job["id"]).epoch >= 2)

    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204

    # The worker's next fenced write finds no lease: it abandons the job, writing nothing.
    running.join(timeout=120)
    assert not running.is_alive()
    assert rows_of(sessions, job["id"]) == (0, 0, 0)
    # And it goes on with the queue.
    assert train(client, sessions, settings)["status"] == "succeeded"


def test_another_keys_job_and_dataset_are_not_found_and_stay(
    client: httpx.Client, server: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)
    dataset = client.post("/v1/datasets", files={"file": ("a.csv", CSV)}).json()

    with other_client(server, sessions) as other:
        assert other.delete(f"/v1/jobs/{job['id']}").status_code == 404
        assert other.delete(f"/v1/datasets/{dataset['id']}").status_code == 404

    assert rows_of(sessions, job["id"]) == (1, 3, 3)
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_a_dataset_a_queued_job_needs_is_kept_until_the_job_has_trained(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    dataset = client.post("/v1/datasets", files={"file": ("a.csv", CSV)}).json()
    job = client.post("/v1/jobs", json=uploaded_spec(dataset["id"])).json()

    refused = client.delete(f"/v1/datasets/{dataset['id']}")

    assert refused.status_code == 409
    assert job["id"] in refused.json()["detail"]
    assert "queued or running" in refused.json()["detail"]
    assert Worker(settings=settings, sessions=sessions).run_once()
    before = predict(client, job, inputs=POINTS)

    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204

    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    # The job trained on it keeps predicting: its spec records the dataset's shapes.
    assert predict(client, job, inputs=POINTS) == before
    assert client.get(f"/v1/jobs/{job['id']}/export").status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}/plots/curves.png").status_code == 200
    # The plot of its samples needs them.
    assert client.get(f"/v1/jobs/{job['id']}/plots/data.png").status_code == 409
    unknown = client.post("/v1/jobs", json=uploaded_spec(dataset["id"]))
    assert unknown.status_code == 422


@pytest.mark.parametrize("settings_overrides", [{"key_cache_seconds": 0}])
def test_another_api_process_stops_answering_for_a_deleted_job(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)
    with serve_in_thread(settings) as other:
        path = f"{other}/v1/jobs/{job['id']}/predict"
        # Twice: the second answer comes from that process's caches.
        for _ in range(2):
            answer = httpx.post(path, json={"inputs": POINTS}, headers=client.headers)
            assert answer.status_code == 200

        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204

        gone = httpx.post(path, json={"inputs": POINTS}, headers=client.headers)
        assert gone.status_code == 404


def npz_of_bytes(size: int) -> bytes:
    """An NPZ upload whose arrays hold about `size` bytes of random float32 (incompressible)."""
    x = np.random.default_rng(0).random((size // 64, 16), dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=np.arange(len(x)) % 2)
    return buffer.getvalue()


def database_bytes(settings: Settings) -> int:
    """The SQLite file and its write-ahead log together."""
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    wal = Path(f"{path}-wal")
    return os.path.getsize(path) + (os.path.getsize(wal) if wal.exists() else 0)


def test_deleting_a_large_dataset_shrinks_the_sqlite_file(
    client: httpx.Client, settings: Settings, backend: str
) -> None:
    if backend != "sqlite":
        return  # PostgreSQL's autovacuum makes the space reusable; nothing to measure here
    size = 20 * 1024 * 1024
    dataset = client.post("/v1/datasets", files={"file": ("big.npz", npz_of_bytes(size))}).json()
    grown = database_bytes(settings)
    assert grown > size

    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204

    # The file by the dataset's pages, and the write-ahead log that held them too.
    assert database_bytes(settings) < size // 10
