"""samples.png: a classifier's pictures with their labels, and its predictions once trained;
confusion.png: its confusion matrix on the validation split (else its training data)."""

import io
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, repository
from service.db import transaction
from service.inference.predictor import Predictor
from service.plots.data import confusion, held_out
from service.settings import Settings
from service.training.datasets import seeded
from service.training.job_data import prepare_data
from service.worker.loop import Worker
from tests.factories import quadratic_spec, tiny_spec
from tests.predictions import train
from tests.unit.training.test_pictures import shapes_spec


def test_samples_png_before_and_after_a_checkpoint(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    queued = client.post("/v1/jobs", json=shapes_spec(epochs=2)).json()
    before = client.get(f"/v1/jobs/{queued['id']}/plots/samples.png")
    assert before.status_code == 200, before.text
    assert before.headers["content-type"] == "image/png"

    assert Worker(settings=settings, sessions=sessions).run_once()
    job = client.get(f"/v1/jobs/{queued['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    after = client.get(f"/v1/jobs/{job['id']}/plots/samples.png")
    assert after.status_code == 200
    assert Image.open(io.BytesIO(after.content)).size == (640, 640)
    again = client.get(f"/v1/jobs/{job['id']}/plots/samples.png?checkpoint=final")
    assert (again.status_code, again.headers["x-plot-cache"]) == (200, "hit")


def test_samples_png_of_a_job_without_pictures_is_409(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, spec=tiny_spec())
    response = client.get(f"/v1/jobs/{job['id']}/plots/samples.png")
    assert response.status_code == 409
    assert "samples.png draws a classifier's pictures" in response.json()["detail"]


def confusion_of(
    sessions: sessionmaker[Session], settings: Settings, job: dict[str, Any]
) -> tuple[np.ndarray, bool, int]:
    """The data function's matrix for the job's best checkpoint, whether it is on a validation
    split, and how many samples it counts."""
    predictor = Predictor(settings=settings, sessions=sessions)
    with transaction(sessions) as session:
        row = repository.get_job(session, job_id=job["id"])
        assert row is not None
        target, loaded = predictor.open(session, job_id=row.id, owner_id=row.owner_id, ref=None)
        (inputs, targets), validation = held_out(session, spec=jobs.stored_spec(row))
    matrix = confusion(loaded=loaded, target=target, inputs=inputs, targets=targets)
    return matrix, validation, len(targets)


def test_confusion_png_is_on_the_validation_split_the_worker_held_out(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, spec=shapes_spec(epochs=2))
    response = client.get(f"/v1/jobs/{job['id']}/plots/confusion.png")
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (640, 640)
    again = client.get(f"/v1/jobs/{job['id']}/plots/confusion.png?checkpoint=final")
    assert again.status_code == 200

    matrix, validation, samples = confusion_of(sessions, settings, job)
    # A quarter of the 60 pictures, the very ones the worker validated on.
    assert (validation, samples, matrix.shape, int(matrix.sum())) == (True, 15, (3, 3), 15)
    with transaction(sessions) as session:
        row = repository.get_job(session, job_id=job["id"])
        assert row is not None
        spec = jobs.stored_spec(row)
        (inputs, labels), _ = held_out(session, spec=spec)
    assert spec.seed is not None
    # The worker draws the shapes from the job's seed (see datasets.seeded), then splits them.
    drawn = spec.model_copy(update={"dataset": seeded(spec.dataset, seed=spec.seed)})
    worker = prepare_data(drawn, seed=spec.seed, device=torch.device("cpu"), uploaded=None)
    assert worker.validation is not None
    assert torch.equal(worker.validation[0], inputs)
    assert torch.equal(worker.validation[1], labels.long())


def test_confusion_png_without_a_validation_split_is_evaluates_matrix_on_the_training_data(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    dataset = {"kind": "shapes", "samples": 30, "size": 12, "noise": 0.1, "seed": 5}
    job = train(
        client,
        sessions,
        settings,
        spec=shapes_spec(epochs=2, dataset=dataset, validation_fraction=0, best_metric="loss"),
    )
    response = client.get(f"/v1/jobs/{job['id']}/plots/confusion.png")
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")

    matrix, validation, samples = confusion_of(sessions, settings, job)
    evaluated = client.post(f"/v1/jobs/{job['id']}/evaluate", json={"dataset": dataset})
    assert evaluated.status_code == 200, evaluated.text
    assert (validation, samples) == (False, 30)
    assert matrix.tolist() == evaluated.json()["confusion_matrix"]


def test_confusion_png_of_a_regression_or_before_a_checkpoint_is_409(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    regression = train(client, sessions, settings, spec=quadratic_spec(loss="mse", epochs=2))
    queued = client.post("/v1/jobs", json=tiny_spec()).json()
    cases = [
        (regression, "confusion.png counts a classifier's predictions"),
        (queued, "no checkpoint yet"),
    ]
    for job, reason in cases:
        response = client.get(f"/v1/jobs/{job['id']}/plots/confusion.png")
        assert response.status_code == 409, response.text
        assert reason in response.json()["detail"], response.json()["detail"]
