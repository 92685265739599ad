"""POST /v1/jobs/{id}/predict over real HTTP, on jobs a real worker trained."""

import io
import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.factories import tiny_spec
from tests.predictions import (
    POINTS,
    offline_outputs,
    predict,
    train,
    train_eval_mode_job,
    train_standardised_regression,
)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- classification -----------------------------------------------------------------------------


def test_classification_answers_classes_and_softmax_of_the_offline_eval_forward(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)

    answer = predict(client, job, inputs=POINTS)

    expected = torch.softmax(offline_outputs(sessions, job, POINTS), dim=1)
    torch.testing.assert_close(torch.tensor(answer["probabilities"]), expected)
    assert answer["predictions"] == expected.argmax(dim=1).tolist()
    # The tiny job's loss falls every epoch, so its best checkpoint is its last.
    assert answer["checkpoint"] == {"epoch": 3, "kind": "best"}
    assert set(answer) == {"predictions", "probabilities", "checkpoint"}


def test_named_and_numbered_checkpoints_answer_from_their_own_weights(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, checkpoint_every=1)

    first = predict(client, job, inputs=POINTS, checkpoint=1)
    final = predict(client, job, inputs=POINTS, checkpoint="final")
    latest = predict(client, job, inputs=POINTS, checkpoint="latest")

    assert first["checkpoint"] == {"epoch": 1, "kind": "periodic"}
    assert final["checkpoint"] == {"epoch": 3, "kind": "final"}
    assert latest["checkpoint"] == {"epoch": 3, "kind": "latest"}
    expected_first = torch.softmax(offline_outputs(sessions, job, POINTS, ref=1), dim=1)
    torch.testing.assert_close(torch.tensor(first["probabilities"]), expected_first)
    assert first["probabilities"] != final["probabilities"]
    assert final["probabilities"] == latest["probabilities"]


