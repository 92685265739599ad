"""The tutorials' comparisons as sweeps (examples/sweeps/): each is accepted, each trial of the
seed 000 and 001 sweeps is the job its single-job example is, and seed 001's trials end at the
tutorial's numbers."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.sweeps import run_trials, submit

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
SWEEPS = sorted((EXAMPLES_DIR / "sweeps").glob("*.json"))
# Each trial of these sweeps, by its params' layer and optimizer, is one single-job example.
SINGLE_JOBS = {
    "spiral-activations": [
        "spiral-relu-adam",
        "spiral-elu-adam",
        "spiral-gelu-adam",
        "spiral-prelu-adam",
        "spiral-hardshrink-adam",
    ],
    "spiral-sgd-adam-linear-relu": [
        "spiral-linear-sgd",
        "spiral-relu-sgd",
        "spiral-linear-adam",
        "spiral-relu-adam",
    ],
    "sum-bins-optimizers": [
        "optimizers-sgd",
        "optimizers-momentum",
        "optimizers-adagrad",
        "optimizers-rmsprop",
        "optimizers-adam",
    ],
}


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
    return body


def trials(client: httpx.Client, sweep_id: str) -> list[dict[str, Any]]:
    board = client.get(f"/v1/sweeps/{sweep_id}/trials").json()["trials"]
    return sorted(board, key=lambda trial: trial["trial"])


def without_name(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != "name"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda path: path.stem)
def test_sweep_example_is_accepted(client: httpx.Client, path: Path, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the specs are checked once, on SQLite; submission is tested on both backends")
    spec = json.loads(path.read_text())

    sweep = submit(client, spec)

    assert sweep["name"] == spec["name"]
    assert sweep["trials_created"] == spec["parallel"]


@pytest.mark.parametrize("name", sorted(SINGLE_JOBS))
def test_each_trial_is_the_job_its_single_job_example_is(
    client: httpx.Client, backend: str, name: str
) -> None:
    """Same normalised spec, seed included, but the name: the same numbers, epoch by epoch."""
    if backend != "sqlite":
        pytest.skip("the specs are checked once, on SQLite; submission is tested on both backends")
    sweep = submit(client, {**example(f"sweeps/{name}"), "parallel": 5})

    for trial, single in zip(trials(client, sweep["id"]), SINGLE_JOBS[name], strict=True):
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        alone = client.post("/v1/jobs", json=example(single)).json()
        assert without_name(job["spec"]) == without_name(alone["spec"]), single


@pytest.mark.slow
def test_the_seed_001_sweep_ends_at_the_tutorials_numbers(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("reproduced once, on SQLite: the numbers do not depend on the database")
    sweep = submit(client, example("sweeps/spiral-sgd-adam-linear-relu"))

    assert run_trials(sessions, settings) == 4

    ended = {
        (len(t["params"]["model.layers"]), t["params"]["optimizer"]["name"]): t
        for t in trials(client, sweep["id"])
    }
    final = {
        key: client.get(f"/v1/jobs/{trial['job_id']}").json()["latest"]
        for key, trial in ended.items()
    }
    linear_sgd, relu_adam = final[(2, "sgd")], final[(3, "adam")]
    assert (round(linear_sgd["loss"], 6), round(linear_sgd["accuracy"], 3)) == (0.861541, 0.504)
    assert (round(relu_adam["loss"], 6), round(relu_adam["accuracy"], 3)) == (0.161705, 0.954)
    assert client.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "succeeded"
