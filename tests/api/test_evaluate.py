"""POST /v1/jobs/{id}/evaluate: the job's loss and task metrics on a labelled dataset."""

import io
from functools import partial
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
import torch
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from torch.nn import functional

from service import repository
from service.db import transaction
from service.inference.evaluation import evaluate_job
from service.inference.predictor import Predictor
from service.settings import Settings
from service.specs import DatasetSpec, InlineData, SpiralData, UploadedData
from service.training.datasets import make_dataset
from tests.conftest import create_api_key
from tests.factories import tiny_spec
from tests.predictions import offline_outputs, train, train_standardised_regression


def evaluate(client: httpx.Client, job: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/jobs/{job['id']}/evaluate", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_classification_on_inline_data_matches_the_offline_numbers(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)
    inputs = [[0.0, 0.0], [0.2, 0.3], [1.0, 1.0], [0.9, 0.7], [0.4, 0.6]]
    labels = [0, 0, 1, 1, 1]

    result = evaluate(client, job, dataset={"kind": "inline", "inputs": inputs, "targets": labels})

    output = offline_outputs(sessions, job, inputs)
    predicted = output.argmax(dim=1).tolist()
    confusion = [[0, 0], [0, 0]]
    for label, guess in zip(labels, predicted, strict=True):
        confusion[label][guess] += 1
    assert result["checkpoint"] == {"epoch": 3, "kind": "best"}
    assert result["samples"] == 5
    torch.testing.assert_close(
        torch.tensor(result["loss"]),
        functional.cross_entropy(output, torch.tensor(labels)),
    )
    assert result["confusion_matrix"] == confusion
    assert result["accuracy"] == (confusion[0][0] + confusion[1][1]) / 5
    assert result["per_class_accuracy"] == [confusion[0][0] / 2, confusion[1][1] / 3]
    assert (result["mse"], result["mae"], result["r2"]) == (None, None, None)


def test_a_generated_dataset_without_a_seed_is_drawn_with_seed_0(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = tiny_spec()
    job = train(
        client,
        sessions,
        settings,
        dataset={"kind": "spiral", "classes": 2, "points_per_class": 50},
        epochs=20,
        optimizer={"name": "adam", "lr": 0.05},
        model=spec["model"],
    )
    dataset = {"kind": "spiral", "classes": 2, "points_per_class": 40}

    first = evaluate(client, job, dataset=dataset, checkpoint="final")
    again = evaluate(client, job, dataset=dataset, checkpoint="final")
    seeded = evaluate(client, job, dataset={**dataset, "seed": 0}, checkpoint="final")
    other = evaluate(client, job, dataset={**dataset, "seed": 1}, checkpoint="final")

    assert first == again == seeded
    assert other["loss"] != first["loss"]
    inputs, labels = make_dataset(SpiralData(**dataset, seed=0))
    output = offline_outputs(sessions, job, inputs.tolist(), ref="final")
    torch.testing.assert_close(
        torch.tensor(first["loss"]), functional.cross_entropy(output, labels)
    )
    accuracy = (output.argmax(dim=1) == labels).double().mean().item()
    assert first["accuracy"] == pytest.approx(accuracy)
    assert first["checkpoint"] == {"epoch": 20, "kind": "final"}
    assert sum(map(sum, first["confusion_matrix"])) == 80


def test_regression_reports_mse_mae_r2_in_target_units_and_loss_as_trained(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_standardised_regression(client, sessions, settings)
    xs = [[-0.9], [-0.3], [0.2], [0.8]]
    ys = [[3 * x * x + 2] for [x] in xs]

    result = evaluate(client, job, dataset={"kind": "inline", "inputs": xs, "targets": ys})

    predicted = offline_outputs(sessions, job, xs).double()
    actual = torch.tensor(ys, dtype=torch.float64)
    error = predicted - actual
    r2 = 1 - (error**2).sum() / ((actual - actual.mean()) ** 2).sum()
    assert result["samples"] == 4
    assert result["mse"] == pytest.approx(float((error**2).mean()), rel=1e-5)
    assert result["mae"] == pytest.approx(float(error.abs().mean()), rel=1e-5)
    assert result["r2"] == pytest.approx(float(r2), rel=1e-5)
    # The loss is measured where training measured it: on standardised targets.
    y_std = float(
        torch.tensor([3 * x * x + 2 for x in torch.linspace(-1, 1, 50)]).std(correction=0)
    )
    assert result["loss"] == pytest.approx(result["mse"] / y_std**2, rel=1e-3)
    assert result["accuracy"] is None
    assert result["confusion_matrix"] is None


def test_an_uploaded_dataset_by_id(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    job = train(client, sessions, settings)
    x = np.array([[0.0, 0.1], [1.0, 0.9], [0.2, 0.2], [0.8, 1.1]], dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    uploaded = client.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())})
    assert uploaded.status_code == 201, uploaded.text
    dataset = {"kind": "uploaded", "id": uploaded.json()["id"]}

    result = evaluate(client, job, dataset=dataset)
    inline = evaluate(
        client, job, dataset={"kind": "inline", "inputs": x.tolist(), "targets": y.tolist()}
    )
    other = {"Authorization": f"Bearer {create_api_key(sessions, name='other')}"}
    not_yours = httpx.post(
        f"{server}/v1/jobs/{job['id']}/evaluate", json={"dataset": dataset}, headers=other
    )

    assert result == inline
    assert not_yours.status_code == 404


def test_the_forward_pass_runs_after_the_database_connection_is_given_back(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, engine: Engine
) -> None:
    job = train(client, sessions, settings)
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([[0.0, 0.1], [1.0, 0.9]], dtype=np.float32), y=np.array([0, 1]))
    uploaded = client.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())})
    assert uploaded.status_code == 201, uploaded.text
    predictor = Predictor(settings=settings, sessions=sessions)
    with transaction(sessions) as session:
        row = repository.get_job(session, job_id=job["id"])
        assert row is not None
        _, loaded = predictor.open(session, job_id=row.id, owner_id=row.owner_id, ref=None)
    connections_held: list[int] = []
    loaded.network.register_forward_hook(
        lambda *_: connections_held.append(engine.pool.checkedout())
    )
    datasets: list[DatasetSpec] = [
        UploadedData(kind="uploaded", id=uploaded.json()["id"]),
        InlineData(kind="inline", inputs=[[0.0, 0.1], [1.0, 0.9]], targets=[0, 1]),
        SpiralData(kind="spiral", classes=2, points_per_class=5),
    ]

    results = [
        anyio.run(
            partial(
                evaluate_job,
                predictor=predictor,
                job_id=row.id,
                owner_id=row.owner_id,
                dataset=dataset,
                ref=None,
                max_samples=100,
            )
        )
        for dataset in datasets
    ]

    assert [result.samples for result in results] == [2, 2, 10]
    assert results[0] == results[1]
    assert connections_held == [0, 0, 0]


