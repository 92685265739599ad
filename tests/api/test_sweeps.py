"""Sweeps over HTTP with real in-process workers: a grid runs every combination `parallel` at a
time, ranks them, and ends succeeded; bad combinations are 422s naming them."""

import csv
import io

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.sweeps import activation_sweep, run_trials, submit


def test_a_grid_runs_every_combination_parallel_at_a_time_and_ranks_them(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    sweep = submit(client, activation_sweep())
    assert sweep["status"] == "running"
    assert (sweep["max_trials"], sweep["trials_created"]) == (6, 2)
    assert sweep["counts"]["queued"] == 2

    assert run_trials(sessions, settings) == 6

    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert done["counts"]["succeeded"] == 6
    assert done["finished_at"] is not None
    board = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()
    values = [trial["value"] for trial in board["trials"]]
    assert values == sorted(values)
    assert [trial["rank"] for trial in board["trials"]] == [1, 2, 3, 4, 5, 6]
    assert sorted(
        (t["params"]["model.layers.1.type"], t["params"]["optimizer.lr"]) for t in board["trials"]
    ) == sorted((a, lr) for a in ("ReLU", "Tanh", "Sigmoid") for lr in (0.01, 0.1))
    assert done["best"]["job_id"] == board["trials"][0]["job_id"]
    # Each trial is an ordinary job with its sweep and params.
    job = client.get(f"/v1/jobs/{board['trials'][0]['job_id']}").json()
    assert job["sweep_id"] == sweep["id"]
    assert job["params"] == board["trials"][0]["params"]
    assert job["spec"]["model"]["layers"][1]["type"] == job["params"]["model.layers.1.type"]
    listed = client.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["jobs"]
    assert len(listed) == 6

    text = client.get(f"/v1/sweeps/{sweep['id']}/trials", headers={"Accept": "text/csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert (
        rows[0]["model.layers.1.type"] == f'"{board["trials"][0]["params"]["model.layers.1.type"]}"'
    )


def test_a_combination_that_cannot_train_refuses_the_sweep_naming_it(
    client: httpx.Client,
) -> None:
    spec = activation_sweep(
        parameters={
            "model.layers.1.type": {"values": ["ReLU", "Tanh"]},
            "loss": {"values": ["cross_entropy", "mse"]},
        }
    )

    response = client.post("/v1/sweeps", json=spec)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("2 of 4 trials cannot train, so the sweep was not created: ")
    assert (
        'the trial with model.layers.1.type="ReLU", loss="mse" cannot train: '
        "loss 'mse' does not fit a classification dataset" in detail
    )
    assert 'model.layers.1.type="Tanh", loss="mse"' in detail
    assert client.get("/v1/sweeps").json()["sweeps"] == []
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_distribution_in_a_grid_is_422_naming_it(client: httpx.Client) -> None:
    spec = activation_sweep(
        parameters={"optimizer.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 1}}
    )

    response = client.post("/v1/sweeps", json=spec)

    assert response.status_code == 422
    assert "grid takes only lists of values; optimizer.lr is a distribution" in response.text


def test_random_gives_the_same_trials_for_the_same_spec(client: httpx.Client) -> None:
    spec = activation_sweep(
        method="random",
        max_trials=5,
        parallel=5,
        parameters={
            "model.layers.1.type": {"values": ["ReLU", "Tanh", "GELU"]},
            "optimizer.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 1},
        },
    )

    def trials(sweep_id: str) -> list[tuple]:
        board = client.get(f"/v1/sweeps/{sweep_id}/trials").json()["trials"]
        return sorted(
            (t["trial"], t["params"]["model.layers.1.type"], t["params"]["optimizer.lr"])
            for t in board
        )

    first, second = submit(client, spec), submit(client, spec)
    assert len(trials(first["id"])) == 5
    assert trials(first["id"]) == trials(second["id"])
