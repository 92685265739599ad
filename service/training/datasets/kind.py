"""What each dataset kind registers: its shapes from the spec alone, and how to make its tensors."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from service.training.shapes import DataShape

Tensors = tuple[torch.Tensor, torch.Tensor]
Spec = TypeVar("Spec")


@dataclass(frozen=True)
class DatasetKind(Generic[Spec]):
    """One dataset kind. Its spec model sits in `service.specs`, in the DatasetSpec union.

    `generate` gives (inputs, targets) on the CPU: classification targets are int64 labels of
    shape (N,), regression targets float32 of shape (N, k).
    """

    spec: type[Spec]
    shape: Callable[[Spec], DataShape]
    generate: Callable[[Spec], Tensors]
    # Draws random numbers, so its spec has a `seed`. Without one it draws from the job's seeded
    # stream in training, and from a fixed seed outside a job (see datasets.seeded).
    random: bool = False
    # The targets' values decide the task (whole numbers: class labels), so a job that names no
    # task may have meant values rather than classes; plan's messages say so.
    task_from_targets: bool = False


def generator(seed: int | None) -> torch.Generator | None:
    """None: draw from torch's global stream, which the job has seeded."""
    return None if seed is None else torch.Generator().manual_seed(seed)
