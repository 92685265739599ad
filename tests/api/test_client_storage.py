"""`service export | delete | usage`, run as subprocesses against a real server."""

from pathlib import Path

import httpx
import numpy as np
import onnxruntime
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.api.test_client import cli
from tests.predictions import POINTS, predict, train


@pytest.fixture(autouse=True)
def _sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the client speaks HTTP only: run once, on SQLite")


def test_export_writes_an_onnx_file_usage_lists_and_delete_deletes(
    client: httpx.Client,
    server: str,
    api_key: str,
    sessions: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    job = train(client, sessions, settings)
    target = tmp_path / "tiny.onnx"
    expected = predict(client, job, inputs=POINTS)["predictions"]

    exported = cli("export", job["id"], "-o", str(target), server=server, key=api_key)
    usage = cli("usage", server=server, key=api_key)
    deleted = cli("delete", job["id"], server=server, key=api_key)
    again = cli("delete", job["id"], server=server, key=api_key)
    no_dataset = cli("delete", "--dataset", "nope", server=server, key=api_key)

    assert exported.returncode == 0, exported.stderr
    assert f"wrote {target}" in exported.stdout
    assert "checkpoint epoch 3 (best)" in exported.stdout
    session = onnxruntime.InferenceSession(target.read_bytes())
    (logits,) = session.run(["outputs"], {"inputs": np.asarray(POINTS, dtype=np.float32)})
    assert logits.argmax(axis=1).tolist() == expected
    assert usage.returncode == 0, usage.stderr
    assert "(no limit)" in usage.stdout.splitlines()[0]
    assert f"job {job['id']}" in usage.stdout
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"job {job['id']} deleted\n"
    assert again.returncode == 3
    assert "404 NotFound" in again.stderr
    assert no_dataset.returncode == 3
    assert "dataset 'nope' does not exist" in no_dataset.stderr
