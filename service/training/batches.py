"""Mini-batches cut from tensors already on the device: no DataLoader, no per-sample collation."""

from collections.abc import Iterator

import torch


class Batches:
    """One epoch's batches, as index slices of a permutation drawn from a dedicated generator.

    batch_size None is the full dataset every step, in its own order. Without shuffle the
    batches are consecutive slices; the last one is shorter unless drop_last.
    """

    def __init__(
        self,
        *,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int | None,
        shuffle: bool,
        drop_last: bool,
        generator: torch.Generator,
    ) -> None:
        self.inputs, self.targets = inputs, targets
        self.samples = len(inputs)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch: 87 samples at batch 8 is 11 steps, 10 with drop_last."""
        if self.batch_size is None:
            return 1
        if self.drop_last:
            return self.samples // self.batch_size
        return -(-self.samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.batch_size is None:
            yield self.inputs, self.targets
            return
        inputs, targets = self.inputs, self.targets
        if self.shuffle:
            # Drawn on the CPU so the order is the same on every device. One gather per epoch
            # makes every batch below a contiguous view; index_select gathers rows several
            # times faster than inputs[order] on the CPU.
            order = torch.randperm(self.samples, generator=self.generator).to(inputs.device)
            inputs, targets = inputs.index_select(0, order), targets.index_select(0, order)
        # split() cuts every batch's view in one call; a shorter last one is dropped by steps.
        yield from zip(
            inputs.split(self.batch_size)[: self.steps],
            targets.split(self.batch_size)[: self.steps],
            strict=True,
        )
