"""Sweeps across processes: 4 workers and 2 api processes run a 40-trial sweep 8 at a time
while trials are cancelled through the api, creating each trial exactly once and never more
than 8 queued or running; a worker killed mid-trial leaves the sweep finishing."""

import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from service.statuses import JobStatus
from service.sweeps import repository as sweeps_repository
from service.tables import Job
from tests.jobs import wait_for
from tests.servers import free_port, service_up, start_service
from tests.sweeps import activation_sweep


def seeds_sweep(trials: int, *, parallel: int, epochs: int) -> dict[str, Any]:
    base = {**activation_sweep()["base"], "epochs": epochs}
    return activation_sweep(
        base=base, parameters={"seed": {"values": list(range(trials))}}, parallel=parallel
    )


def trials_of(sessions: sessionmaker[Session], sweep_id: str) -> list[Job]:
    with transaction(sessions) as session:
        return list(sweeps_repository.trials(session, sweep_id=sweep_id))


def most_active_at_once(trials: list[Job]) -> int:
    """The most trials alive together, each from its creation to its end; a trial created in
    the transaction that ended another starts after that one's end."""
    events: list[tuple[datetime, int]] = []
    for trial in trials:
        assert trial.finished_at is not None
        events += [(trial.created_at, 1), (trial.finished_at, -1)]
    alive = most = 0
    for _, change in sorted(events):  # on a tie, -1 sorts first: an end before a start
        alive += change
        most = max(most, alive)
    return most


def test_four_workers_and_two_apis_create_each_of_40_trials_once_8_at_a_time(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"port": free_port(), "workers": 4, "api_processes": 2})
    log = tmp_path / "up.log"
    with service_up(settings, log_path=log):
        url = f"http://127.0.0.1:{settings.port}"
        key = settings.api_key_file.read_text().strip()
        # A new connection per request: the kernel spreads them over both api processes.
        headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
        submitted = httpx.post(
            f"{url}/v1/sweeps", json=seeds_sweep(40, parallel=8, epochs=10), headers=headers
        )
        assert submitted.status_code == 202, submitted.text
        sweep_id = submitted.json()["id"]

        # Cancelling queued trials through the api ends trials there too, each replaced in the
        # cancel's transaction while workers end others.
        cancelled = 0
        for _ in range(200):
            queued = httpx.get(
                f"{url}/v1/jobs",
                params={"sweep_id": sweep_id, "status": "queued", "limit": 1},
                headers=headers,
            ).json()["jobs"]
            if not queued or cancelled == 6:
                break
            answer = httpx.post(f"{url}/v1/jobs/{queued[0]['id']}/cancel", headers=headers)
            cancelled += answer.status_code == 200 and answer.json()["status"] == "cancelled"

        def ended() -> bool:
            body = httpx.get(f"{url}/v1/sweeps/{sweep_id}", headers=headers).json()
            return body["status"] != "running"

        wait_for(ended, timeout=300)
        body = httpx.get(f"{url}/v1/sweeps/{sweep_id}", headers=headers).json()
    assert "Traceback" not in log.read_text()

    trials = trials_of(sessions, sweep_id)
    assert sorted(trial.sweep_trial for trial in trials) == list(range(40))
    assert sorted(trial.params["seed"] for trial in trials) == list(range(40))  # type: ignore[index]
    assert (body["status"], body["trials_created"]) == ("succeeded", 40)
    assert body["counts"]["succeeded"] + body["counts"]["cancelled"] == 40
    assert body["counts"]["cancelled"] >= cancelled
    assert most_active_at_once(trials) == 8


@pytest.mark.parametrize("settings_overrides", [{"lease_seconds": 1.5}])
def test_a_worker_killed_mid_trial_leaves_the_sweep_finishing(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path, server: str, api_key: str
) -> None:
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {api_key}"}) as client:
        submitted = client.post("/v1/sweeps", json=seeds_sweep(3, parallel=2, epochs=3000))
        assert submitted.status_code == 202, submitted.text
        sweep_id = submitted.json()["id"]

        doomed = start_service(settings, "worker", log_path=str(tmp_path / "doomed.log"))
        try:

            def training() -> bool:
                return any(t.epoch >= 5 for t in trials_of(sessions, sweep_id))

            wait_for(training)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
        finally:
            doomed.kill()
        # One trial, or both when the two trained fused.
        killed = [t for t in trials_of(sessions, sweep_id) if t.status == JobStatus.RUNNING]
        assert len(killed) in (1, 2)

        rescuer = start_service(settings, "worker", log_path=str(tmp_path / "rescuer.log"))
        try:
            wait_for(
                lambda: client.get(f"/v1/sweeps/{sweep_id}").json()["status"] != "running",
                timeout=300,
            )
        finally:
            rescuer.send_signal(signal.SIGTERM)
            rescuer.wait(timeout=60)
        body = client.get(f"/v1/sweeps/{sweep_id}").json()

    assert (body["status"], body["trials_created"], body["counts"]["succeeded"]) == (
        "succeeded",
        3,
        3,
    )
    trials = {t.id: t for t in trials_of(sessions, sweep_id)}
    assert [(trials[t.id].attempt, trials[t.id].epoch) for t in killed] == [(2, 3000)] * len(killed)
