"""Dataset kinds, each in its own module, found through one registry by the spec's `kind`.

A kind's module holds its shapes (from the spec alone, without generating anything), its
generator, and whether it draws random numbers; its spec model sits in `service.specs`, in the
DatasetSpec union. Adding a kind is one module here, one line in KINDS, and its spec model.
Generated data is drawn exactly as the tutorials draw it, from torch's global stream (seeded by
the job) or from its own generator when the spec names a `seed`.
"""

from typing import Any

from service.specs import DatasetSpec
from service.training.datasets import (
    digits,
    inline,
    quadratic,
    shapes,
    spiral,
    sum_bins,
    uploaded,
)
from service.training.datasets.kind import DatasetKind, Tensors
from service.training.shapes import DataShape

__all__ = ["KINDS", "DatasetKind", "Tensors", "describe_dataset", "make_dataset", "seeded"]

KINDS: dict[str, DatasetKind[Any]] = {
    "spiral": spiral.KIND,
    "sum_bins": sum_bins.KIND,
    "quadratic": quadratic.KIND,
    "inline": inline.KIND,
    "uploaded": uploaded.KIND,
    "digits": digits.KIND,
    "shapes": shapes.KIND,
}
# A random dataset drawn outside a job (evaluate, a dataset plot) without a seed of its own draws
# from this one, so it is drawn the same every time. It is not the job's seed: for evaluate the
# samples are new to the network.
OUTSIDE_JOB_SEED = 0


def kind_of(dataset: DatasetSpec) -> DatasetKind[Any]:
    return KINDS[dataset.kind]


def describe_dataset(dataset: DatasetSpec, *, uploaded: DataShape | None = None) -> DataShape:
    """The dataset's shapes from its spec alone, without generating it.

    `uploaded`: an upload's shapes from its stored row, at submission, before the spec records
    them (see plan).
    """
    return uploaded if uploaded is not None else kind_of(dataset).shape(dataset)


def make_dataset(dataset: DatasetSpec, *, uploaded: Tensors | None = None) -> Tensors:
    """The dataset's (inputs, targets) on the CPU; `uploaded`: an upload's stored tensors."""
    return uploaded if uploaded is not None else kind_of(dataset).generate(dataset)


def seeded(dataset: DatasetSpec, *, seed: int = OUTSIDE_JOB_SEED) -> DatasetSpec:
    """The dataset drawn from `seed` if it draws random numbers and names no seed of its own.

    A job's worker draws such a dataset from the job's seeded stream first thing, so
    `seeded(dataset, seed=job_seed)` gives the same samples without touching this process's
    global random state.
    """
    if kind_of(dataset).random and getattr(dataset, "seed", None) is None:
        return dataset.model_copy(update={"seed": seed})
    return dataset
