"""A sweep's curves.png over real HTTP, of trials a real worker trained: one curve per trial,
labelled by the params that differ; 409 before any epoch, 404 for another key's sweep."""

import io

import httpx
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.plots import sweep_curves
from service.settings import Settings
from service.sweeps import repository as sweeps_repository
from tests.sweeps import activation_sweep, run_trials, submit


def test_curves_overlay_every_trial_labelled_by_the_params_that_differ(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    sweep = submit(client, activation_sweep())
    url = f"/v1/sweeps/{sweep['id']}/plots/curves.png"
    early = client.get(url)
    assert early.status_code == 409
    assert "has no trial with an epoch yet" in early.json()["detail"]

    assert run_trials(sessions, settings) == 6
    response = client.get(url)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-plot-cache"] == "miss"
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    assert picture.size == (960, 560)
    assert client.get(url).headers["x-plot-cache"] == "hit"
    with transaction(sessions) as session:
        row = sweeps_repository.get_sweep(session, sweep_id=sweep["id"])
        assert row is not None
        drawn = sweep_curves.sweep_curves(session, sweep=row)
    assert drawn.metric == "loss"
    assert drawn.title == "activations: loss of 6 trials"
    assert [curve.label for curve in drawn.trials] == [
        f"type={activation}, lr={lr}"
        for activation in ("ReLU", "Tanh", "Sigmoid")
        for lr in (0.01, 0.1)
    ]
    epochs = activation_sweep()["base"]["epochs"]
    assert all(curve.epochs.tolist() == list(range(1, epochs + 1)) for curve in drawn.trials)
    assert all(curve.status == "succeeded" for curve in drawn.trials)
