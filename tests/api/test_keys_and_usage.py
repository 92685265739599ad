"""API keys listed and revoked (`service keys list | revoke`), GET /v1/usage and the per-key
storage limit."""

import io
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service import admin
from service.db import transaction
from service.keys import hash_key
from service.settings import Settings
from service.tables import Checkpoint, Dataset, Sweep
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.factories import tiny_spec, uploaded_spec
from tests.jobs import read
from tests.predictions import train
from tests.servers import service_env
from tests.sweeps import activation_sweep

CSV = b"a,b,target\n0.0,0.1,0\n0.2,0.1,0\n0.9,1.0,1\n1.0,0.8,1\n0.1,0.3,0\n0.8,0.9,1\n"


def service(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m service.cli ARGS` on the test's database."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("settings_overrides", [{"key_cache_seconds": 0}])
def test_a_revoked_key_is_refused_and_its_jobs_stay(
    client: httpx.Client, api_key: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)
    out = io.StringIO()

    assert admin.revoke_key(settings, name="tests", out=out) == 0

    assert "revoked 1 key(s) named 'tests'" in out.getvalue()
    refused = client.get("/v1/jobs")
    assert refused.status_code == 401
    assert "was revoked" in refused.json()["detail"]
    predict = client.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [[0.0, 0.1]]})
    assert predict.status_code == 401
    assert read(sessions, job["id"]).status == "succeeded"


def test_a_revoked_key_is_refused_once_its_cached_lookup_expires(
    client: httpx.Client, settings: Settings
) -> None:
    # The api trusts a key it looked up for SERVICE_KEY_CACHE_SECONDS (60 here): within that
    # the cached key still answers, and a new api process (no cache) refuses it at once.
    assert client.get("/v1/jobs").status_code == 200
    admin.revoke_key(settings, name="tests", out=io.StringIO())

    assert client.get("/v1/jobs").status_code == 200
    from tests.servers import serve_in_thread

    with serve_in_thread(settings) as fresh:
        response = httpx.get(f"{fresh}/v1/jobs", headers=client.headers)
    assert response.status_code == 401


def test_keys_list_shows_names_and_times_never_the_key(
    client: httpx.Client, api_key: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    unused = create_api_key(sessions, name="never-used")
    assert client.get("/v1/jobs").status_code == 200

    listed = service(settings, "keys", "list")

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "LAST", "USED", "REVOKED"]
    used_line = next(line for line in lines if line.startswith("tests "))
    unused_line = next(line for line in lines if line.startswith("never-used "))
    assert used_line.split()[3:5] != ["-"]  # a last use, as a date and a time
    assert unused_line.split()[3:] == ["-", "-"]
    for secret in (api_key, unused, hash_key(api_key), hash_key(unused)):
        assert secret not in listed.stdout


def test_revoking_an_unknown_name_says_so(settings: Settings, engine: object) -> None:
    revoked = service(settings, "keys", "revoke", "nobody")

    assert revoked.returncode == 3
    assert "no API key is named 'nobody'" in revoked.stderr


def test_usage_lists_jobs_and_datasets_with_the_bytes_they_store(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    dataset = client.post("/v1/datasets", files={"file": ("a.csv", CSV)}).json()
    job = train(client, sessions, settings)

    usage = client.get("/v1/usage")

    assert usage.status_code == 200
    body = usage.json()
    with transaction(sessions) as session:
        checkpoint_bytes = session.scalar(
            select(func.sum(func.length(Checkpoint.weights) + func.length(Checkpoint.state)))
        )
        dataset_bytes = session.scalar(select(func.length(Dataset.data)))
    assert body["jobs"] == [
        {
            "id": job["id"],
            "name": "tiny",
            "status": "succeeded",
            "checkpoints": 3,
            "bytes": checkpoint_bytes,
        }
    ]
    assert body["datasets"] == [{"id": dataset["id"], "filename": "a.csv", "bytes": dataset_bytes}]
    assert body["bytes"] == checkpoint_bytes + dataset_bytes
    assert body["limit_bytes"] is None


@pytest.mark.parametrize("settings_overrides", [{"max_storage_bytes_per_key": 2000}])
def test_the_storage_limit_refuses_what_would_pass_it_and_says_what_to_delete(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    first = client.post("/v1/datasets", files={"file": ("a.csv", CSV)})
    assert first.status_code == 201
    big = CSV + b"".join(b"0.5,0.5,1\n" for _ in range(100))

    refused = client.post("/v1/datasets", files={"file": ("big.csv", big)})

    assert refused.status_code == 413
    assert refused.json()["error"] == "StorageQuotaExceeded"
    detail = refused.json()["detail"]
    assert "SERVICE_MAX_STORAGE_BYTES_PER_KEY" in detail
    assert "GET /v1/usage" in detail
    assert "DELETE /v1/datasets/{id}" in detail
    # 8 x 100 + 100 float32 weights of a wider network: 3,600 bytes, more than is left.
    wide = {
        "layers": [{"type": "Linear", "out_features": 100}, {"type": "Linear", "out_features": 2}]
    }
    assert client.post("/v1/jobs", json=tiny_spec(model=wide)).status_code == 413
    # Deleting the dataset makes room again.
    assert client.delete(f"/v1/datasets/{first.json()['id']}").status_code == 204
    assert client.post("/v1/datasets", files={"file": ("big.csv", big)}).status_code == 201
    assert client.get("/v1/usage").json()["limit_bytes"] == 2000


def test_deleting_by_key_name_takes_every_job_sweep_and_dataset_of_that_key(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    dataset = client.post("/v1/datasets", files={"file": ("a.csv", CSV)}).json()
    job = client.post("/v1/jobs", json=uploaded_spec(dataset["id"])).json()
    assert Worker(settings=settings, sessions=sessions).run_once()
    # A running sweep with two queued trials, each a job of the key.
    sweep = client.post("/v1/sweeps", json=activation_sweep(parallel=2)).json()

    deleted = service(settings, "delete", "--key-name", "tests")

    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 3 job(s), 1 sweep(s) and 1 dataset(s)" in deleted.stdout
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Sweep)) == 0
    # No trial was created in a deleted one's place.
    assert client.get("/v1/jobs").json()["jobs"] == []
    assert client.get("/v1/usage").json() == {
        "bytes": 0,
        "limit_bytes": None,
        "jobs": [],
        "datasets": [],
    }
