"""The hold-out (validation) split, and the loss and accuracy measured on it after each epoch."""

import contextlib
from collections.abc import Callable

import torch

from service.specs import LossName
from service.training.losses import LossFunction
from service.training.metrics import EpochTotals

Tensors = tuple[torch.Tensor, torch.Tensor]


def validation_size(*, samples: int, fraction: float) -> int:
    """Samples held out for validation: the fraction of all samples, rounded to the nearest."""
    return round(samples * fraction)


def split(
    *, inputs: torch.Tensor, targets: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[Tensors, Tensors | None]:
    """(training, validation) subsets drawn by a random permutation; validation None at 0."""
    size = validation_size(samples=len(inputs), fraction=fraction)
    if size == 0:
        return (inputs, targets), None
    order = torch.randperm(len(inputs), generator=generator)
    held_out, kept = order[:size], order[size:]
    return (
        (inputs.index_select(0, kept), targets.index_select(0, kept)),
        (inputs.index_select(0, held_out), targets.index_select(0, held_out)),
    )


@torch.inference_mode()
def evaluate(
    network: torch.nn.Module,
    *,
    data: Tensors,
    loss_function: LossFunction,
    loss: LossName,
    classification: bool,
    batch_size: int | None,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> EpochTotals:
    """Loss and accuracy sums over `data` in eval mode, in batches of the training batch size;
    read them with metrics.read_totals. `prepare` turns a batch of stored inputs (pictures)
    into the network's inputs."""
    inputs, targets = data
    totals = EpochTotals(loss=loss, classification=classification)
    step = batch_size or len(inputs)
    network.eval()
    try:
        for start in range(0, len(inputs), step):
            x, y = inputs[start : start + step], targets[start : start + step]
            with autocast():
                output = network(x if prepare is None else prepare(x))
                totals.add(loss=loss_function(output, y), output=output, target=y)
    finally:
        network.train()
    return totals
