"""Check a job spec against its data before any work starts, and write out its normalised form.

`plan` fills in every default that depends on the task or the data (task, loss, seed,
best_metric, early stopping's metric, the cosine schedule's t_max, each
layer's input size, and an upload's shapes, so a job keeps predicting after its dataset is gone),
dry-runs the network on the meta device, and refuses, with a message saying what to change,
any spec that could not train. It allocates no real memory, so the api can call it on every
submission.
"""

import secrets
from dataclasses import asdict, dataclass, replace
from math import prod
from typing import Any

from service import layers, specs
from service.errors import InvalidSpec
from service.specs import JobSpec, LossName, Task, task_mismatch
from service.training.datasets import describe_dataset, kind_of
from service.training.holdout import validation_size
from service.training.shapes import DataShape, format_shape
from service.training.tracing import TracedNetwork, trace_network

__all__ = ["DataShape", "Plan", "job_shape", "plan"]

DEFAULT_LOSS: dict[Task, LossName] = {"classification": "cross_entropy", "regression": "mse"}
# Layers that keep the number of features, so the Linear before them decides the output size.
ELEMENTWISE_LAYERS = (
    layers.ReLU,
    layers.LeakyReLU,
    layers.ELU,
    layers.GELU,
    layers.PReLU,
    layers.Hardshrink,
    layers.Sigmoid,
    layers.Tanh,
    layers.Softplus,
    layers.SiLU,
    layers.Identity,
    layers.Pow,
    layers.Dropout,
    layers.BatchNorm1d,
    layers.LayerNorm,
)


@dataclass(frozen=True)
class Plan:
    spec: JobSpec  # normalised: every default and inferred size written out
    parameters: int


def job_shape(spec: JobSpec) -> DataShape:
    """The shapes of the data a planned job trains on, as its task reads it, from its normalised
    spec alone: it records an upload's shapes, so this holds after the dataset is gone."""
    return _for_task(describe_dataset(spec.dataset), task=spec.task)


def _recorded_dataset(dataset: specs.DatasetSpec, *, data: DataShape) -> dict[str, Any]:
    """The dataset as the normalised spec stores it: an upload with its shapes written in."""
    fields = dataset.model_dump()
    if isinstance(dataset, specs.UploadedData):
        if dataset.shape is not None and dataset.shape != data:
            raise InvalidSpec(
                f"dataset.shape is {asdict(dataset.shape)} but dataset {dataset.id!r} has "
                f"{asdict(data)}; leave dataset.shape out, the service writes it"
            )
        fields["shape"] = data
    return fields


def _for_task(data: DataShape, *, task: Task | None) -> DataShape:
    """The data as the job's task reads it: class labels may serve as regression values."""
    if task is None or task == data.task:
        return data
    if task == "regression":
        return replace(data, task="regression", num_classes=None, target_shape=(1,))
    raise InvalidSpec(
        "task 'classification' needs class labels (integers 0, 1, ...) as targets, "
        "but this dataset's targets are real values; use task 'regression'"
    )


def _choose_loss(spec: JobSpec, *, data: DataShape) -> LossName:
    loss = spec.loss or DEFAULT_LOSS[data.task]
    problem = task_mismatch(
        task=data.task,
        loss=loss,
        best_metric=spec.best_metric,
        stop_metric=spec.stop_metric,
        inferred=spec.task is None,
    )
    if problem is not None:
        raise InvalidSpec(problem)
    return loss


def _output_hint(traced: TracedNetwork, *, size: int) -> str:
    """What to change so the output has `size` features, naming the layer when one decides it."""
    for index in reversed(range(len(traced.layers))):
        layer = traced.layers[index]
        if isinstance(layer, layers.Linear):
            return f"set out_features of layer {index} (Linear) to {size}"
        if not isinstance(layer, ELEMENTWISE_LAYERS):
            break
    return f"end the network with a layer giving {size} features per sample, e.g. a Linear"


def _check_output(
    traced: TracedNetwork, *, data: DataShape, loss: LossName, task_inferred: bool
) -> None:
    """The network's output must fit the task's targets and the loss."""
    if loss == "bce_with_logits" and data.num_classes != 2:
        raise InvalidSpec(
            "loss bce_with_logits needs exactly 2 classes (labels 0 and 1), but the dataset "
            f"has {data.num_classes}; use cross_entropy"
        )
    expected: tuple[int, ...]
    if loss == "bce_with_logits":
        expected, what = (1,), "2 classes, which bce_with_logits reads from one output"
    elif data.task == "classification":
        expected, what = (data.num_classes or 0,), f"{data.num_classes} classes"
    else:
        expected = data.target_shape
        what = f"targets of shape {format_shape((0, *expected))}"
    output = traced.output_shape
    if output[1:] == expected:
        return
    if len(output) == len(expected) + 1 and len(expected) == 1:
        fix = _output_hint(traced, size=expected[0])
    else:
        fix = f"change the layers so the output has shape {format_shape((0, *expected))}"
    if task_inferred and data.task == "classification":
        fix += "; or, if the targets are values rather than classes, set task 'regression'"
    raise InvalidSpec(
        f"the network's output has shape {format_shape(output)} but the dataset has {what}; {fix}"
    )


