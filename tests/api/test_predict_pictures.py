"""A CNN trained on an uploaded ZIP of pictures, asked about PNGs, JPEGs and .npy pixels."""

import io
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service import pixels
from service.settings import Settings
from tests.factories import tiny_spec
from tests.images import encode, picture, png, zip_of
from tests.predictions import train

SIDE = 8
PETS = zip_of(
    {
        f"{kind}/{index}.png": png(seed=10 * k + index, size=(10, 9))
        for k, kind in enumerate(("cat", "dog", "owl"))
        for index in range(4)
    }
)
CNN = {
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 3},
    ]
}


@pytest.fixture
def job(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    uploaded = client.post(
        "/v1/datasets", files={"file": ("pets.zip", PETS)}, data={"image_size": str(SIDE)}
    )
    assert uploaded.status_code == 201, uploaded.text
    spec = {
        "dataset": {"kind": "uploaded", "id": uploaded.json()["id"]},
        "model": CNN,
        "optimizer": {"name": "adam", "lr": 0.01},
        "epochs": 3,
        "batch_size": 4,
        "seed": 2,
        "normalize": "per_channel",
        "augment": {"random_crop_padding": 1, "horizontal_flip": True},
    }
    return train(client, sessions, settings, spec=spec)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def ask(
    client: httpx.Client, job: dict[str, Any], body: bytes, content_type: str
) -> httpx.Response:
    return client.post(
        f"/v1/jobs/{job['id']}/predict", content=body, headers={"Content-Type": content_type}
    )


def test_a_png_is_predicted_as_its_pixels_sent_as_npy(
    client: httpx.Client, job: dict[str, Any]
) -> None:
    sent = png(seed=99, size=(12, 15))
    from_png = ask(client, job, sent, "image/png")
    # The same pixels as training saw them: converted and resized exactly as uploads are.
    pixels_of = pixels.decode(sent, channels=3, size=(SIDE, SIDE))
    from_npy = ask(client, job, npy(pixels_of[np.newaxis]), "application/x-npy")

    assert from_png.status_code == 200, from_png.text
    assert from_png.json() == from_npy.json()
    body = from_png.json()
    assert body["labels"] == [["cat", "dog", "owl"][body["predictions"][0]]]
    assert len(body["probabilities"][0]) == 3


def test_several_pictures_as_multipart_in_order(client: httpx.Client, job: dict[str, Any]) -> None:
    first, second = png(seed=1, size=(8, 8)), encode(picture(seed=2), format="JPEG")
    together = client.post(
        f"/v1/jobs/{job['id']}/predict",
        files=[
            ("image", ("a.png", first, "image/png")),
            ("image", ("b.jpg", second, "image/jpeg")),
        ],
        data={"checkpoint": "final", "top_k": "2"},
    )
    alone = [ask(client, job, first, "image/png"), ask(client, job, second, "image/jpeg")]

    assert together.status_code == 200, together.text
    body = together.json()
    assert body["predictions"] == [r.json()["predictions"][0] for r in alone]
    assert body["labels"] == [r.json()["labels"][0] for r in alone]
    assert [len(row) for row in body["top_k"]] == [2, 2]
    assert body["checkpoint"]["kind"] == "final"


def test_what_is_not_a_picture_is_refused_saying_what_is_expected(
    client: httpx.Client, job: dict[str, Any]
) -> None:
    broken = ask(client, job, b"\x89PNG not really", "image/png")
    assert broken.status_code == 422
    assert "the body cannot be read: it is not a PNG or JPEG image" in broken.json()["detail"]

    text = ask(client, job, b"hello", "text/plain")
    assert text.status_code == 415
    assert "image/png" in text.json()["detail"]


def test_a_picture_for_a_network_of_features_is_422(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    points = train(client, sessions, settings, spec=tiny_spec())
    response = ask(client, points, png(seed=1), "image/png")
    assert response.status_code == 422
    assert "takes samples of shape [2], not pictures" in response.json()["detail"]


def test_evaluate_on_the_uploaded_pictures(client: httpx.Client, job: dict[str, Any]) -> None:
    response = client.post(
        f"/v1/jobs/{job['id']}/evaluate", json={"dataset": job["spec"]["dataset"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["samples"] == 12


def test_bf16_is_refused_at_submission_on_the_cpu(client: httpx.Client) -> None:
    spec = tiny_spec(precision="bf16")
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert "use precision 'fp32'" in response.json()["detail"]
