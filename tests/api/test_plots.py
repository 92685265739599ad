"""The PNG plots over real HTTP, of jobs a real worker trained: real bytes, the cases where a
plot does not apply, and the cache keyed by checkpoint."""

import io
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from service.plots.figures import SQUARE_AXES
from service.settings import Settings
from tests.conftest import create_api_key
from tests.factories import quadratic_spec, spiral_spec
from tests.predictions import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL_SPIRAL = {"kind": "spiral", "classes": 3, "points_per_class": 100, "noise": 0.2}
SPIRAL_NETWORK = {
    "layers": [
        {"type": "Linear", "out_features": 32},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 3},
    ]
}


@pytest.fixture(autouse=True)
def _sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("plots read jobs through the repository tested on both backends: drawn once")


def image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    return picture.convert("RGB")


def region_colours(picture: Image.Image) -> Counter[tuple[int, int, int]]:
    """Colours of a lattice of pixels inside the plot area, where the regions are drawn."""
    left, bottom, width, height = SQUARE_AXES
    pixels = np.asarray(picture)
    rows, columns = pixels.shape[:2]
    ys = np.linspace((1 - bottom - height) * rows + 5, (1 - bottom) * rows - 5, 40).astype(int)
    xs = np.linspace(left * columns + 5, (left + width) * columns - 5, 40).astype(int)
    return Counter(tuple(int(v) for v in pixels[y, x]) for y in ys for x in xs)


def spiral_job(client: httpx.Client, sessions: sessionmaker[Session], settings: Settings) -> Any:
    spec = spiral_spec(
        dataset=SMALL_SPIRAL,
        model=SPIRAL_NETWORK,
        optimizer={"name": "adam", "lr": 0.02},
        epochs=60,
        checkpoint_every=20,
    )
    return train(client, sessions, settings, spec=spec)


