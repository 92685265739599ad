"""Epoch loss and accuracy, kept on the device and read with one sync per epoch; which way each
metric improves."""

import math

import torch

from service.specs import ACCURACY_METRICS, LossName, MetricName
from service.training.losses import count_correct

# Outputs held before their correct predictions are counted: 4 MiB of float32 at most.
PENDING_ELEMENTS = 1 << 20


class EpochTotals:
    """An epoch's per-step losses and correct counts, left on the device until read.

    Steps only append: the weighting and summing happen once, in `read`, and correct predictions
    are counted over many steps' outputs at once (an arg-max, a compare and a sum per step cost
    a SimpleNN mini-batch step more than holding its 64 x 10 outputs for a while).
    """

    def __init__(self, *, loss: LossName, classification: bool) -> None:
        self.loss_name = loss
        self.classification = classification
        self.losses: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.correct: list[torch.Tensor] = []
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (output, target) uncounted
        self.pending_elements = 0

    def add(self, *, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        self.losses.append(loss.detach())
        self.sizes.append(len(target))
        if self.classification:
            self.pending.append((output.detach(), target))
            self.pending_elements += output.numel()
            if self.pending_elements >= PENDING_ELEMENTS:
                self._count_pending()

    def _count_pending(self) -> None:
        if not self.pending:
            return
        outputs, targets = zip(*self.pending, strict=True)
        self.correct.append(
            count_correct(
                output=outputs[0] if len(outputs) == 1 else torch.cat(outputs),
                target=targets[0] if len(targets) == 1 else torch.cat(targets),
                loss=self.loss_name,
            )
        )
        self.pending.clear()
        self.pending_elements = 0

    @property
    def samples(self) -> int:
        return sum(self.sizes)

    def values(self) -> torch.Tensor:
        """Every step's loss, then the correct counts, as one float64 tensor on the device."""
        self._count_pending()
        losses = torch.stack(self.losses)
        if not self.correct:
            return losses.double()
        return torch.cat((losses.double(), torch.stack(self.correct).double()))

    def read(self, values: list[float]) -> tuple[float, float | None]:
        """(mean loss, accuracy or None) from this epoch's `values()` read back to the host.

        The weighted sum is exact (fsum of float64 products of float32 losses and batch sizes),
        so a full-batch epoch's loss is its one step's loss: (loss * n) / n.
        """
        steps = len(self.losses)
        loss = math.fsum(v * n for v, n in zip(values[:steps], self.sizes, strict=True))
        if not self.classification:
            return loss / self.samples, None
        return loss / self.samples, math.fsum(values[steps:]) / self.samples


def read_totals(*totals: EpochTotals) -> list[tuple[float, float | None]]:
    """(mean loss, accuracy or None) of each, all with one device-to-host sync."""
    tensors = [each.values() for each in totals]
    values = torch.cat(tensors).tolist()
    out = []
    for each, tensor in zip(totals, tensors, strict=True):
        out.append(each.read(values[: len(tensor)]))
        values = values[len(tensor) :]
    return out


def improves(
    value: float | None, *, best: float | None, metric: MetricName, min_delta: float = 0.0
) -> bool:
    """Whether `value` of `metric` beats `best` by more than `min_delta`: lower is better for
    losses, higher for accuracies. A tie does not improve, so the earlier epoch stays best."""
    if value is None:
        return False
    if best is None:
        return True
    if metric in ACCURACY_METRICS:
        return value > best + min_delta
    return value < best - min_delta
