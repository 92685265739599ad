"""GET /v1/jobs/{id}/export: ONNX Runtime on the exported model gives predict's answers, with
the job's standardisation folded into the graph, for each kind of network."""

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.factories import spiral_spec, tiny_spec, uploaded_spec
from tests.predictions import (
    POINTS,
    predict,
    train,
    train_eval_mode_job,
    train_standardised_regression,
)

TOLERANCE = 1e-5


def export(client: httpx.Client, job: dict[str, Any], **params: str) -> httpx.Response:
    return client.get(f"/v1/jobs/{job['id']}/export", params={"format": "onnx", **params})


def run_onnx(model: bytes, inputs: list[Any]) -> np.ndarray:
    """The exported graph's `outputs` for raw inputs, in ONNX Runtime on the CPU."""
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (outputs,) = session.run(["outputs"], {"inputs": np.asarray(inputs, dtype=np.float32)})
    return np.asarray(outputs)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def assert_classifier_exported(client: httpx.Client, job: dict[str, Any], inputs: list) -> None:
    response = export(client, job)
    assert response.status_code == 200, response.text
    logits = run_onnx(response.content, inputs)
    answer = predict(client, job, inputs=inputs)
    np.testing.assert_allclose(softmax(logits), answer["probabilities"], atol=TOLERANCE, rtol=0)
    assert logits.argmax(axis=1).tolist() == answer["predictions"]


def test_a_standardised_classifier_answers_in_onnx_runtime_as_predict_does(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # Inputs far from the training data's scale: wrong statistics would show at once.
    job = train(client, sessions, settings, standardize=True)
    inputs = [*POINTS, [25.0, -40.0], [3.0, 3.0]]

    assert_classifier_exported(client, job, inputs)

    model = onnxruntime.InferenceSession(export(client, job).content)
    (given,) = model.get_inputs()
    (output,) = model.get_outputs()
    assert (given.name, given.type, given.shape[1:]) == ("inputs", "tensor(float)", [2])
    assert isinstance(given.shape[0], str)  # the batch axis is dynamic
    assert (output.name, output.shape[1:]) == ("outputs", [2])


def test_an_exported_spiral_classifier_answers_as_predict_does(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    job = train(client, sessions, settings, spec=spiral_spec(epochs=30))
    (tmp_path / "model.onnx").write_bytes(export(client, job).content)
    inputs = np.random.default_rng(1).uniform(-1, 1, (200, 2)).astype(np.float32)

    # The README's snippet.
    model = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (logits,) = model.run(["outputs"], {"inputs": inputs})
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    predictions = probabilities.argmax(1)

    answer = predict(client, job, inputs=inputs.tolist())
    assert predictions.tolist() == answer["predictions"]
    np.testing.assert_allclose(probabilities, answer["probabilities"], atol=TOLERANCE, rtol=0)


def test_the_batch_axis_takes_one_row_or_many(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, standardize=True)
    model = export(client, job).content
    rows = [[0.1 * i, 1.0 - 0.2 * i] for i in range(9)]

    assert run_onnx(model, rows[:1]).shape == (1, 2)
    many = run_onnx(model, rows)
    assert many.shape == (9, 2)
    np.testing.assert_allclose(run_onnx(model, rows[:1]), many[:1], atol=TOLERANCE, rtol=0)


def test_a_regression_on_standardised_targets_answers_in_the_targets_units(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_standardised_regression(client, sessions, settings)
    inputs = [[-1.0], [0.0], [0.5], [2.0]]

    response = export(client, job)

    assert response.status_code == 200, response.text
    outputs = run_onnx(response.content, inputs)
    answer = predict(client, job, inputs=inputs)
    assert outputs.shape == (4, 1)  # predict answers one number per sample for one output
    np.testing.assert_allclose(outputs[:, 0], answer["predictions"], atol=TOLERANCE, rtol=0)
    # In the targets' units (y = x^2 near x = 2), not standardised ones.
    assert outputs[3, 0] > 2


def test_batch_norm_and_dropout_are_exported_in_eval_mode(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_eval_mode_job(client, sessions, settings)

    # One row: BatchNorm in training mode would fail or normalise it to zero.
    assert_classifier_exported(client, job, [POINTS[2]])
    assert_classifier_exported(client, job, POINTS)


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


CNN_LAYERS = [
    {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d"},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Flatten"},
    {"type": "Linear", "out_features": 2},
]


def test_a_cnn_trained_on_an_uploaded_npz_answers_as_predict_does(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # 1-channel 6x6 images: bright on the left half is class 0, on the right half class 1.
    generator = np.random.default_rng(0)
    images = generator.random((40, 1, 6, 6)).astype(np.float32)
    labels = np.arange(40) % 2
    images[labels == 0, :, :, :3] += 2.0
    images[labels == 1, :, :, 3:] += 2.0
    uploaded = client.post("/v1/datasets", files={"file": ("images.npz", npz(x=images, y=labels))})
    assert uploaded.status_code == 201, uploaded.text
    spec = uploaded_spec(
        uploaded.json()["id"],
        model={"layers": CNN_LAYERS},
        standardize=True,
        batch_size=8,
        optimizer={"name": "adam", "lr": 0.01},
    )
    job = train(client, sessions, settings, spec=spec)

    assert_classifier_exported(client, job, images[:5].tolist())


def test_a_named_checkpoint_is_exported_and_says_which_it_is(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, checkpoint_every=1)

    response = export(client, job, checkpoint="1")
    first = predict(client, job, inputs=POINTS, checkpoint=1)

    assert response.headers["x-checkpoint-epoch"] == "1"
    assert response.headers["content-disposition"].endswith(f'{job["id"]}-epoch-1.onnx"')
    logits = run_onnx(response.content, POINTS)
    np.testing.assert_allclose(softmax(logits), first["probabilities"], atol=TOLERANCE, rtol=0)
    # Cached per checkpoint: the same bytes again.
    assert export(client, job, checkpoint="1").content == response.content


def test_bad_requests_say_what_is_expected(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)

    wrong_format = export(client, job, format="tflite")
    assert wrong_format.status_code == 422
    assert "onnx" in wrong_format.json()["detail"]
    wrong_ref = export(client, job, checkpoint="newest")
    assert wrong_ref.status_code == 422
    assert "best, final, latest or an epoch" in wrong_ref.json()["detail"]
    assert export(client, job, checkpoint="99").status_code == 404
    assert client.get("/v1/jobs/nope/export").status_code == 404


def test_a_job_without_a_checkpoint_is_a_409(client: httpx.Client) -> None:
    job = client.post("/v1/jobs", json=tiny_spec()).json()

    response = export(client, job)

    assert response.status_code == 409
    assert "no checkpoint yet" in response.json()["detail"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_another_keys_job_is_not_found(
    client: httpx.Client,
    server: str,
    sessions: sessionmaker[Session],
    settings: Settings,
    backend: str,
) -> None:
    from tests.conftest import create_api_key

    job = train(client, sessions, settings)
    other = create_api_key(sessions, name="other")

    response = httpx.get(
        f"{server}/v1/jobs/{job['id']}/export", headers={"Authorization": f"Bearer {other}"}
    )

    assert response.status_code == 404