def test_decision_boundary_draws_the_predicted_regions_under_the_points(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = spiral_job(client, sessions, settings)

    picture = image(client.get(f"/v1/jobs/{job['id']}/plots/decision_boundary.png"))

    assert picture.size == (640, 640)
    regions = [colour for colour, count in region_colours(picture).items() if count >= 40]
    # The three classes' regions: pale tints of different colours, none of them white.
    assert len(regions) >= 3
    assert (255, 255, 255) not in regions
    # Where the network predicts different classes, the pixels differ.
    predicted = client.post(
        f"/v1/jobs/{job['id']}/predict", json={"inputs": [[-1.0, 0.8], [0.0, -0.9], [0.9, 0.2]]}
    ).json()["predictions"]
    assert len(set(predicted)) >= 2


def test_fit_draws_the_points_and_the_curve(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, spec=quadratic_spec(epochs=200))

    picture = image(client.get(f"/v1/jobs/{job['id']}/plots/fit.png"))

    assert picture.size == (640, 640)
    colours = Counter(map(tuple, np.asarray(picture).reshape(-1, 3).tolist()))
    red_line = sum(count for (r, g, b), count in colours.items() if r > 180 and g < 80 and b < 80)
    assert red_line > 200, "the fitted curve is drawn in red"


def test_curves_and_the_jobs_data(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = spiral_job(client, sessions, settings)

    curves = image(client.get(f"/v1/jobs/{job['id']}/plots/curves.png"))
    data = image(client.get(f"/v1/jobs/{job['id']}/plots/data.png"))

    assert curves.size == (960, 400)
    assert data.size == (640, 640)


def test_the_same_checkpoint_is_served_from_the_cache_and_a_newer_one_is_drawn_anew(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = spiral_job(client, sessions, settings)
    path = f"/v1/jobs/{job['id']}/plots/decision_boundary.png"

    first = client.get(path, params={"checkpoint": 20})
    again = client.get(path, params={"checkpoint": "20"})
    final = client.get(path, params={"checkpoint": "final"})
    final_by_epoch = client.get(path, params={"checkpoint": 60})

    assert first.headers["x-plot-cache"] == "miss"
    assert again.headers["x-plot-cache"] == "hit"
    assert again.content == first.content
    assert final.headers["x-plot-cache"] == "miss"
    assert final.content != first.content, "epoch 60's network draws other regions than epoch 20's"
    assert final_by_epoch.headers["x-plot-cache"] == "hit", "the same checkpoint, named otherwise"
    assert final_by_epoch.content == final.content
    curves = client.get(f"/v1/jobs/{job['id']}/plots/curves.png")
    assert curves.headers["x-plot-cache"] == "miss"
    assert client.get(f"/v1/jobs/{job['id']}/plots/curves.png").content == curves.content


def test_a_plot_that_does_not_apply_is_409_saying_why(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    classifier = spiral_job(client, sessions, settings)
    regression = train(client, sessions, settings, spec=quadratic_spec(loss="mse", epochs=2))
    wide = train(
        client,
        sessions,
        settings,
        dataset={"kind": "sum_bins", "samples": 64, "features": 16},
        model={"layers": [{"type": "Linear", "out_features": 10}]},
        epochs=2,
    )
    queued = client.post(
        "/v1/jobs", json={**classifier["spec"], "seed": 1, "name": "never-run"}
    ).json()

    cases = [
        (classifier, "fit.png", "regression job with 1 input feature"),
        (regression, "decision_boundary.png", "classification job on 2 input features"),
        (wide, "decision_boundary.png", "shape [16]"),
        (wide, "data.png", "samples of shape [16]"),
        (queued, "curves.png", "no epochs yet"),
        (queued, "decision_boundary.png", "no checkpoint yet"),
    ]
    for job, plot, reason in cases:
        response = client.get(f"/v1/jobs/{job['id']}/plots/{plot}")
        assert response.status_code == 409, (plot, response.text)
        assert response.json()["error"] == "Conflict"
        assert reason in response.json()["detail"], response.json()["detail"]
    bad_ref = client.get(
        f"/v1/jobs/{classifier['id']}/plots/decision_boundary.png", params={"checkpoint": "oldest"}
    )
    assert bad_ref.status_code == 422
    # curves and data are not drawn from a checkpoint: one named is ignored, as it always was.
    ignored = client.get(
        f"/v1/jobs/{classifier['id']}/plots/curves.png", params={"checkpoint": "oldest"}
    )
    assert ignored.status_code == 200
    unknown = client.get(f"/v1/jobs/{classifier['id']}/plots/loss.png")
    assert unknown.status_code == 422
    names = "'curves', 'decision_boundary', 'fit', 'data', 'samples' or 'confusion'"
    assert names in unknown.json()["detail"]


def test_plots_need_the_owners_key(
    client: httpx.Client, server: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)
    path = f"{server}/v1/jobs/{job['id']}/plots/curves.png"
    stranger = create_api_key(sessions, name="stranger")

    assert httpx.get(path).status_code == 401
    assert httpx.get(path, headers={"Authorization": f"Bearer {stranger}"}).status_code == 404


def test_datasets_are_drawn_from_an_upload_or_a_spec(
    client: httpx.Client, server: str, sessions: sessionmaker[Session]
) -> None:
    rows = "\n".join(f"{x / 10},{(x % 7) / 10},{x % 2}" for x in range(40))
    uploaded = client.post(
        "/v1/datasets", files={"file": ("points.csv", f"a,b,target\n{rows}\n")}
    ).json()

    upload = image(client.get(f"/v1/datasets/{uploaded['id']}/plot.png"))
    spiral = client.post("/v1/datasets/plot.png", json=SMALL_SPIRAL)
    spiral_again = client.post("/v1/datasets/plot.png", json=SMALL_SPIRAL)
    line = client.post(
        "/v1/datasets/plot.png",
        json={"kind": "inline", "inputs": [0.0, 1.0, 2.0], "targets": [[1.0], [3.0], [2.0]]},
    )

    assert upload.size == (640, 640)
    assert image(spiral).size == (640, 640)
    assert spiral_again.headers["x-plot-cache"] == "hit", "no seed of its own: drawn with seed 0"
    assert spiral_again.content == spiral.content
    assert image(line).size == (640, 640)
    wide = client.post("/v1/datasets/plot.png", json={"kind": "sum_bins", "samples": 10})
    assert wide.status_code == 409
    assert "shape [784]" in wide.json()["detail"]
    huge = client.post("/v1/datasets/plot.png", json={**SMALL_SPIRAL, "points_per_class": 10**6})
    assert huge.status_code == 422
    assert "SERVICE_MAX_PLOT_SAMPLES" in huge.json()["detail"]
    stranger = create_api_key(sessions, name="stranger")
    hidden = httpx.get(
        f"{server}/v1/datasets/{uploaded['id']}/plot.png",
        headers={"Authorization": f"Bearer {stranger}"},
    )
    assert hidden.status_code == 404


@pytest.mark.parametrize("settings_overrides", [{"plot_cache_size": 1}])
def test_the_cache_keeps_only_as_many_plots_as_the_setting_says(
    client: httpx.Client, settings: Settings
) -> None:
    first = {**SMALL_SPIRAL, "seed": 1}
    second = {**SMALL_SPIRAL, "seed": 2}

    assert client.post("/v1/datasets/plot.png", json=first).headers["x-plot-cache"] == "miss"
    assert client.post("/v1/datasets/plot.png", json=second).headers["x-plot-cache"] == "miss"
    assert client.post("/v1/datasets/plot.png", json=first).headers["x-plot-cache"] == "miss"
