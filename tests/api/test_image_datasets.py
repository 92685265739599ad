"""POST /v1/datasets with pictures: a ZIP of class folders or uint8 NPZ, stored as uint8."""

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service import repository_datasets
from service.db import transaction
from tests.api.test_datasets import npz
from tests.images import png, zip_of

PETS = zip_of(
    {
        "pets/dog/1.png": png(seed=1, size=(4, 4)),
        "pets/cat/1.png": png(seed=2, size=(4, 4)),
        "pets/cat/2.png": png(seed=3, size=(4, 4)),
    }
)


def stored_bytes(sessions: sessionmaker[Session], dataset_id: str) -> int:
    with transaction(sessions) as session:
        row = repository_datasets.get_dataset(session, dataset_id=dataset_id, with_data=True)
        assert row is not None
        return len(row.data)


def test_a_zip_of_class_folders_is_stored_as_uint8_with_its_class_names(
    client: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    response = client.post(
        "/v1/datasets",
        files={"file": ("pets.zip", PETS)},
        data={"image_size": "8", "channels": "3"},
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["format"], body["samples"], body["input_shape"]) == ("zip", 3, [3, 8, 8])
    assert (body["class_names"], body["images"], body["num_classes"]) == (["cat", "dog"], True, 2)
    # 3 pictures of 3 x 8 x 8 uint8 and 3 int64 labels, after the safetensors header.
    assert stored_bytes(sessions, body["id"]) - 3 * 3 * 8 * 8 - 3 * 8 < 200
    grey = client.post("/v1/datasets", files={"file": ("pets.zip", PETS)}, data={"channels": "1"})
    assert (grey.status_code, grey.json()["input_shape"]) == (201, [1, 4, 4])


def test_uint8_npz_pictures_are_stored_at_a_quarter_of_float32(
    client: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    x = np.random.default_rng(0).integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
    y = np.arange(50) % 10
    response = client.post("/v1/datasets", files={"file": ("p.npz", npz(x=x, y=y))})

    body = response.json()
    assert (response.status_code, body["input_shape"], body["images"]) == (201, [3, 16, 16], True)
    assert body["class_names"] is None
    assert 50 * 3 * 16 * 16 < stored_bytes(sessions, body["id"]) < 50 * 3 * 16 * 16 + 1000


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        (
            {"file": ("pets.zip", zip_of({"a/1.png": png(seed=1), "b/x.png": b"not a picture"}))},
            {},
            "b/x.png cannot be read: it is not a PNG or JPEG image",
        ),
        (
            {"file": ("points.csv", b"a,target\n1,0\n2,1\n")},
            {"image_size": "8"},
            "image_size and channels apply to pictures",
        ),
        ({"file": ("pets.zip", PETS)}, {"channels": "2"}, "channels is 2; use 1 (grey) or 3"),
    ],
)
def test_a_bad_picture_upload_is_422_naming_what_is_wrong(
    client: httpx.Client, files: dict[str, tuple[str, bytes]], data: dict[str, str], message: str
) -> None:
    response = client.post("/v1/datasets", files=files, data=data)
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "settings_overrides", [{"max_upload_bytes": 2000, "max_body_bytes": 1_000_000}]
)
def test_an_upload_over_its_own_limit_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/datasets", files={"file": ("big.zip", bytes(3000))})
    assert response.status_code == 413
    assert "SERVICE_MAX_UPLOAD_BYTES" in response.json()["detail"]
