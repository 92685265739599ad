"""Epoch loss and accuracy, kept on the device and read with one sync per epoch."""

import torch

from service.specs import LossName
from service.training.losses import count_correct


class EpochTotals:
    """An epoch's per-step losses and correct counts, left on the device until read.

    Steps only append (the weighting and summing happen once, in `sums`), so a mini-batch step
    pays for nothing but the arg-max that counts its correct predictions.
    """

    def __init__(self, *, loss: LossName, classification: bool) -> None:
        self.loss_name = loss
        self.classification = classification
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.correct: list[torch.Tensor] = []

    def add(self, *, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        self.losses.append(loss.detach())
        self.sizes.append(len(target))
        if self.classification:
            self.correct.append(
                count_correct(output=output.detach(), target=target, loss=self.loss_name)
            )

    @property
    def samples(self) -> int:
        return sum(self.sizes)

    def sums(self) -> torch.Tensor:
        """[loss weighted by batch size, correct predictions], summed on the device, float64.

        Float64 keeps a full-batch epoch's loss exactly its one step's loss: (loss * n) / n.
        """
        losses = torch.stack(self.losses).double()
        # Every batch has the same size but perhaps the last; no host-to-device copy needed.
        weights = torch.full_like(losses, self.sizes[0])
        weights[-1] = self.sizes[-1]
        correct = torch.stack(self.correct).sum() if self.correct else losses.new_zeros(())
        return torch.stack(((losses * weights).sum(), correct.double()))


def read_totals(*totals: EpochTotals) -> list[tuple[float, float | None]]:
    """(mean loss, accuracy or None) of each, all with one device-to-host sync."""
    values = torch.cat([each.sums() for each in totals]).tolist()
    return [
        (
            values[2 * i] / each.samples,
            values[2 * i + 1] / each.samples if each.classification else None,
        )
        for i, each in enumerate(totals)
    ]
