"""Train a tiny job for real and ask it for predictions: shared by the inference tests."""

import io
from typing import Any

import httpx
import numpy as np
import safetensors.torch
import torch
from sqlalchemy.orm import Session, sessionmaker

from service import repository_checkpoints
from service.db import transaction
from service.settings import Settings
from service.specs import JobSpec
from service.training.checkpoints import read_standardization
from service.training.networks import build_network
from service.worker.loop import Worker
from tests.factories import tiny_spec

POINTS = [[0.0, 0.1], [0.9, 1.0], [0.5, 0.5], [-1.0, 2.0]]


def train(
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    spec: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Submit `spec` (the tiny spec by default), with overrides, over HTTP and train it with a
    real worker."""
    body = {**(spec if spec is not None else tiny_spec()), **overrides}
    submitted = client.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    assert Worker(settings=settings, sessions=sessions).run_once()
    job: dict[str, Any] = client.get(f"/v1/jobs/{submitted.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    return job


# Both eval-mode layers: predictions differ from training mode unless eval() took effect.
EVAL_MODE_LAYERS = [
    {"type": "Linear", "out_features": 8},
    {"type": "BatchNorm1d"},
    {"type": "ReLU"},
    {"type": "Dropout", "p": 0.5},
    {"type": "Linear", "out_features": 2},
]


def train_eval_mode_job(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    """The tiny job with BatchNorm1d and Dropout, in mini-batches so BatchNorm has batches."""
    return train(client, sessions, settings, model={"layers": EVAL_MODE_LAYERS}, batch_size=4)


def train_standardised_regression(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    """Seed 004's quadratic, standardised, fitted well enough in 30 epochs."""
    layers = [
        {"type": "Linear", "out_features": 8},
        {"type": "Tanh"},
        {"type": "Linear", "out_features": 1},
    ]
    return train(
        client,
        sessions,
        settings,
        dataset={"kind": "quadratic", "samples": 50, "noise": 0.0},
        model={"layers": layers},
        standardize=True,
        epochs=30,
        optimizer={"name": "adam", "lr": 0.05},
    )


def offline_outputs(
    sessions: sessionmaker[Session],
    job: dict[str, Any],
    inputs: list[Any],
    *,
    ref: str | int = "best",
) -> torch.Tensor:
    """The tutorials' eval mode by hand: build, load_state_dict(strict=True), eval, no_grad."""
    with transaction(sessions) as session:
        row = repository_checkpoints.find_checkpoint(session, job_id=job["id"], ref=ref)
        assert row is not None
        weights, state = row.weights, row.state
    network = build_network(
        JobSpec.model_validate(job["spec"]).model.layers, device=torch.device("cpu")
    )
    network.load_state_dict(safetensors.torch.load(weights), strict=True)
    network.eval()
    x = torch.tensor(inputs, dtype=torch.float32)
    standardization = read_standardization(state)
    with torch.no_grad():
        if standardization is not None:
            x = standardization.inputs(x)
        output = network(x)
        return standardization.outputs(output) if standardization is not None else output


def predict(client: httpx.Client, job: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/jobs/{job['id']}/predict", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def post_body(
    client: httpx.Client, job: dict[str, Any], body: bytes, content_type: str
) -> httpx.Response:
    """POST raw bytes to the job's predict route, whatever they hold."""
    return client.post(
        f"/v1/jobs/{job['id']}/predict", content=body, headers={"Content-Type": content_type}
    )


def npy(array: np.ndarray) -> bytes:
    """The bytes of `array` as an application/x-npy body."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
