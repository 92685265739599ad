"""`service up` keeps its workers running: a worker process killed with SIGKILL is replaced, the
job it held resumes elsewhere, and SIGTERM to `up` stops every child cleanly."""

import os
import re
import signal
import socket
import threading
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service import repository
from service.db import transaction
from service.settings import Settings
from tests.conftest import make_settings
from tests.factories import stochastic_spec
from tests.jobs import read, wait_for
from tests.servers import free_port, service_children, service_up, start_service


def up_settings(settings: Settings, **overrides: object) -> Settings:
    return settings.model_copy(update={"port": free_port(), **overrides})


def submit(url: str, headers: dict[str, str], spec: dict) -> str:
    response = httpx.post(f"{url}/v1/jobs", json=spec, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def holder_pid(sessions: sessionmaker[Session], job_id: str) -> int:
    """The pid of the worker that holds the job's lease (its token is host:pid:random)."""
    owner = read(sessions, job_id).lease_owner
    assert owner is not None
    return int(owner.rsplit(":", 2)[1])


def stored_epochs(sessions: sessionmaker[Session], job_id: str) -> list[int]:
    with transaction(sessions) as session:
        return [m.epoch for m in repository.list_metrics(session, job_id=job_id)]


def test_a_worker_killed_with_sigkill_is_replaced_and_its_job_resumes(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = up_settings(settings, workers=2, api_processes=1, lease_seconds=2.0)
    log = tmp_path / "up.log"
    with service_up(settings, log_path=log) as up:
        url = f"http://127.0.0.1:{settings.port}"
        headers = {"Authorization": f"Bearer {settings.api_key_file.read_text().strip()}"}
        workers = service_children(up.pid, "worker")
        assert len(workers) == 2

        epochs = 800
        job_id = submit(url, headers, stochastic_spec(epochs=epochs, checkpoint_every=20))
        wait_for(lambda: read(sessions, job_id).epoch >= 30, timeout=120)
        victim = holder_pid(sessions, job_id)
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        assert read(sessions, job_id).status == "running", "it finished before the kill"

        # Back to two workers, the victim's replacement among them.
        wait_for(
            lambda: len(now := service_children(up.pid, "worker")) == 2 and victim not in now,
            timeout=60,
        )
        assert re.search(
            rf"worker \d \(pid {victim}\) was killed by SIGKILL after [\d.]+ s; restarting it",
            log.read_text(),
        )

        # Its lease lapses, another worker claims the job again and finishes it.
        wait_for(lambda: read(sessions, job_id).status == "succeeded", timeout=240)
        job = read(sessions, job_id)
        assert job.attempt == 2
        assert job.error is None
        assert stored_epochs(sessions, job_id) == list(range(1, epochs + 1))

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]


def read_stream(url: str, headers: dict[str, str], job_id: str, lines: list[str]) -> None:
    try:
        with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/events", headers=headers) as stream:
            for line in stream.iter_lines():
                lines.append(line)
    except httpx.HTTPError as error:  # the server closed it mid-stream
        lines.append(f"closed: {type(error).__name__}")


def test_sigterm_to_up_stops_every_child_and_workers_hand_their_jobs_back(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = up_settings(settings, workers=2, api_processes=2)
    log = tmp_path / "up.log"
    with service_up(settings, log_path=log) as up:
        url = f"http://127.0.0.1:{settings.port}"
        headers = {"Authorization": f"Bearer {settings.api_key_file.read_text().strip()}"}
        pids = service_children(up.pid, "api") + service_children(up.pid, "worker")
        assert len(pids) == 4
        # Both workers past their start, where SIGTERM is theirs to handle.
        wait_for(lambda: log.read_text().count("polling for jobs") == 2, timeout=120)
        job_id = submit(url, headers, stochastic_spec(epochs=100_000, checkpoint_every=20))
        wait_for(lambda: read(sessions, job_id).epoch >= 5, timeout=120)
        # An open event stream, which would never end by itself, must not hold the stop up.
        lines: list[str] = []
        reader = threading.Thread(target=read_stream, args=(url, headers, job_id, lines))
        reader.start()
        wait_for(lambda: "event: status" in lines)

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]

    reader.join(timeout=30)
    assert not reader.is_alive()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} outlived up"
        assert f"(pid {pid}) stopped: exited with code 0" in log.read_text()
    # The worker finished its epoch, checkpointed and gave the job back for its next start.
    job = read(sessions, job_id)
    assert (job.status, job.attempt, job.lease_owner) == ("queued", 1, None)
    assert stored_epochs(sessions, job_id) == list(range(1, job.epoch + 1))
    assert "restarting" not in log.read_text()


def test_up_on_a_port_in_use_says_so_and_starts_nothing(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path / "data", port=free_port(), database_url="")
    with socket.create_server(("127.0.0.1", settings.port)):
        up = start_service(settings, "up", log_path=str(tmp_path / "up.log"))
        assert up.wait(timeout=120) == 1
    output = (tmp_path / "up.log").read_text()
    assert f"cannot serve on 127.0.0.1:{settings.port}: Address already in use" in output
    assert "started (pid" not in output