def _check_batches(spec: JobSpec, *, data: DataShape, traced: TracedNetwork) -> None:
    """Enough samples for the split and the batches, and two or more per BatchNorm channel."""
    validation = validation_size(samples=data.samples, fraction=spec.validation_fraction)
    train = data.samples - validation
    if spec.validation_fraction > 0 and not 0 < validation < data.samples:
        raise InvalidSpec(
            f"validation_fraction {spec.validation_fraction} of {data.samples} samples leaves "
            f"{validation} for validation and {train} for training; both need at least one"
        )
    if spec.batch_size is None:
        smallest = train
    elif spec.drop_last:
        if train < spec.batch_size:
            raise InvalidSpec(
                f"batch_size {spec.batch_size} with drop_last drops all {train} training samples; "
                "lower batch_size or set drop_last false"
            )
        smallest = spec.batch_size
    else:
        smallest = train % spec.batch_size or min(spec.batch_size, train)
    if smallest > 1:
        return
    for index, (layer, shape) in enumerate(zip(traced.layers, traced.input_shapes, strict=True)):
        if isinstance(layer, layers.BatchNorm1d | layers.BatchNorm2d) and prod(shape[2:]) == 1:
            raise InvalidSpec(
                f"layer {index} ({layer.type}) needs batches of 2 or more samples in training, "
                f"but with {train} training samples at batch_size {spec.batch_size} one batch "
                "holds a single sample; "
                "set drop_last true or change batch_size"
            )


def _check_pictures(spec: JobSpec, *, data: DataShape) -> None:
    """normalize and augment need pictures; standardize is for features."""
    if data.images:
        if spec.standardize:
            raise InvalidSpec(
                "standardize rescales each feature; this dataset holds pictures, whose pixels "
                "are scaled to [0, 1]: set normalize 'per_channel' instead"
            )
        return
    for field, value in (("normalize", spec.normalize), ("augment", spec.augment)):
        if value is not None:
            raise InvalidSpec(
                f"{field} applies to pictures (digits, shapes, or an upload of pictures), but "
                f"this dataset's samples are features of shape {list(data.input_shape)}; leave "
                f"{field} out" + (", or set standardize true" if field == "normalize" else "")
            )


def plan(spec: JobSpec, *, data: DataShape) -> Plan:
    """The normalised spec and its parameter count; InvalidSpec if it cannot train as written.

    `data`: the shapes of the data the spec names, from `describe_dataset` (for an upload, from
    its stored row). Idempotent: planning a normalised spec again returns an equal spec.
    """
    recorded = _recorded_dataset(spec.dataset, data=data)
    _check_pictures(spec, data=data)
    data = _for_task(data, task=spec.task)
    loss = _choose_loss(spec, data=data)
    traced = trace_network(spec.model.layers, input_shape=data.input_shape)
    if traced.parameters == 0:
        raise InvalidSpec(
            "the network has no parameters to train; add a layer that has some, e.g. a Linear"
        )
    # Whole-number targets of inline or uploaded data read as classes unless the spec says not.
    labels_guessed = spec.task is None and kind_of(spec.dataset).task_from_targets
    _check_output(traced, data=data, loss=loss, task_inferred=labels_guessed)
    _check_batches(spec, data=data, traced=traced)
    best_metric = spec.best_metric or ("val_loss" if spec.validation_fraction > 0 else "loss")
    fields = spec.model_dump()
    fields.update(
        dataset=recorded,
        task=data.task,
        loss=loss,
        model={"layers": [layer.model_dump() for layer in traced.layers]},
        # A random seed is still a seed: stored in the spec, the job can be rerun exactly.
        seed=spec.seed if spec.seed is not None else secrets.randbelow(2**63),
        best_metric=best_metric,
    )
    if spec.early_stopping is not None:
        fields["early_stopping"] = {
            **spec.early_stopping.model_dump(),
            "metric": spec.early_stopping.metric or best_metric,
        }
    if isinstance(spec.schedule, specs.CosineSchedule):
        fields["schedule"] = {
            **spec.schedule.model_dump(),
            "t_max": spec.schedule.t_max or spec.epochs,
        }
    return Plan(spec=JobSpec.model_validate(fields), parameters=traced.parameters)


WARM_UP_SPEC = JobSpec.model_validate(
    {
        "dataset": {"kind": "spiral", "points_per_class": 1},
        "model": {"layers": [{"type": "Linear", "out_features": 3}]},
        "optimizer": {"name": "sgd"},
        "epochs": 1,
        "seed": 0,
    }
)


def warm_up() -> None:
    """Plan a tiny spec once: torch loads its meta-device kernels on first use (about 2 s),
    which the api would otherwise charge to its first submission."""
    plan(WARM_UP_SPEC, data=describe_dataset(WARM_UP_SPEC.dataset))
