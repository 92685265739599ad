"""/v1/datasets: upload once, train on it by id; anything but a numeric CSV or NPZ is a 422."""

import io
import pickle

import httpx
import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from service.tables import Dataset
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.factories import uploaded_spec
from tests.predictions import POINTS, predict
from tests.servers import serve_in_thread

CSV = b"a,b,target\n0.0,0.1,0\n0.2,0.1,0\n0.9,1.0,1\n1.0,0.8,1\n0.1,0.3,0\n0.8,0.9,1\n"


def upload(client: httpx.Client, name: str, content: bytes) -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (name, content)})


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_csv_upload_reports_its_shapes(client: httpx.Client) -> None:
    response = upload(client, "points.csv", CSV)

    assert response.status_code == 201
    body = response.json()
    assert (body["filename"], body["format"], body["samples"]) == ("points.csv", "csv", 6)
    assert (body["input_shape"], body["task"], body["num_classes"]) == ([2], "classification", 2)
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


def test_npz_upload_of_regression_targets(client: httpx.Client) -> None:
    x = np.linspace(-1, 1, 40, dtype=np.float32).reshape(40, 1)
    response = upload(client, "curve.npz", npz(x=x, y=3 * x**2 + 2))

    body = response.json()
    assert response.status_code == 201
    assert (body["format"], body["samples"], body["input_shape"]) == ("npz", 40, [1])
    assert (body["task"], body["num_classes"]) == ("regression", None)


def test_a_pickle_is_refused(client: httpx.Client) -> None:
    payload = pickle.dumps({"x": [[1.0]], "y": [0]})
    response = upload(client, "data.pkl", payload)

    assert response.status_code == 422
    assert response.json()["error"] == "InvalidUpload"
    assert "CSV" in response.json()["detail"]
    assert "NPZ" in response.json()["detail"]


def test_an_npz_holding_objects_is_refused(client: httpx.Client) -> None:
    objects = np.array([{"a": 1}, {"b": 2}], dtype=object)
    response = upload(client, "objects.npz", npz(x=objects, y=np.array([0, 1])))
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidUpload"


def test_a_csv_without_a_target_column_is_refused(client: httpx.Client) -> None:
    response = upload(client, "points.csv", b"a,b\n1,2\n")
    assert response.status_code == 422
    assert "no 'target' column" in response.json()["detail"]


def test_a_job_trains_on_an_uploaded_dataset(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    dataset = upload(client, "points.csv", CSV).json()
    job = client.post("/v1/jobs", json=uploaded_spec(dataset["id"])).json()
    assert job["spec"]["model"]["layers"][0]["in_features"] == 2

    Worker(settings=settings, sessions=sessions).run_once()

    trained = client.get(f"/v1/jobs/{job['id']}").json()
    assert (trained["status"], trained["epoch"]) == ("succeeded", 5)


def test_a_job_keeps_predicting_after_its_dataset_row_is_deleted(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    dataset = upload(client, "points.csv", CSV).json()
    job = client.post("/v1/jobs", json=uploaded_spec(dataset["id"])).json()
    assert job["spec"]["dataset"]["shape"] == {
        "samples": 6,
        "input_shape": [2],
        "task": "classification",
        "num_classes": 2,
        "target_shape": [],
        "class_names": None,
        "images": False,
    }
    Worker(settings=settings, sessions=sessions).run_once()
    before = predict(client, job, inputs=POINTS)
    # There is no DELETE route yet: the row goes the way that route will take it.
    with transaction(sessions) as session:
        session.execute(delete(Dataset).where(Dataset.id == dataset["id"]))
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404

    # A server that never loaded this job's network builds it from the stored spec alone.
    with (
        serve_in_thread(settings) as fresh,
        httpx.Client(base_url=fresh, headers=client.headers, timeout=30) as other,
    ):
        assert predict(other, job, inputs=POINTS) == before
        wrong = other.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [[1.0, 2.0, 3.0]]})
        assert wrong.status_code == 422
        assert "[2]" in wrong.json()["detail"]
        evaluated = other.post(
            f"/v1/jobs/{job['id']}/evaluate",
            json={"dataset": {"kind": "inline", "inputs": POINTS, "targets": [0, 1, 0, 1]}},
        )
        assert (evaluated.status_code, evaluated.json()["samples"]) == (200, 4)
        for plot in ("data", "decision_boundary"):
            drawn = other.get(f"/v1/jobs/{job['id']}/plots/{plot}.png")
            assert drawn.status_code == 409
            assert drawn.json()["detail"] == (
                f"dataset {dataset['id']!r} no longer exists, so its samples cannot be read"
            )
        assert other.get(f"/v1/jobs/{job['id']}/plots/curves.png").status_code == 200


def test_an_unknown_dataset_id_is_422_at_submission(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json=uploaded_spec("missing"))
    assert response.status_code == 422
    assert "POST /v1/datasets" in response.json()["detail"]


def test_another_keys_dataset_is_404(
    client: httpx.Client, server: str, sessions: sessionmaker[Session]
) -> None:
    dataset = upload(client, "points.csv", CSV).json()
    other = {"Authorization": f"Bearer {create_api_key(sessions, name='other')}"}

    assert httpx.get(f"{server}/v1/datasets/{dataset['id']}", headers=other).status_code == 404
    spec = uploaded_spec(dataset["id"])
    assert httpx.post(f"{server}/v1/jobs", json=spec, headers=other).status_code == 422
