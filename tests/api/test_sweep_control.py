"""A sweep's owner and its limits: cancel, another key's sweep, the active-job limit, and bayes
trials drawn only as earlier ones end."""

from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.db import transaction
from service.settings import Settings
from service.statuses import JobStatus
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.jobs import claimed
from tests.sweeps import activation_sweep, run_trials, submit


def test_cancel_cancels_queued_trials_stops_running_ones_and_creates_no_more(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    sweep = submit(client, activation_sweep(parallel=2))
    running = claimed(sessions, settings, token="w1")

    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")

    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["counts"]["cancelled"] == 1
    assert body["counts"]["running"] == 1
    assert body["finished_at"] is None  # its running trial has not stopped yet
    assert client.get(f"/v1/jobs/{running.id}").json()["cancel_requested"] is True
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409

    # The worker stops the trial at its next epoch.
    with transaction(sessions, immediate=True) as session:
        assert jobs.finish(
            session,
            job_id=running.id,
            lease_token="w1",
            status=JobStatus.CANCELLED,
            stop_reason="cancelled at epoch 1",
        )
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "cancelled"
    assert done["finished_at"] is not None
    assert done["trials_created"] == 2
    assert done["counts"]["cancelled"] == 2
    assert run_trials(sessions, settings) == 0


def test_another_keys_sweep_is_not_found(
    client: httpx.Client, server: str, sessions: sessionmaker[Session]
) -> None:
    sweep = submit(client, activation_sweep())
    other = create_api_key(sessions, name="other")
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {other}"}) as stranger:
        for method, path in [
            ("GET", f"/v1/sweeps/{sweep['id']}"),
            ("GET", f"/v1/sweeps/{sweep['id']}/trials"),
            ("POST", f"/v1/sweeps/{sweep['id']}/cancel"),
            ("GET", f"/v1/sweeps/{sweep['id']}/plots/curves.png"),
            ("DELETE", f"/v1/sweeps/{sweep['id']}"),
        ]:
            response = stranger.request(method, path)
            assert response.status_code == 404, path
            assert response.json()["detail"] == f"sweep {sweep['id']!r} does not exist"
        assert stranger.get("/v1/sweeps").json()["sweeps"] == []
        assert stranger.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["jobs"] == []
    assert client.get(f"/v1/sweeps/{sweep['id']}").status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"max_active_jobs_per_key": 3}])
def test_trials_count_against_the_key_limit_parallel_at_a_time(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    seeds = activation_sweep(
        parameters={"seed": {"values": list(range(200))}},
        parallel=2,
        base={**activation_sweep()["base"], "epochs": 1},
    )
    sweep = submit(client, seeds)
    assert (sweep["max_trials"], sweep["trials_created"]) == (200, 2)

    # One slot is left: a sweep that would queue two is told to wait; one wanting more than
    # the key may ever have is refused.
    waiting = client.post("/v1/sweeps", json=activation_sweep(parallel=2))
    assert waiting.status_code == 429
    assert waiting.headers["Retry-After"] == "30"
    assert "this key has 2 queued or running jobs of 3 allowed" in waiting.json()["detail"]
    too_wide = client.post("/v1/sweeps", json=activation_sweep(parallel=4))
    assert too_wide.status_code == 422
    assert "parallel 4 is more than the 3 queued or running jobs a key may have" in too_wide.text
    assert client.post("/v1/sweeps", json=activation_sweep(parallel=1)).status_code == 202

    assert run_trials(sessions, settings) == 206
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert (done["status"], done["counts"]["succeeded"]) == ("succeeded", 200)


def test_bayes_draws_a_trial_only_as_an_earlier_one_ends_and_never_repeats_one(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = activation_sweep(
        method="bayes",
        max_trials=8,
        parallel=2,
        parameters={
            "model.layers.1.type": {"values": ["ReLU", "Tanh"]},
            "optimizer.lr": {"values": [0.01, 0.1, 0.3]},
        },
    )
    sweep = submit(client, spec)
    # Solo, so each run_once ends one trial (two trials of one activation would train fused).
    worker = Worker(settings=settings.model_copy(update={"fuse_max_jobs": 1}), sessions=sessions)

    def state() -> tuple[int, int]:
        body: dict[str, Any] = client.get(f"/v1/sweeps/{sweep['id']}").json()
        ended = sum(body["counts"][s] for s in ("succeeded", "failed", "cancelled", "pruned"))
        return body["trials_created"], ended

    assert state() == (2, 0)
    for ended in range(1, 7):
        assert worker.run_once()
        # Each trial that ends makes room for one more, drawn then, until 6 ran (the values
        # allow 6 configurations, fewer than max_trials).
        assert state() == (min(ended + 2, 6), ended)
    assert not worker.run_once()
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert (done["status"], done["max_trials"]) == ("succeeded", 6)
    board = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()["trials"]
    configurations = {tuple(t["params"].values()) for t in board}
    assert len(configurations) == 6