def test_top_k_lists_each_rows_likeliest_classes_first(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = tiny_spec()
    layers = [{"type": "Linear", "out_features": 4}, {"type": "Linear", "out_features": 3}]
    job = train(
        client,
        sessions,
        settings,
        model={"layers": layers},
        dataset={**spec["dataset"], "targets": [0, 1, 2, 1, 0, 2, 0, 1]},
    )

    answer = predict(client, job, inputs=POINTS, top_k=2)

    assert len(answer["top_k"]) == len(POINTS)
    for row, probabilities in zip(answer["top_k"], answer["probabilities"], strict=True):
        order = np.argsort(probabilities)[::-1][:2]
        assert [entry["class"] for entry in row] == order.tolist()
        assert [entry["probability"] for entry in row] == [probabilities[c] for c in order]


def test_bce_with_logits_answers_one_minus_p_and_p(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    layers = [{"type": "Linear", "out_features": 4}, {"type": "Linear", "out_features": 1}]
    job = train(client, sessions, settings, model={"layers": layers}, loss="bce_with_logits")

    answer = predict(client, job, inputs=POINTS, top_k=1)

    p = torch.sigmoid(offline_outputs(sessions, job, POINTS)[:, 0])
    torch.testing.assert_close(torch.tensor(answer["probabilities"]), torch.stack((1 - p, p), 1))
    assert answer["predictions"] == (p >= 0.5).long().tolist()
    assert [row[0]["class"] for row in answer["top_k"]] == answer["predictions"]


# --- eval mode ----------------------------------------------------------------------------------


def test_dropout_and_batch_norm_behave_as_in_eval_mode(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_eval_mode_job(client, sessions, settings)
    one_point = [POINTS[2]]

    first = predict(client, job, inputs=POINTS)
    second = predict(client, job, inputs=POINTS)
    alone = predict(client, job, inputs=one_point)

    assert first == second
    expected = torch.softmax(offline_outputs(sessions, job, POINTS), dim=1)
    torch.testing.assert_close(torch.tensor(first["probabilities"]), expected)
    # Running statistics, not the batch's: a row alone gets what it got among others.
    torch.testing.assert_close(
        torch.tensor(alone["probabilities"][0]), torch.tensor(first["probabilities"][2])
    )


# --- regression ---------------------------------------------------------------------------------


def test_regression_undoes_standardisation(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_standardised_regression(client, sessions, settings)
    inputs = [[-1.0], [0.0], [0.5]]

    answer = predict(client, job, inputs=inputs)
    flat = predict(client, job, inputs=[-1.0, 0.0, 0.5])

    expected = offline_outputs(sessions, job, inputs)[:, 0]
    torch.testing.assert_close(torch.tensor(answer["predictions"]), expected)
    assert flat["predictions"] == answer["predictions"]
    # In the targets' units (3 x^2 + 2 lies in [2, 5]), not standardised ones around 0.
    assert all(1.0 < value < 6.0 for value in answer["predictions"])
    assert set(answer) == {"predictions", "checkpoint"}


def test_regression_with_several_outputs_answers_a_list_per_sample(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = tiny_spec()
    targets = [[x + y, x - y] for x, y in spec["dataset"]["inputs"]]
    job = train(
        client,
        sessions,
        settings,
        dataset={**spec["dataset"], "targets": targets},
        model={"layers": [{"type": "Linear", "out_features": 2}]},
    )

    answer = predict(client, job, inputs=POINTS)

    expected = offline_outputs(sessions, job, POINTS)
    torch.testing.assert_close(torch.tensor(answer["predictions"]), expected)
    assert [len(row) for row in answer["predictions"]] == [2, 2, 2, 2]


# --- .npy bodies --------------------------------------------------------------------------------


def test_npy_body_with_checkpoint_in_the_query(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, checkpoint_every=1)

    response = client.post(
        f"/v1/jobs/{job['id']}/predict?checkpoint=2&top_k=1",
        content=npy(np.array(POINTS, dtype=np.float64)),
        headers={"Content-Type": "application/x-npy"},
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["checkpoint"] == {"epoch": 2, "kind": "periodic"}
    assert answer == predict(client, job, inputs=POINTS, checkpoint=2, top_k=1)


# --- concurrency: request batching --------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_overrides",
    [{"predict_batching": True, "predict_batch_wait_ms": 20}, {"predict_batching": False}],
    ids=["batching", "no-batching"],
)
def test_concurrent_callers_each_get_exactly_their_own_rows(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    job = train(client, sessions, settings)
    callers = 24
    # Caller n sends n % 3 + 1 rows of its own, so merged passes mix requests of several sizes.
    inputs = [[[n / 10, -n / 7 + row] for row in range(n % 3 + 1)] for n in range(callers)]
    answers: list[dict[str, Any] | None] = [None] * callers
    start = threading.Barrier(callers)

    def call(n: int) -> None:
        with httpx.Client(base_url=server, headers=client.headers, timeout=60) as own:
            start.wait()
            answers[n] = own.post(
                f"/v1/jobs/{job['id']}/predict", json={"inputs": inputs[n]}
            ).json()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    for n in range(callers):
        answer = answers[n]
        assert answer is not None
        expected = torch.softmax(offline_outputs(sessions, job, inputs[n]), dim=1)
        torch.testing.assert_close(torch.tensor(answer["probabilities"]), expected)
    distinct = {tuple(map(tuple, a["probabilities"])) for a in answers if a is not None}
    assert len(distinct) == callers


# --- while training -----------------------------------------------------------------------------


def test_a_running_job_answers_from_its_latest_checkpoint(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    submitted = client.post("/v1/jobs", json=tiny_spec(epochs=100_000, checkpoint_every=5))
    job = submitted.json()
    worker = Worker(settings=settings, sessions=sessions)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            response = client.post(
                f"/v1/jobs/{job['id']}/predict", json={"inputs": POINTS, "checkpoint": "latest"}
            )
            if response.status_code == 200:
                break
            assert response.status_code == 409, response.text
        answer = response.json()
        final = client.post(
            f"/v1/jobs/{job['id']}/predict", json={"inputs": POINTS, "checkpoint": "final"}
        )
    finally:
        worker.shutdown.set()
        thread.join(timeout=60)

    assert answer["checkpoint"]["kind"] == "latest"
    assert answer["checkpoint"]["epoch"] % 5 == 0
    assert final.status_code == 409
    assert "use latest or best" in final.json()["detail"]


# --- errors -------------------------------------------------------------------------------------


def post(
    client: httpx.Client, job: dict[str, Any], body: bytes, content_type: str
) -> httpx.Response:
    return client.post(
        f"/v1/jobs/{job['id']}/predict", content=body, headers={"Content-Type": content_type}
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            b'{"inputs": [[0.1, 0.2, 0.3]]}',
            "each input must have shape [2], got [3] at row 0",
        ),
        (b'{"inputs": [0.1, 0.2]}', "each input must have shape [2], got [] at row 0"),
        (b'{"inputs": []}', "inputs is empty; send at least one sample"),
        (b'{"inputs": [[0.1, "a"]]}', "row 0 is not a number or a list of numbers"),
        (b'{"inputs": [[0.1, 0.2], [0.1, null]]}', "row 1 is not a number or a list of numbers"),
        (b'{"inputs": [[0.1, 0.2], [true, 0.2]]}', "row 1 is not a number or a list of numbers"),
        (b'{"inputs": [[0.1, 0.2], [0.1]]}', "row 1 has shape [1] but row 0 has shape [2]"),
        (b'{"inputs": [[1e39, 0.2]]}', "row 0 holds inf at index [0]; inputs must be finite"),
        (b'{"inputs": [[NaN, 0.2]]}', "the body is not valid JSON"),
        (b'{"inputs": [[0.1, 0.2]]', "the body is not valid JSON"),
        (b"[[0.1, 0.2]]", "the body must be a JSON object"),
        (b'{"input": [[0.1, 0.2]]}', "unknown field(s) input"),
        (b'{"checkpoint": "best"}', "inputs is missing"),
        (b'{"inputs": [[0.1, 0.2]], "checkpoint": "worst"}', "checkpoint 'worst' is not a"),
        (b'{"inputs": [[0.1, 0.2]], "top_k": 0}', "top_k must be a whole number"),
        (b'{"inputs": [[0.1, 0.2]], "top_k": 3}', "top_k is 3 but the network chooses among 2"),
    ],
)
def test_bad_json_inputs_are_422_saying_what_to_send(
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    body: bytes,
    detail: str,
) -> None:
    job = train(client, sessions, settings)

    response = post(client, job, body, "application/json")

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "InvalidInput"
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (npy(np.array([[0.1, np.nan]], dtype=np.float32)), "row 0 holds nan at index [1]"),
        (npy(np.array([[0.1, 0.2], [np.inf, 0]])), "row 1 holds inf at index [0]"),
        (npy(np.zeros((2, 3), dtype=np.float32)), "each input must have shape [2], got [3]"),
        (npy(np.array([["a", "b"]])), "the .npy array has dtype <U1; send numbers"),
        (npy(np.array([[{"x": 1}, 2]], dtype=object)), "not a readable .npy array"),
        (npy(np.zeros((0, 2), dtype=np.float32)), "holds no samples"),
        (b"\x93NUMPY garbage", "not a readable .npy array"),
    ],
)
def test_bad_npy_inputs_are_422(
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    body: bytes,
    detail: str,
) -> None:
    job = train(client, sessions, settings)

    response = post(client, job, body, "application/x-npy")

    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


@pytest.mark.parametrize("settings_overrides", [{"max_predict_rows": 3}])
def test_more_rows_than_the_limit_is_422_naming_the_setting(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)

    response = client.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": POINTS})

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "4 rows in one request; the limit is 3 (SERVICE_MAX_PREDICT_ROWS): "
        "split them over several requests"
    )
    assert predict(client, job, inputs=POINTS[:3])["predictions"]


def test_wrong_content_type_is_415(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)

    response = post(client, job, b"inputs=1", "application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["error"] == "UnsupportedMediaType"
    assert "application/json" in response.json()["detail"]
    assert "application/x-npy" in response.json()["detail"]


def test_unknown_job_checkpoint_or_owner_is_404_and_no_checkpoint_yet_is_409(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    job = train(client, sessions, settings)
    queued = client.post("/v1/jobs", json=tiny_spec()).json()
    other = {"Authorization": f"Bearer {create_api_key(sessions, name='other')}"}
    body = {"inputs": POINTS}

    unknown_job = client.post("/v1/jobs/nope/predict", json=body)
    unknown_epoch = client.post(f"/v1/jobs/{job['id']}/predict", json={**body, "checkpoint": 7})
    not_yours = httpx.post(f"{server}/v1/jobs/{job['id']}/predict", json=body, headers=other)
    no_checkpoint = client.post(f"/v1/jobs/{queued['id']}/predict", json=body)

    assert unknown_job.status_code == 404
    assert unknown_job.json() == {"error": "NotFound", "detail": "job 'nope' does not exist"}
    assert unknown_epoch.status_code == 404
    assert unknown_epoch.json()["detail"].startswith(
        f"job {job['id']} has no epoch 7 checkpoint; it has epochs 1, 2, 3"
    )
    assert not_yours.status_code == 404
    assert no_checkpoint.status_code == 409
    assert no_checkpoint.json()["error"] == "Conflict"
    assert "has no checkpoint yet (status queued" in no_checkpoint.json()["detail"]
    # After the owner's own request cached the resolution, another key still gets 404.
    predict(client, job, inputs=POINTS)
    assert (
        httpx.post(f"{server}/v1/jobs/{job['id']}/predict", json=body, headers=other).status_code
        == 404
    )


@pytest.mark.parametrize("settings_overrides", [{"max_body_bytes": 4096}])
def test_predict_answers_like_any_route_for_method_size_and_key(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    # PredictRoute serves this route itself; these are the answers FastAPI would have given.
    job = train(client, sessions, settings)
    url = f"{server}/v1/jobs/{job['id']}/predict"
    key = client.headers["Authorization"].split(" ", 1)[1]
    big = {"inputs": [[0.5, 0.5]] * 600}  # about 6 kB

    wrong_method = client.get(f"/v1/jobs/{job['id']}/predict")
    declared_too_big = client.post(f"/v1/jobs/{job['id']}/predict", json=big)
    streamed_too_big = client.post(
        f"/v1/jobs/{job['id']}/predict",
        content=iter([orjson.dumps(big)]),  # chunked: no Content-Length to refuse it by
        headers={"Content-Type": "application/json"},
    )
    wrong_scheme = httpx.post(url, json={"inputs": POINTS}, headers={"Authorization": key})
    lower_case_scheme = httpx.post(
        url, json={"inputs": POINTS}, headers={"Authorization": f"bearer {key}"}
    )

    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["error"] == "MethodNotAllowed"
    for too_big in (declared_too_big, streamed_too_big):
        assert too_big.status_code == 413
        assert too_big.json() == {
            "error": "PayloadTooLarge",
            "detail": "the request body is larger than 4,096 bytes (SERVICE_MAX_BODY_BYTES)",
        }
    assert wrong_scheme.status_code == 401
    assert wrong_scheme.json()["detail"] == "send your API key as 'Authorization: Bearer <key>'"
    assert lower_case_scheme.status_code == 200
    assert lower_case_scheme.json() == predict(client, job, inputs=POINTS)


def test_openapi_documents_both_bodies_and_every_status(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    operation = document["paths"]["/v1/jobs/{job_id}/predict"]["post"]

    content = operation["requestBody"]["content"]
    assert content["application/json"]["schema"]["required"] == ["inputs"]
    assert content["application/x-npy"]["schema"]["format"] == "binary"
    assert set(operation["responses"]) == {
        *("200", "401", "404", "409", "413", "415", "422", "503")
    }
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"checkpoint", "top_k"} <= names
