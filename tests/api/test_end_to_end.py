"""`service up` as a newcomer runs it: real processes, real HTTP, one Ctrl-C to stop them all."""

import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import make_settings
from tests.factories import spiral_spec
from tests.servers import free_port, service_env, start_service, wait_until_ready


def test_up_trains_the_spiral_job_over_http_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(data_dir=tmp_path / "data", port=port, workers=1, database_url="")
    log = tmp_path / "up.log"
    up = start_service(settings, "up", log_path=str(log))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, timeout=90)
        key_file = settings.api_key_file
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key in log.read_text(), "the first key is printed once"
        headers = {"Authorization": f"Bearer {key}"}

        assert httpx.get(f"{url}/v1/jobs").status_code == 401
        submitted = httpx.post(f"{url}/v1/jobs", json=spiral_spec(epochs=30), headers=headers)
        assert submitted.status_code == 202
        job_id = submitted.json()["id"]

        deadline = time.monotonic() + 120
        while (job := httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json())[
            "status"
        ] != "succeeded":
            assert job["status"] in ("queued", "running"), job
            assert time.monotonic() < deadline
            time.sleep(0.2)
        metrics = httpx.get(f"{url}/v1/jobs/{job_id}/metrics", headers=headers).json()["epochs"]
        assert [m["epoch"] for m in metrics] == list(range(1, 31))
        assert metrics[-1]["loss"] < metrics[0]["loss"]
        assert job["latest"] == metrics[-1]
    finally:
        # A terminal's Ctrl-C reaches the whole process group; here, the parent forwards it.
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
    # `up` waits for its workers, so its exit means they are gone too.
    assert code == 0, log.read_text()[-2000:]
    assert "stopped" in log.read_text()


def test_keys_create_prints_the_key_last(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path / "data", database_url="")
    env = service_env(settings)
    subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, capture_output=True
    )
    created = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--name", "alice"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_")
    assert len(key) > 40
