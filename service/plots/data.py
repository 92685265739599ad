"""What a plot draws: a job's own samples, a dataset's, and whether a plot applies to a job."""

import math

import numpy as np
import torch
from sqlalchemy.orm import Session

from service import datasets, specs
from service.errors import Conflict
from service.specs import JobSpec
from service.training.datasets import make_dataset, seeded

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
