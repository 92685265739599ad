"""An idle worker process starts a job submitted over HTTP without waiting for its next poll.

The worker polls every 30 s here, so a job that starts within the few seconds these tests allow
was started by the doorbell, not by a poll. Three jobs one after another: each submission lands
while the worker waits out a fresh 30 s interval, after the empty claim that followed the last job.
"""

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from tests.factories import tiny_spec
from tests.jobs import wait_for
from tests.servers import free_port, start_service, wait_until_ready

LONG_POLL = {"poll_seconds": 30.0}
# Well inside the 30 s poll: a job that took this long waited for a poll.
STARTS_WITHIN = 10.0


@contextmanager
def api_and_worker(
    settings: Settings, api_key: str, logs: Path
) -> Iterator[tuple[httpx.Client, int]]:
    """`service api` and one `service worker` as processes; yields a client and the worker's pid
    once the worker waits. The worker must stop at once on SIGTERM when idle, not at its next
    poll."""
    settings = settings.model_copy(update={"port": free_port()})
    api = start_service(settings, "api", log_path=str(logs / "api.log"))
    worker = start_service(settings, "worker", log_path=str(logs / "worker.log"))
    url = f"http://127.0.0.1:{settings.port}"
    try:
        wait_until_ready(url)
        wait_for(lambda: "polling" in (logs / "worker.log").read_text())
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        ) as client:
            yield client, worker.pid
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=STARTS_WITHIN) == 0, (logs / "worker.log").read_text()
    finally:
        for process in (worker, api):
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def submit_and_finish(client: httpx.Client) -> dict:
    response = client.post("/v1/jobs", json=tiny_spec(epochs=1))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(
        lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded",
        timeout=STARTS_WITHIN,
    )
    job: dict = client.get(f"/v1/jobs/{job_id}").json()
    return job


@pytest.mark.parametrize("settings_overrides", [LONG_POLL])
def test_a_job_submitted_over_http_starts_without_waiting_for_a_poll(
    settings: Settings, engine: Engine, api_key: str, tmp_path: Path
) -> None:
    with api_and_worker(settings, api_key, tmp_path) as (client, _):
        finished = [submit_and_finish(client) for _ in range(3)]

    assert [(job["status"], job["epoch"], job["attempt"]) for job in finished] == [
        ("succeeded", 1, 1)
    ] * 3


@pytest.mark.parametrize("settings_overrides", [LONG_POLL])
def test_the_worker_hears_jobs_again_after_postgresql_drops_its_listen_connection(
    backend: str, settings: Settings, sessions: sessionmaker[Session], api_key: str, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    with api_and_worker(settings, api_key, tmp_path) as (client, worker_pid):
        name = f"service worker {worker_pid} doorbell"
        [dropped] = listeners(sessions, name)
        with transaction(sessions) as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        wait_for(lambda: listeners(sessions, name) not in ([], [dropped]))

        job = submit_and_finish(client)

    assert (job["status"], job["epoch"]) == ("succeeded", 1)
    assert "lost the LISTEN connection" in (tmp_path / "worker.log").read_text()


def listeners(sessions: sessionmaker[Session], name: str) -> list[int]:
    """Backend pids of the worker's LISTEN connection (at most one, unless it is reconnecting)."""
    with transaction(sessions) as session:
        rows = session.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = :name AND query LIKE 'LISTEN %'"
            ),
            {"name": name},
        )
        return [int(pid) for pid in rows.scalars()]