@pytest.mark.parametrize(
    ("dataset", "status", "detail"),
    [
        (
            {"kind": "quadratic", "samples": 10},
            422,
            "the dataset's samples have shape [1] but the network takes [2]",
        ),
        (
            {"kind": "spiral", "classes": 3, "points_per_class": 10},
            422,
            "the dataset has class labels 0 to 2 but the network predicts 2 classes (0 to 1)",
        ),
        (
            {"kind": "inline", "inputs": [[0.1, 0.2]], "targets": [0.5]},
            422,
            "this job is a classification, so the dataset's targets must be class labels",
        ),
        (
            {"kind": "spiral", "classes": 2, "points_per_class": 30},
            422,
            "the dataset has 60 samples; evaluate takes at most 50 (SERVICE_MAX_EVALUATE_SAMPLES)",
        ),
        ({"kind": "uploaded", "id": "nope"}, 404, "dataset 'nope' does not exist"),
        ({"kind": "mnist"}, 422, "dataset"),
    ],
)
@pytest.mark.parametrize("settings_overrides", [{"max_evaluate_samples": 50}])
def test_a_dataset_that_does_not_fit_is_refused(
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    dataset: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    job = train(client, sessions, settings)

    response = client.post(f"/v1/jobs/{job['id']}/evaluate", json={"dataset": dataset})

    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_unknown_job_is_404_and_no_checkpoint_yet_409(client: httpx.Client) -> None:
    queued = client.post("/v1/jobs", json=tiny_spec()).json()
    body = {"dataset": tiny_spec()["dataset"]}

    assert client.post("/v1/jobs/nope/evaluate", json=body).status_code == 404
    assert client.post(f"/v1/jobs/{queued['id']}/evaluate", json=body).status_code == 409
