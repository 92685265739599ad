"""Predict with an application/x-npy body: the same answer as JSON, options in the query, and a
422 for every array it cannot take."""

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.predictions import POINTS, npy, post_body, predict, train


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

    response = post_body(client, job, body, "application/x-npy")

    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
