"""DELETE /v1/sweeps/{id}: the sweep goes with every trial, their metrics and checkpoints; a
running one stops creating trials and its running trial stops at its worker's next write."""

import threading

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from service.tables import Checkpoint, EpochMetric, Job, Sweep
from service.worker.loop import Worker
from tests.factories import stochastic_spec
from tests.jobs import read, wait_for
from tests.sweeps import activation_sweep, run_trials, submit


def stored(sessions: sessionmaker[Session]) -> tuple[int, int, int, int]:
    """(sweep rows, job rows, metric rows, checkpoint rows) in the whole database."""
    with transaction(sessions) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table))
            for table in (Sweep, Job, EpochMetric, Checkpoint)
        )


def test_a_finished_sweep_goes_with_its_trials_metrics_and_checkpoints(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    sweep = submit(client, activation_sweep())
    kept = submit(
        client, activation_sweep(name="kept", parameters={"optimizer.lr": {"values": [0.1]}})
    )
    assert run_trials(sessions, settings) == 7
    trial = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()["trials"][0]["job_id"]
    # 7 trials of 3 epochs, each a metric row and a checkpoint row per epoch.
    assert stored(sessions) == (2, 7, 21, 21)

    response = client.delete(f"/v1/sweeps/{sweep['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert stored(sessions) == (1, 1, 3, 3)
    for path in (
        f"/v1/sweeps/{sweep['id']}",
        f"/v1/sweeps/{sweep['id']}/trials",
        f"/v1/jobs/{trial}",
    ):
        assert client.get(path).status_code == 404, path
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert [s["id"] for s in client.get("/v1/sweeps").json()["sweeps"]] == [kept["id"]]
    assert client.get(f"/v1/sweeps/{kept['id']}").json()["counts"]["succeeded"] == 1


def test_a_running_sweep_stops_its_running_trial_and_creates_no_more(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = activation_sweep(
        base=stochastic_spec(epochs=100_000),
        parameters={"optimizer.lr": {"values": [0.01, 0.02, 0.03, 0.04]}},
        parallel=2,
    )
    sweep = submit(client, spec)
    worker = Worker(settings=settings, sessions=sessions)
    running = threading.Thread(target=worker.run_once)
    running.start()
    first = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()["trials"][0]["job_id"]
    wait_for(lambda: read(sessions, first).epoch >= 2)

    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204

    # The worker's next fenced write finds no lease: it abandons the trial, and no trial ends,
    # so none is created in its place.
    running.join(timeout=120)
    assert not running.is_alive()
    assert stored(sessions) == (0, 0, 0, 0)
    assert run_trials(sessions, settings) == 0
    assert stored(sessions) == (0, 0, 0, 0)


def test_deleting_a_queued_trial_lets_its_sweep_create_the_next_and_end(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    sweep = submit(client, activation_sweep(parallel=2))
    queued = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()["trials"]

    assert client.delete(f"/v1/jobs/{queued[0]['job_id']}").status_code == 204

    after = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert after["trials_created"] == 3
    assert after["counts"]["queued"] == 2
    assert run_trials(sessions, settings) == 5
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert done["counts"]["succeeded"] == 5
