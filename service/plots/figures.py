"""Arrays -> PNG bytes with matplotlib's Agg backend, drawn as the tutorials draw them.

Figures are built with the object API (`Figure`, `FigureCanvasAgg`), never pyplot, so nothing
here touches global figure state or needs a display. matplotlib is not thread-safe: callers run
these functions one at a time (see Plotter), off the event loop.
"""

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.plots.sweep_curves import SweepCurves
from service.training.hooks import EpochResult

# The tutorials' plot_lib colours classes with the Spectral map, regions at alpha 0.3.
# (It draws the regions with contourf; an image of the grid looks the same and needs no levels.)
CLASS_MAP = "Spectral"
REGION_ALPHA = 0.3
DPI = 100
SQUARE = (6.4, 6.4)  # inches at DPI: 640 x 640 pixels
WIDE = (9.6, 4.0)  # two panels side by side: 960 x 400 pixels
SWEEP = (9.6, 5.6)  # a sweep's curves, its legend at the right: 960 x 560 pixels
# Legend entries per column on a sweep's curves.
LEGEND_ROWS = 20
# Where the plot area of a square figure sits, as fractions of it (left, bottom, width, height):
# fixed, so the same data always lands on the same pixels.
SQUARE_AXES = (0.1, 0.08, 0.85, 0.85)


@dataclass(frozen=True)
class Grid:
    """A regular grid over the plane: `xs` along the first feature, `ys` along the second."""

    xs: np.ndarray
    ys: np.ndarray

    @property
    def points(self) -> np.ndarray:
        """Every grid point as a float32 row (x, y), x varying fastest."""
        xx, yy = np.meshgrid(self.xs, self.ys)
        return np.stack((xx.ravel(), yy.ravel()), axis=1).astype(np.float32)


def padded_range(values: np.ndarray, *, margin: float = 0.1) -> tuple[float, float]:
    """The values' range widened by `margin` of it on each side (by 1 when they are all equal)."""
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * margin or 1.0
    return low - pad, high + pad


def plane_grid(inputs: np.ndarray, *, steps: int) -> Grid:
    """A steps x steps grid over the 2-D inputs and a margin around them."""
    x_low, x_high = padded_range(inputs[:, 0])
    y_low, y_high = padded_range(inputs[:, 1])
    return Grid(xs=np.linspace(x_low, x_high, steps), ys=np.linspace(y_low, y_high, steps))


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _square_axes(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=SQUARE, dpi=DPI)
    axes = figure.add_axes(SQUARE_AXES)
    axes.set_title(title)
    return figure, axes


def _scatter_classes(axes: Axes, inputs: np.ndarray, labels: np.ndarray, classes: int) -> None:
    axes.scatter(
        inputs[:, 0],
        inputs[:, 1],
        c=labels,
        s=12 if len(inputs) > 5000 else 20,
        cmap=CLASS_MAP,
        vmin=-0.5,
        vmax=classes - 0.5,
        edgecolors="none",
    )


def curves(points: Sequence[EpochResult], *, title: str) -> bytes:
    """Loss, and accuracy when there is one, by epoch: training solid, validation dashed."""
    has_accuracy = any(p.accuracy is not None or p.val_accuracy is not None for p in points)
    figure = Figure(figsize=WIDE, dpi=DPI, layout="constrained")
    panels = figure.subplots(1, 2 if has_accuracy else 1, squeeze=False)[0]
    figure.suptitle(title)
    epochs = np.array([p.epoch for p in points])
    series = (("loss", "val_loss", "loss"), ("accuracy", "val_accuracy", "accuracy"))
    for axes, (train_name, val_name, label) in zip(panels, series, strict=False):
        for name, style, legend in ((train_name, "-", "train"), (val_name, "--", "validation")):
            values = [getattr(p, name) for p in points]
            if any(value is not None for value in values):
                data = np.array([np.nan if v is None else v for v in values], dtype=float)
                axes.plot(epochs, data, style, label=legend, marker="." if len(epochs) < 30 else "")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    return _png(figure)


