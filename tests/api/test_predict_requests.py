"""What a predict request may be and how the others are answered: JSON bodies that are 422 saying
what to send, the row limit, the content type, method, size and key as any route answers them,
and the OpenAPI document that says so."""

import httpx
import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.predictions import POINTS, post_body, predict, train


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

    response = post_body(client, job, body, "application/json")

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "InvalidInput"
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

    response = post_body(client, job, b"inputs=1", "application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["error"] == "UnsupportedMediaType"
    assert "application/json" in response.json()["detail"]
    assert "application/x-npy" in response.json()["detail"]


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
