"""The `service` client commands, run as subprocesses against a real server and worker."""

import csv
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import diverging_spec, early_stopping_spec, tiny_spec
from tests.jobs import wait_for

FAST_EVENTS = {"events_poll_seconds": 0.05}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return dict(FAST_EVENTS)


@pytest.fixture(autouse=True)
def _sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the client speaks HTTP only: run once, on SQLite")


@pytest.fixture
def worker(sessions: sessionmaker[Session], settings: Settings) -> Iterator[None]:
    """A real worker polling the queue in a thread for the length of the test."""
    running = Worker(settings=settings, sessions=sessions)
    thread = threading.Thread(target=running.run_forever)
    thread.start()
    yield
    running.shutdown.set()
    thread.join(timeout=60)


def cli(
    *args: str, server: str, key: str | None, data_dir: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m service.cli ARGS --url SERVER`, the key in SERVICE_API_KEY when given."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    if key is not None:
        env["SERVICE_API_KEY"] = key
    if data_dir is not None:
        env["SERVICE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args, "--url", server],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


@pytest.mark.usefixtures("worker")
def test_submit_follow_shows_progress_and_exits_0_when_the_job_succeeds(
    server: str, api_key: str, tmp_path: Path
) -> None:
    done = cli(
        "submit", write_spec(tmp_path, tiny_spec(epochs=30)), "--follow", server=server, key=api_key
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    job_id = lines[0].split()[1]
    assert lines[0] == f"job {job_id} queued: tiny, 30 epochs, 22 parameters"
    assert any(
        line.startswith("epoch 30/30 [########################] 100%  loss ")
        and "acc " in line
        and "ETA 0:00:00" in line
        for line in lines
    ), done.stdout
    assert lines[-1].startswith(f"job {job_id} succeeded at epoch 30/30: loss ")


@pytest.mark.usefixtures("worker")
def test_a_job_that_stops_early_says_why_when_followed_and_shown(
    server: str, api_key: str, tmp_path: Path
) -> None:
    done = cli(
        "submit",
        write_spec(tmp_path, early_stopping_spec()),
        "--follow",
        server=server,
        key=api_key,
    )
    job_id = done.stdout.split()[1]
    shown = cli("show", job_id, server=server, key=api_key)

    assert done.returncode == 0, done.stderr
    reason = "early stopping: val_loss did not improve for 3 epochs (best 0.8892 at epoch 4)"
    *_, summary, stopped = done.stdout.splitlines()
    assert summary.startswith(f"job {job_id} succeeded at epoch 7/30: loss ")
    assert stopped == f"stopped: {reason}"
    assert "status     succeeded\n" in shown.stdout
    assert "progress   epoch 7/30, attempt 1\n" in shown.stdout
    assert f"stopped    {reason}\n" in shown.stdout


@pytest.mark.usefixtures("worker")
def test_submit_follow_exits_1_with_the_reason_when_the_job_fails(
    server: str, api_key: str, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, diverging_spec())

    done = cli("submit", spec, "--follow", server=server, key=api_key)

    assert done.returncode == 1, done.stdout + done.stderr
    assert " failed at epoch " in done.stdout
    assert "error: loss became" in done.stdout


def test_jobs_show_metrics_predict_and_cancel(
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    trained = client.post("/v1/jobs", json=tiny_spec(name="trained")).json()["id"]
    assert Worker(settings=settings, sessions=sessions).run_once()
    queued = cli("submit", "-", server=server, key=api_key, stdin=json.dumps(tiny_spec()))
    queued_id = queued.stdout.split()[1]

    listing = cli("jobs", server=server, key=api_key)
    named = cli("jobs", "--name", "TRAIN", server=server, key=api_key)
    shown = cli("show", trained, server=server, key=api_key)
    table = cli("metrics", trained, server=server, key=api_key)
    as_csv = cli("metrics", trained, "--csv", server=server, key=api_key)
    cancelled = cli("cancel", queued_id, server=server, key=api_key)

    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "EPOCH", "LOSS", "ACCURACY", "CREATED"]
    assert [row.split()[:4] for row in rows] == [
        [queued_id, "tiny", "queued", "0/3"],
        [trained, "trained", "succeeded", "3/3"],
    ]
    assert [row.split()[0] for row in named.stdout.splitlines()[1:]] == [trained]
    assert "status     succeeded" in shown.stdout
    assert "progress   epoch 3/3, attempt 1" in shown.stdout
    job = client.get(f"/v1/jobs/{trained}").json()
    for line in (
        "task       classification, loss cross_entropy",
        "dataset    inline, 8 samples",
        "validation none",
        "layers     Linear(in_features=2, out_features=4, bias=true) -> ReLU -> "
        "Linear(in_features=4, out_features=2, bias=true)",
        "optimizer  adam (lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=false)",
        "batch size the whole training split",
        "seed       7",
        "checkpoint every 1 epochs, seconds apart (default), best by loss",
        f"queued     {job['created_at']}",
        f"started    {job['started_at']}",
        f"finished   {job['finished_at']}",
    ):
        assert line in shown.stdout.splitlines(), (line, shown.stdout)
    assert any(line.startswith("duration   0:00:0") for line in shown.stdout.splitlines())
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["EPOCH", "1", "2", "3"]
    api_csv = client.get(f"/v1/jobs/{trained}/metrics", headers={"Accept": "text/csv"}).text
    assert as_csv.stdout == api_csv
    assert len(list(csv.reader(io.StringIO(as_csv.stdout)))) == 4
    assert cancelled.stdout == f"job {queued_id} cancelled\n"

    inputs = [[0.0, 0.1], [0.9, 1.0]]
    expected = client.post(f"/v1/jobs/{trained}/predict", json={"inputs": inputs}).json()
    from_json = cli("predict", trained, "--inputs", json.dumps(inputs), server=server, key=api_key)
    npy = tmp_path / "inputs.npy"
    np.save(npy, np.array(inputs, dtype=np.float32))
    from_npy = cli("predict", trained, "--npy", str(npy), server=server, key=api_key)
    assert json.loads(from_json.stdout) == expected
    assert json.loads(from_npy.stdout)["predictions"] == expected["predictions"]


def test_a_cancelled_and_a_timed_out_job_say_why_they_stopped_and_a_trained_one_does_not(
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    cancelled_id = client.post("/v1/jobs", json=tiny_spec(epochs=100_000)).json()["id"]
    worker = threading.Thread(target=Worker(settings=settings, sessions=sessions).run_once)
    worker.start()
    wait_for(lambda: client.get(f"/v1/jobs/{cancelled_id}").json()["epoch"] >= 2)
    assert client.post(f"/v1/jobs/{cancelled_id}/cancel").json()["cancel_requested"]
    worker.join(timeout=60)
    timed_out_id = client.post("/v1/jobs", json=tiny_spec(epochs=100_000)).json()["id"]
    one_second = settings.model_copy(update={"max_job_seconds": 1.0})
    assert Worker(settings=one_second, sessions=sessions).run_once()
    trained_id = client.post("/v1/jobs", json=tiny_spec()).json()["id"]
    assert Worker(settings=settings, sessions=sessions).run_once()

    cancelled = client.get(f"/v1/jobs/{cancelled_id}").json()
    timed_out = client.get(f"/v1/jobs/{timed_out_id}").json()
    trained = client.get(f"/v1/jobs/{trained_id}").json()

    assert 2 <= cancelled["epoch"] < 100_000
    assert (cancelled["status"], cancelled["stop_reason"], cancelled["error"]) == (
        "cancelled",
        f"cancelled at epoch {cancelled['epoch']}",
        None,
    )
    ran_past = f"ran past 1 s (SERVICE_MAX_JOB_SECONDS) at epoch {timed_out['epoch']}"
    assert (timed_out["status"], timed_out["stop_reason"], timed_out["error"]) == (
        "failed",
        ran_past,
        ran_past,
    )
    assert (trained["status"], trained["epoch"], trained["stop_reason"]) == ("succeeded", 3, None)

    shown = {
        job_id: cli("show", job_id, server=server, key=api_key).stdout.splitlines()
        for job_id in (cancelled_id, timed_out_id, trained_id)
    }
    assert f"stopped    cancelled at epoch {cancelled['epoch']}" in shown[cancelled_id]
    # A failed job's stop reason is its error, printed once.
    assert f"error      {ran_past}" in shown[timed_out_id]
    assert not any(line.startswith("stopped") for line in shown[timed_out_id])
    assert not any(line.startswith(("stopped", "error")) for line in shown[trained_id])


def test_the_key_comes_from_the_flag_the_environment_or_the_data_dir(
    server: str, api_key: str, tmp_path: Path
) -> None:
    (tmp_path / "api-key").write_text(api_key + "\n")

    from_file = cli("jobs", server=server, key=None, data_dir=tmp_path)
    from_flag = cli("jobs", "--key", api_key, server=server, key=None, data_dir=tmp_path / "none")
    missing = cli("jobs", server=server, key=None, data_dir=tmp_path / "none")
    wrong = cli("jobs", server=server, key="sk_wrong")
    unknown = cli("show", "0123456789", server=server, key=api_key)

    assert from_file.returncode == 0, from_file.stderr
    assert from_flag.returncode == 0, from_flag.stderr
    assert missing.returncode == 3
    assert "no API key: pass --key, set SERVICE_API_KEY" in missing.stderr
    assert wrong.returncode == 3
    assert "401 Unauthorized" in wrong.stderr
    assert unknown.returncode == 3
    assert "404 NotFound: job '0123456789' does not exist" in unknown.stderr
