"""Early stopping over HTTP: specs that could not stop early are 422s saying what to change; a job
that stops early, trained by a real worker, ends succeeded with its reason and checkpoints."""

from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.factories import early_stopping_spec, quadratic_spec, tiny_spec
from tests.predictions import predict, train

REGRESSION_LAYERS = {"layers": [{"type": "Linear", "out_features": 1}]}


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        (
            tiny_spec(early_stopping={"metric": "val_accuracy"}),
            "early_stopping.metric 'val_accuracy' needs a validation split; "
            "set validation_fraction, e.g. 0.2, or use early_stopping.metric 'loss'",
        ),
        (
            tiny_spec(
                task="regression", model=REGRESSION_LAYERS, early_stopping={"metric": "accuracy"}
            ),
            "accuracy is not defined for regression; "
            "use early_stopping.metric 'loss' or 'val_loss'",
        ),
        (
            tiny_spec(epochs=10, early_stopping={"start_epoch": 11}),
            "early_stopping.start_epoch 11 is after the last epoch (10); "
            "lower start_epoch or raise epochs",
        ),
    ],
    ids=["val-metric-without-split", "accuracy-on-regression", "start-after-the-end"],
)
def test_a_rule_that_cannot_apply_is_422_saying_what_to_change(
    client: httpx.Client, spec: dict[str, Any], detail: str
) -> None:
    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_accuracy_on_a_dataset_of_values_is_422_when_the_task_is_inferred(
    client: httpx.Client,
) -> None:
    spec = quadratic_spec(early_stopping={"metric": "val_accuracy"}, validation_fraction=0.2)

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422
    assert response.json() == {
        "error": "InvalidSpec",
        "detail": "accuracy is not defined for regression; "
        "use early_stopping.metric 'loss' or 'val_loss'",
    }


def test_the_stored_spec_names_the_metric_watched(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json=early_stopping_spec())

    assert response.status_code == 202, response.text
    assert response.json()["spec"]["early_stopping"] == {
        "metric": "val_loss",
        "patience": 3,
        "min_delta": 0.0,
        "start_epoch": 1,
    }


def test_a_job_that_stops_early_succeeds_with_its_reason_and_a_final_checkpoint(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, spec=early_stopping_spec())

    reason = "early stopping: val_loss did not improve for 3 epochs (best 0.8892 at epoch 4)"
    assert (job["status"], job["epoch"], job["epochs"], job["stop_reason"], job["error"]) == (
        "succeeded",
        7,
        30,
        reason,
        None,
    )
    assert job["best"]["epoch"] == 4
    checkpoints = client.get(f"/v1/jobs/{job['id']}/checkpoints").json()
    assert [(c["epoch"], c["kind"]) for c in checkpoints] == [
        (2, "periodic"),
        (4, "periodic"),
        (4, "best"),
        (6, "periodic"),
        (7, "final"),
    ]
    assert predict(client, job, inputs=[[0.0] * 12], checkpoint="final")["checkpoint"] == {
        "epoch": 7,
        "kind": "final",
    }
    assert predict(client, job, inputs=[[0.0] * 12], checkpoint="best")["checkpoint"] == {
        "epoch": 4,
        "kind": "best",
    }
    metrics = client.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [m["epoch"] for m in metrics] == list(range(1, 8))
