"""Loss functions by name, and how many predictions a batch got right."""

from collections.abc import Callable

import torch
from torch.nn import functional

from service.specs import LossName

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def half_sum_squared(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed 004's loss: 0.5 * sum((prediction - target)**2), summed over the batch, not averaged."""
    return 0.5 * ((prediction - target) ** 2).sum()


LOSSES: dict[LossName, LossFunction] = {
    "cross_entropy": functional.cross_entropy,
    "bce_with_logits": functional.binary_cross_entropy_with_logits,
    "mse": functional.mse_loss,
    "l1": functional.l1_loss,
    "huber": functional.huber_loss,
    "half_sum_squared": half_sum_squared,
}


def count_correct(*, output: torch.Tensor, target: torch.Tensor, loss: LossName) -> torch.Tensor:
    """Correct predictions in a classification batch, as a device tensor (no sync).

    cross_entropy: the arg-max class; bce_with_logits: class 1 where the logit is positive.
    """
    if loss == "bce_with_logits":
        return ((output > 0) == (target > 0.5)).sum()
    return (output.argmax(dim=1) == target).sum()
