"""The JobSpec: what a client sends to POST /v1/jobs, validated before any work starts.

Every default sits here, next to a comment saying why. Nothing in a spec is executed as code:
layer types are an allow-list and their fields are torch's own keyword names.
Sizes the data decides (`in_features`, `in_channels`, `num_features`, `normalized_shape`) and an
upload's shapes may be left out; `service.training.plan` writes them into the normalised spec
stored on the Job.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from service.layers import NetworkSpec
from service.spec_types import PositiveInt, Seed, Strict, Task
from service.training.shapes import DataShape

MAX_EPOCHS = 1_000_000

# --- datasets -----------------------------------------------------------------------------------


class SpiralData(Strict):
    """Seeds 000/001: `classes` interleaved spiral arms in 2-D."""

    kind: Literal["spiral"]
    classes: int = Field(default=3, ge=2, le=100)
    points_per_class: int = Field(default=1000, ge=1)
    noise: float = Field(default=0.2, ge=0)
    # None: draw from the job's seeded stream, as the tutorial does.
    seed: Seed | None = None


class SumBinsData(Strict):
    """Seed 002: standard-normal features, labelled by which bin their sum falls in."""

    kind: Literal["sum_bins"]
    samples: int = Field(default=1000, ge=1)
    features: int = Field(default=784, ge=1)
    # The tutorial's edges: sum < -10 is class 0, ..., sum >= 30 is class 9.
    edges: list[float] = Field(default=[-10, -5, 0, 5, 10, 15, 20, 25, 30], min_length=1)
    seed: Seed | None = None

    @model_validator(mode="after")
    def _edges_increase(self) -> "SumBinsData":
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing, e.g. [-10, -5, 0, 5]")
        return self


class QuadraticData(Strict):
    """Seed 004: x = linspace(-1, 1, samples), y = 3 x^2 + 2 + noise * rand."""

    kind: Literal["quadratic"]
    samples: int = Field(default=100, ge=2)
    noise: float = Field(default=0.2, ge=0)
    seed: Seed | None = None


class InlineData(Strict):
    """Samples and targets written into the spec itself, for small experiments."""

    kind: Literal["inline"]
    inputs: list[Any] = Field(
        min_length=1, description="One entry per sample, each a number or nested list."
    )
    targets: list[Any] = Field(
        min_length=1, description="One entry per sample: class index or value(s)."
    )

    @model_validator(mode="after")
    def _same_length(self) -> "InlineData":
        if len(self.inputs) != len(self.targets):
            raise ValueError(
                f"inputs has {len(self.inputs)} samples but targets has {len(self.targets)}; "
                "give one target per input"
            )
        return self


class UploadedData(Strict):
    """A dataset stored earlier with POST /v1/datasets."""

    kind: Literal["uploaded"]
    id: str = Field(min_length=1, max_length=64)
    # None: the service writes the upload's shapes here at submission, so a job keeps predicting
    # (and telling its inputs' shape) after the dataset itself is gone.
    shape: DataShape | None = Field(
        default=None,
        description="Written by the service at submission: the upload's shapes. Leave it out; "
        "if given, it must match the upload.",
    )


class DigitsData(Strict):
    """The UCI handwritten digits: 1,797 grey 8x8 pictures of 0-9, shipped with the service."""

    kind: Literal["digits"]


class ShapesData(Strict):
    """Grey pictures of circles, squares and triangles, drawn with a random position and scale."""

    kind: Literal["shapes"]
    samples: int = Field(default=3000, ge=1)
    # The pictures' side in pixels.
    size: int = Field(default=32, ge=8, le=256)
    # Standard deviation of Gaussian noise added to every pixel, on the [0, 1] scale.
    noise: float = Field(default=0.1, ge=0)
    seed: Seed | None = None


DatasetSpec = Annotated[
    SpiralData | SumBinsData | QuadraticData | InlineData | UploadedData | DigitsData | ShapesData,
    Field(discriminator="kind"),
]


# --- optimizers and schedules -------------------------------------------------------------------


class SGD(Strict):
    name: Literal["sgd"]
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.0, ge=0)
    dampening: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "SGD":
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0; set momentum, e.g. 0.9")
        return self


class Adagrad(Strict):
    name: Literal["adagrad"]
    lr: float = Field(default=0.01, gt=0)
    lr_decay: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    initial_accumulator_value: float = Field(default=0.0, ge=0)
    eps: float = Field(default=1e-10, gt=0)


class RMSprop(Strict):
    name: Literal["rmsprop"]
    lr: float = Field(default=0.01, gt=0)
    alpha: float = Field(default=0.99, ge=0, le=1)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.0, ge=0)
    centered: bool = False


class Adam(Strict):
    name: Literal["adam"]
    lr: float = Field(default=1e-3, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.999,
    )
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    amsgrad: bool = False


class AdamW(Adam):
    name: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: float = Field(default=1e-2, ge=0)


OptimizerSpec = Annotated[SGD | Adagrad | RMSprop | Adam | AdamW, Field(discriminator="name")]


class StepSchedule(Strict):
    """Multiply the learning rate by gamma every step_size epochs."""

    kind: Literal["step"]
    step_size: PositiveInt
    gamma: float = Field(default=0.1, gt=0)


class ExponentialSchedule(Strict):
    """Multiply the learning rate by gamma every epoch."""

    kind: Literal["exponential"]
    gamma: float = Field(gt=0)


class CosineSchedule(Strict):
    """Cosine annealing from lr to eta_min over t_max epochs."""

    kind: Literal["cosine"]
    # None: the job's epochs.
    t_max: PositiveInt | None = None
    eta_min: float = Field(default=0.0, ge=0)


ScheduleSpec = Annotated[
    StepSchedule | ExponentialSchedule | CosineSchedule, Field(discriminator="kind")
]


# --- the job ------------------------------------------------------------------------------------

LossName = Literal["cross_entropy", "bce_with_logits", "mse", "l1", "huber", "half_sum_squared"]
MetricName = Literal["loss", "val_loss", "accuracy", "val_accuracy"]
CLASSIFICATION_LOSSES = frozenset({"cross_entropy", "bce_with_logits"})
VALIDATION_METRICS = frozenset({"val_loss", "val_accuracy"})
ACCURACY_METRICS = frozenset({"accuracy", "val_accuracy"})


class EarlyStopping(Strict):
    """Stop when `metric` has not improved by more than `min_delta` for `patience` epochs,
    counted from `start_epoch`; the job then ends `succeeded` at that epoch."""

    # None: the job's best_metric (val_loss when there is a validation split, else loss).
    metric: MetricName | None = None
    # Epochs in a row without enough improvement before stopping.
    patience: PositiveInt = 10
    # Lower is better for losses, higher for accuracies; only a change beyond this counts.
    min_delta: float = Field(default=0.0, ge=0)
    # Epochs before it are not watched at all: a warm-up whose metric sets no best.
    start_epoch: PositiveInt = 1


class Augment(Strict):
    """Random changes to each training picture, drawn per batch from the job's seeded stream;
    never applied to validation, evaluate or predict."""

    # Pad each side with this many black pixels, then crop a window of the picture's own size
    # at a random offset (torchvision's RandomCrop(size, padding)); 0: no crop.
    random_crop_padding: int = Field(default=0, ge=0, le=64)
    # Mirror left to right with probability one half.
    horizontal_flip: bool = False


Precision = Literal["fp32", "bf16"]


class JobSpec(Strict):
    """A training job. Optional fields left as None are filled in by `training.plan`."""

    name: str = Field(default="", max_length=200)
    dataset: DatasetSpec
    model: NetworkSpec
    optimizer: OptimizerSpec
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    # None: the whole dataset in every step, in its own order (the tutorials' full batch).
    batch_size: PositiveInt | None = None
    # None: the service picks one at submission and writes it into the stored spec.
    seed: Seed | None = None
    # None: classification for class-labelled data, regression for values.
    task: Task | None = None
    # None: cross_entropy for classification, mse for regression.
    loss: LossName | None = None
    schedule: ScheduleSpec | None = None
    shuffle: bool = True
    drop_last: bool = False
    validation_fraction: float = Field(default=0.0, ge=0, lt=1)
    # Standardise inputs (and regression targets) with the training split's mean and std.
    standardize: bool = False
    # None: about ten checkpoints over the run (every max(1, epochs // 10) epochs), each at least
    # SERVICE_CHECKPOINT_SECONDS after the last (epochs.CheckpointPace).
    checkpoint_every: PositiveInt | None = None
    # None: val_loss when there is a validation split, else loss.
    best_metric: MetricName | None = None
    max_grad_norm: float | None = Field(default=None, gt=0)
    # None: train every epoch.
    early_stopping: EarlyStopping | None = None
    # Pictures only. None: pixels scaled to [0, 1]; "per_channel": then standardised per channel
    # with the training split's mean and std, stored with the checkpoint.
    normalize: Literal["per_channel"] | None = None
    # Pictures only. None: the training pictures as they are.
    augment: Augment | None = None
    # bf16: the forward passes under CUDA autocast in bfloat16 (weights stay float32).
    precision: Precision = "fp32"

    @property
    def stop_metric(self) -> MetricName | None:
        """The metric early stopping watches, if the job stops early."""
        if self.early_stopping is None:
            return None
        return self.early_stopping.metric or self.best_metric

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        for field, metric in _metric_fields(
            best_metric=self.best_metric, stop_metric=self.stop_metric
        ):
            if metric in VALIDATION_METRICS and self.validation_fraction == 0:
                raise ValueError(
                    f"{field} {metric!r} needs a validation split; "
                    f"set validation_fraction, e.g. 0.2, or use {field} 'loss'"
                )
        if self.standardize and self.normalize is not None:
            raise ValueError(
                "standardize and normalize both rescale the inputs; for pictures use normalize "
                "'per_channel' alone"
            )
        if self.early_stopping is not None and self.early_stopping.start_epoch > self.epochs:
            raise ValueError(
                f"early_stopping.start_epoch {self.early_stopping.start_epoch} is after the last "
                f"epoch ({self.epochs}); lower start_epoch or raise epochs"
            )
        if self.task is not None:
            problem = task_mismatch(
                task=self.task,
                loss=self.loss,
                best_metric=self.best_metric,
                stop_metric=self.stop_metric,
            )
            if problem is not None:
                raise ValueError(problem)
        return self


def _metric_fields(
    *, best_metric: MetricName | None, stop_metric: MetricName | None
) -> list[tuple[str, MetricName]]:
    """The spec's fields that name a metric, with the metric each names."""
    named = (("best_metric", best_metric), ("early_stopping.metric", stop_metric))
    return [(field, metric) for field, metric in named if metric is not None]


def task_mismatch(
    *,
    task: Task,
    loss: LossName | None,
    best_metric: MetricName | None,
    stop_metric: MetricName | None = None,
    inferred: bool = False,
) -> str | None:
    """Why `loss`, `best_metric` or early stopping's metric cannot serve a job of `task`, saying
    what to use instead; None when they fit. `inferred`: the task came from the dataset, not
    from the spec."""
    if loss is not None and (loss in CLASSIFICATION_LOSSES) != (task == "classification"):
        fitting = (
            "cross_entropy or bce_with_logits"
            if task == "classification"
            else "mse, l1, huber or half_sum_squared"
        )
        if inferred:
            return (
                f"loss {loss!r} does not fit a {task} dataset; use {fitting}, "
                "or set task to match the loss"
            )
        return f"loss {loss!r} does not fit task {task!r}; use {fitting}"
    if task == "regression":
        for field, metric in _metric_fields(best_metric=best_metric, stop_metric=stop_metric):
            if metric in ACCURACY_METRICS:
                return f"accuracy is not defined for regression; use {field} 'loss' or 'val_loss'"
    return None
