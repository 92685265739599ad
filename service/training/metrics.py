"""Epoch loss and accuracy, accumulated on the device and read with one sync per epoch."""

import torch

from service.specs import LossName
from service.training.losses import count_correct


class EpochTotals:
    """Sums over an epoch's optimizer steps, weighted by batch size.

    Float64 sums keep a full-batch epoch's loss exactly the step's loss: (loss * n) / n.
    """

    def __init__(self, *, device: torch.device, loss: LossName, classification: bool) -> None:
        self.loss_name = loss
        self.classification = classification
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.samples = 0

    def add(self, *, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        size = len(target)
        self.loss_sum += loss.detach().double() * size
        if self.classification:
            self.correct += count_correct(
                output=output.detach(), target=target, loss=self.loss_name
            )
        self.samples += size


def read_totals(*totals: EpochTotals) -> list[tuple[float, float | None]]:
    """(mean loss, accuracy or None) of each, all with one device-to-host sync."""
    sums = torch.stack([t for each in totals for t in (each.loss_sum, each.correct.double())])
    values = sums.tolist()
    return [
        (
            values[2 * i] / each.samples,
            values[2 * i + 1] / each.samples if each.classification else None,
        )
        for i, each in enumerate(totals)
    ]
