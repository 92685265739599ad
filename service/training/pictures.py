"""Batches of pictures: uint8 on the device until a batch is cut, then augmented, scaled to
[0, 1] and normalised there.

Scaling and normalising are one Standardization in pixel units, so a checkpoint stores them as
any standardised job does (`standardize.x_mean`, `standardize.x_std`, shape (C, 1, 1)) and
inference applies them unchanged: inputs = (pixels - x_mean) / x_std. Without normalize that is
x_mean 0 and x_std 255, which is pixels / 255 exactly; with normalize "per_channel", x_mean and
x_std are 255 times the training split's per-channel mean and std of pixels / 255.
"""

from dataclasses import dataclass

import torch

from service.specs import Augment
from service.training.standardize import Standardization

# Pictures summed at once in float64 when the per-channel statistics are measured.
STATISTICS_CHUNK = 4096
PIXEL_MAX = 255.0


def pixel_statistics(pictures: torch.Tensor, *, per_channel: bool) -> Standardization:
    """The scaling of uint8 pictures (N, C, H, W): /255, or per-channel standardisation with
    their population mean and std (a constant channel gets std 1/255, so it maps to 0)."""
    channels = pictures.shape[1]
    if not per_channel:
        return Standardization(
            x_mean=torch.zeros(channels, 1, 1), x_std=torch.full((channels, 1, 1), PIXEL_MAX)
        )
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in pictures.split(STATISTICS_CHUNK):
        values = chunk.double()
        total += values.sum(dim=(0, 2, 3))
        squares += values.square().sum(dim=(0, 2, 3))
    count = pictures.numel() // channels
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Standardization(
        x_mean=mean.float().view(channels, 1, 1), x_std=std.float().view(channels, 1, 1)
    )


def augment(pictures: torch.Tensor, *, spec: Augment, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, C, H, W) randomly cropped from a black-padded copy and mirrored, per picture.

    The draws come from `generator` (on the CPU, so they are the same on any device) in this
    order: crop offsets (B, 2), then flips (B,); the work happens on the pictures' device."""
    count, _, height, width = pictures.shape
    device = pictures.device
    pad = spec.random_crop_padding
    if pad > 0:
        offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator).to(device)
        padded = torch.nn.functional.pad(pictures, (pad, pad, pad, pad))
        rows = offsets[:, 0:1] + torch.arange(height, device=device)  # (B, H)
        cols = offsets[:, 1:2] + torch.arange(width, device=device)  # (B, W)
        batch = torch.arange(count, device=device).view(count, 1, 1)
        # Indexing dims 0, 2 and 3 around the channel slice gives (B, H, W, C).
        window = padded[batch, :, rows.view(count, height, 1), cols.view(count, 1, width)]
        pictures = window.permute(0, 3, 1, 2)
    if spec.horizontal_flip:
        flips = (torch.rand(count, generator=generator) < 0.5).to(device)
        pictures = torch.where(flips.view(count, 1, 1, 1), pictures.flip(3), pictures)
    return pictures


@dataclass(frozen=True)
class Pictures:
    """How a job's uint8 pictures become a network's float32 inputs, batch by batch."""

    scaling: Standardization  # on the device the pictures are on
    augmentation: Augment | None
    generator: torch.Generator  # the job's "augment" stream; checkpointed as rng.augment

    def training(self, pictures: torch.Tensor) -> torch.Tensor:
        if self.augmentation is not None:
            pictures = augment(pictures, spec=self.augmentation, generator=self.generator)
        return self.scaling.inputs(pictures.float())

    def evaluation(self, pictures: torch.Tensor) -> torch.Tensor:
        return self.scaling.inputs(pictures.float())
