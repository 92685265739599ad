"""What a plot draws: a job's own samples, a dataset's, and whether a plot applies to a job."""

import math

import numpy as np
import torch
from sqlalchemy.orm import Session

from service import datasets, specs
from service.errors import Conflict
from service.inference.evaluation import evaluate
from service.inference.loading import LoadedNetwork
from service.inference.lookup import Target
from service.specs import JobSpec
from service.training import holdout, randomness
from service.training.datasets import Tensors, make_dataset, seeded

# Values beyond this cannot be laid out on axes (their range overflows).
LARGEST_DRAWABLE = 1e30

Arrays = tuple[np.ndarray, np.ndarray]


def job_tensors(session: Session, *, spec: JobSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The job's samples as its worker drew them (see datasets.seeded), as stored (pictures stay
    uint8); Conflict if they were an upload that no longer exists."""
    dataset = spec.dataset
    if isinstance(dataset, specs.UploadedData):
        return datasets.load_arrays(session, dataset_id=dataset.id)
    assert spec.seed is not None  # a stored spec is normalised
    return make_dataset(seeded(dataset, seed=spec.seed))


def held_out(session: Session, *, spec: JobSpec) -> tuple[Tensors, bool]:
    """The job's validation split as its worker held it out (same seed, same stream), and True;
    or, for a job without one, all its samples and False."""
    assert spec.seed is not None  # a stored spec is normalised
    inputs, targets = job_tensors(session, spec=spec)
    train, validation = holdout.split(
        inputs=inputs,
        targets=targets,
        fraction=spec.validation_fraction,
        generator=randomness.generator(spec.seed, stream="validation"),
    )
    return (train, False) if validation is None else (validation, True)


def confusion(
    *, loaded: LoadedNetwork, target: Target, inputs: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    """The checkpoint's confusion matrix on the samples (rows true classes, columns predicted),
    as evaluate computes it."""
    result = evaluate(loaded=loaded, target=target, inputs=inputs, targets=targets)
    assert result.confusion_matrix is not None  # a classifier's evaluation has one
    return np.array(result.confusion_matrix, dtype=np.int64)


def job_samples(session: Session, *, spec: JobSpec) -> Arrays:
    """The job's samples as float32 rows, and their targets (see job_tensors)."""
    return _arrays(job_tensors(session, spec=spec))


def spec_samples(dataset: specs.DatasetSpec) -> Arrays:
    """A generated or inline dataset's samples (an uploaded one's come from its row)."""
    return _arrays(make_dataset(dataset))


def _arrays(tensors: tuple[torch.Tensor, torch.Tensor]) -> Arrays:
    inputs, targets = tensors
    return inputs.float().reshape(len(inputs), -1).numpy(), targets.numpy()


def thin(inputs: np.ndarray, targets: np.ndarray, *, most: int) -> Arrays:
    """At most `most` samples, taken evenly over the whole set (every class keeps its share)."""
    if len(inputs) <= most:
        return inputs, targets
    keep = np.unique(np.linspace(0, len(inputs) - 1, most).round().astype(np.int64))
    return inputs[keep], targets[keep]


def check_drawable(inputs: np.ndarray, targets: np.ndarray, *, what: str) -> None:
    for name, values in (("inputs", inputs), ("targets", targets)):
        largest = float(np.abs(values).max()) if values.size else 0.0
        if not math.isfinite(largest) or largest > LARGEST_DRAWABLE:
            raise Conflict(
                f"{what} has {name} as large as {largest:g}; values beyond "
                f"{LARGEST_DRAWABLE:g} cannot be drawn"
            )


def plottable_inputs(input_shape: tuple[int, ...], *, what: str) -> None:
    """A dataset plot draws one or two features; say so for anything else."""
    if input_shape not in ((1,), (2,)):
        raise Conflict(
            f"{what} has samples of shape {list(input_shape)}; a dataset plot draws "
            "samples of 1 feature (y against x) or 2 (points in the plane)"
        )
