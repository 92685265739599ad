"""Every experiment in examples/ is accepted as written; the tutorials' numbers come back."""

import json
from pathlib import Path

import httpx
import pytest
import safetensors.torch
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_spec_is_queued(client: httpx.Client, path: Path, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the specs are checked once, on SQLite; submission is tested on both backends")
    spec = json.loads(path.read_text())

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["name"] == spec["name"]
    assert job["parameters"] > 0
    assert job["spec"]["epochs"] == spec["epochs"]


def train_example(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, name: str
) -> dict:
    spec = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
    job = client.post("/v1/jobs", json=spec).json()
    assert Worker(settings=settings, sessions=sessions).run_once()
    finished = client.get(f"/v1/jobs/{job['id']}").json()
    assert finished["status"] == "succeeded", finished["error"]
    return finished


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "loss", "accuracy"),
    [("spiral-linear-sgd", 0.861541, 0.504), ("spiral-relu-adam", 0.161705, 0.954)],
)
def test_spiral_examples_reproduce_seed_001_through_the_service(
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    backend: str,
    name: str,
    loss: float,
    accuracy: float,
) -> None:
    if backend != "sqlite":
        pytest.skip("reproduced once, on SQLite: the numbers do not depend on the database")
    job = train_example(client, sessions, settings, name)

    last = job["latest"]
    assert last["epoch"] == 1000
    assert round(last["loss"], 6) == loss
    assert round(last["accuracy"], 3) == accuracy


@pytest.mark.slow
def test_quadratic_example_reproduces_seed_004_through_the_service(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("reproduced once, on SQLite: the numbers do not depend on the database")
    job = train_example(client, sessions, settings, "quadratic-regression")

    weights = safetensors.torch.load(client.get(f"/v1/jobs/{job['id']}/checkpoints/final").content)
    assert weights["1.weight"].item() == pytest.approx(2.9645, abs=1e-3)
    assert weights["1.bias"].item() == pytest.approx(2.1146, abs=1e-3)


def test_the_early_stopping_example_stops_where_its_validation_loss_stopped_falling(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("reproduced once, on SQLite: the numbers do not depend on the database")
    job = train_example(client, sessions, settings, "sum-bins-early-stopping")

    assert (job["epoch"], job["stop_reason"]) == (
        15,
        "early stopping: val_loss did not improve by more than 0.001 for 10 epochs "
        "(best 2.028 at epoch 5)",
    )
    assert job["latest"]["accuracy"] == 1.0  # the training split is learnt by heart
    assert job["best"]["epoch"] == 5
    checkpoints = client.get(f"/v1/jobs/{job['id']}/checkpoints").json()
    assert [c["epoch"] for c in checkpoints if c["kind"] in ("best", "final")] == [5, 15]
