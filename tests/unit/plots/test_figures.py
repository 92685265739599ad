"""Figures drawn from known arrays land where they should, in the colours they should."""

import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from service.plots import figures
from service.plots.data import job_samples, thin
from service.specs import JobSpec
from service.training.datasets import make_dataset
from service.training.hooks import EpochResult
from service.training.randomness import seed_everything
from tests.factories import spiral_spec


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def region_tint(label: int, classes: int) -> np.ndarray:
    """A class region's colour: its Spectral colour at alpha 0.3 over the white background."""
    colour = np.array(matplotlib.colormaps[figures.CLASS_MAP]((label + 0.5) / classes)[:3])
    return np.round((figures.REGION_ALPHA * colour + 1 - figures.REGION_ALPHA) * 255)


def axes_pixel(picture: np.ndarray, *, x: float, y: float) -> np.ndarray:
    """The pixel at fractions (x, y) of the plot area, y measured upwards."""
    left, bottom, width, height = figures.SQUARE_AXES
    rows, columns = picture.shape[:2]
    return picture[int((1 - bottom - y * height) * rows), int((left + x * width) * columns)]


def test_decision_regions_take_each_predicted_class_colour_where_it_is_predicted() -> None:
    inputs = np.array([[-1.0, -1.0], [1.0, 1.0]], dtype=np.float32)
    grid = figures.plane_grid(inputs, steps=100)
    # A network that says class 2 right of x = 0 and class 0 left of it.
    predicted = np.where(grid.points[:, 0] > 0, 2, 0)

    png = figures.decision_boundary(
        inputs=inputs,
        labels=np.array([0, 2]),
        grid=grid,
        predicted=predicted,
        classes=3,
        title="test",
    )

    picture = pixels(png)
    assert picture.shape == (640, 640, 3)
    left = axes_pixel(picture, x=0.25, y=0.8)
    right = axes_pixel(picture, x=0.75, y=0.2)
    np.testing.assert_allclose(left, region_tint(0, 3), atol=2)
    np.testing.assert_allclose(right, region_tint(2, 3), atol=2)
    assert not np.array_equal(left, right)


def test_curves_are_two_panels_with_accuracy_and_one_without() -> None:
    def epoch(e: int, **measured: float | None) -> EpochResult:
        unmeasured = {"accuracy": None, "val_loss": None, "val_accuracy": None}
        return EpochResult(epoch=e, loss=1 / e, lr=0.1, seconds=0, **{**unmeasured, **measured})

    with_accuracy = [epoch(e, accuracy=e / 10) for e in range(1, 11)]
    loss_only = [epoch(e, val_loss=2 / e) for e in range(1, 11)]

    both = pixels(figures.curves(with_accuracy, title="a"))
    one = pixels(figures.curves(loss_only, title="b"))

    assert both.shape == one.shape == (400, 960, 3)
    assert not np.array_equal(both, one)


@pytest.mark.parametrize(
    "dataset", [{"kind": "spiral", "points_per_class": 50}, {"kind": "quadratic", "samples": 30}]
)
def test_a_jobs_samples_are_the_ones_its_worker_drew(dataset: dict[str, object]) -> None:
    spec = JobSpec.model_validate(spiral_spec(dataset=dataset, seed=12345))
    state = torch.get_rng_state()

    inputs, targets = job_samples(None, spec=spec)  # type: ignore[arg-type]

    assert torch.equal(torch.get_rng_state(), state), "the process's random state is untouched"
    seed_everything(12345)
    expected_inputs, expected_targets = make_dataset(spec.dataset)
    torch.set_rng_state(state)
    np.testing.assert_array_equal(inputs, expected_inputs.numpy())
    np.testing.assert_array_equal(targets, expected_targets.numpy())


def test_thinning_keeps_at_most_the_limit_spread_over_all_samples() -> None:
    inputs = np.arange(1000, dtype=np.float32).reshape(-1, 1)
    targets = np.repeat(np.arange(4), 250)

    kept_inputs, kept_targets = thin(inputs, targets, most=100)

    assert len(kept_inputs) == 100
    assert kept_inputs[0, 0] == 0
    assert kept_inputs[-1, 0] == 999
    assert np.bincount(kept_targets).tolist() == [25, 25, 25, 25]


def test_a_confusion_matrix_shades_each_cell_by_its_share_of_its_true_class() -> None:
    # Class 0 always right (its diagonal cell darkest), class 1 never (its diagonal cell white).
    png = figures.confusion(matrix=np.array([[8, 0], [4, 0]]), names=["cat", "dog"], title="t")
    picture = pixels(png)
    assert picture.shape == (640, 640, 3)
    blues = matplotlib.colormaps["Blues"]
    darkest = np.round(np.array(blues(1.0)[:3]) * 255)
    lightest = np.round(np.array(blues(0.0)[:3]) * 255)
    colours = {tuple(colour) for colour in picture.reshape(-1, 3)}
    assert tuple(darkest.astype(int)) in colours
    assert tuple(lightest.astype(int)) in colours
    # Too many classes to name each one: still drawn, without a count per cell.
    many = figures.confusion(matrix=np.eye(50, dtype=np.int64), names=[""] * 50, title="50")
    assert pixels(many).shape == (640, 640, 3)