def sweep_curves(sweep: SweepCurves) -> bytes:
    """Every trial's curve of the sweep's metric, one colour each, labelled by its params;
    a trial that did not end succeeded is drawn dotted and says how it ended."""
    figure = Figure(figsize=SWEEP, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(sweep.title)
    for trial in sweep.trials:
        ended_early = trial.status != "succeeded"
        label = f"{trial.label} ({trial.status})" if ended_early else trial.label
        axes.plot(trial.epochs, trial.values, ":" if ended_early else "-", label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel(sweep.metric)
    axes.grid(alpha=0.3)
    columns = math.ceil(len(sweep.trials) / LEGEND_ROWS)
    figure.legend(loc="outside right upper", fontsize=7, ncols=columns)
    return _png(figure)


def decision_boundary(
    *,
    inputs: np.ndarray,
    labels: np.ndarray,
    grid: Grid,
    predicted: np.ndarray,
    classes: int,
    title: str,
) -> bytes:
    """The tutorials' plot_model: the class the network predicts at each grid point as a
    coloured region, with the data points over it in their true classes' colours."""
    figure, axes = _square_axes(title)
    # One grid cell per pixel block, drawn as is: crisp regions for any number of classes.
    axes.imshow(
        predicted.reshape(len(grid.ys), len(grid.xs)),
        extent=(grid.xs[0], grid.xs[-1], grid.ys[0], grid.ys[-1]),
        origin="lower",
        interpolation="nearest",
        aspect="auto",
        cmap=CLASS_MAP,
        alpha=REGION_ALPHA,
        vmin=-0.5,
        vmax=classes - 0.5,
    )
    _scatter_classes(axes, inputs, labels, classes)
    axes.set_xlim(grid.xs[0], grid.xs[-1])
    axes.set_ylim(grid.ys[0], grid.ys[-1])
    axes.set_xlabel("x[0]")
    axes.set_ylabel("x[1]")
    return _png(figure)


def fit(
    *, inputs: np.ndarray, targets: np.ndarray, xs: np.ndarray, fitted: np.ndarray, title: str
) -> bytes:
    """Seed 004's picture: the data points and the network's curve through them."""
    figure, axes = _square_axes(title)
    axes.scatter(inputs[:, 0], targets[:, 0], s=14, label="data", color="tab:blue")
    axes.plot(xs, fitted, color="tab:red", linewidth=2, label="network")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def dataset(*, inputs: np.ndarray, targets: np.ndarray, classes: int | None, title: str) -> bytes:
    """The tutorials' plot_data: 2-D points coloured by class (or by value), or y against x for
    one feature."""
    figure, axes = _square_axes(title)
    if inputs.shape[1] == 2:
        if classes is not None:
            _scatter_classes(axes, inputs, targets, classes)
        else:
            points = axes.scatter(inputs[:, 0], inputs[:, 1], c=targets[:, 0], s=20, cmap="viridis")
            figure.colorbar(points, ax=axes, label="target")
        axes.set_xlabel("x[0]")
        axes.set_ylabel("x[1]")
    else:
        values = targets if targets.ndim == 1 else targets[:, 0]
        axes.scatter(inputs[:, 0], values, s=14, color="tab:blue")
        axes.set_xlabel("x")
        axes.set_ylabel("class" if classes is not None else "y")
    axes.grid(alpha=0.3)
    return _png(figure)


def samples(
    *, pictures: np.ndarray, labels: Sequence[str], predicted: Sequence[str] | None, title: str
) -> bytes:
    """A grid of uint8 pictures (N, C, H, W), each titled with its label; with predictions, a
    wrong one is titled "label -> predicted" in red."""
    columns = math.ceil(math.sqrt(len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    figure = Figure(figsize=SQUARE, dpi=DPI)
    figure.suptitle(title)
    for index, picture in enumerate(pictures):
        axes = figure.add_subplot(rows, columns, index + 1)
        grey = picture.shape[0] == 1
        image = picture[0] if grey else picture.transpose(1, 2, 0)
        axes.imshow(image, cmap="gray" if grey else None, vmin=0, vmax=255, interpolation="nearest")
        axes.set_axis_off()
        text, colour = labels[index], "black"
        if predicted is not None and predicted[index] != labels[index]:
            text, colour = f"{labels[index]} -> {predicted[index]}", "red"
        axes.set_title(text, fontsize=8, color=colour)
    return _png(figure)


# Classes up to which each cell of a confusion matrix shows its count and each class its name.
ANNOTATED_CLASSES = 20


def confusion(*, matrix: np.ndarray, names: Sequence[str], title: str) -> bytes:
    """A confusion matrix: true classes down, predicted across, each cell shaded by its share of
    its true class, with its count written in when there are few classes."""
    # Laid out around the class names, however long they are.
    figure = Figure(figsize=SQUARE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    classes = len(names)
    if classes <= ANNOTATED_CLASSES:
        ticks = np.arange(classes)
        axes.set_xticks(ticks, labels=names)
        axes.tick_params(axis="x", labelrotation=45 if classes > 5 else 0)
        axes.set_yticks(ticks, labels=names)
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    return _png(figure)
