"""The job's data made ready to train on: generated or uploaded, split into training and
validation, standardised (or, for pictures, measured for scaling), and moved to the device once.
"""

from dataclasses import dataclass

import torch

from service.specs import JobSpec
from service.training import holdout, randomness
from service.training.datasets import make_dataset
from service.training.pictures import pixel_statistics
from service.training.standardize import Standardization

Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class PreparedData:
    """The job's data on the device: training split, validation split, their statistics.
    Pictures stay uint8 (`images`): each batch is scaled with `standardization` as it is made."""

    train: Tensors
    validation: Tensors | None
    standardization: Standardization | None
    images: bool = False


def prepare_targets(targets: torch.Tensor, *, spec: JobSpec) -> torch.Tensor:
    """Targets as the loss takes them: int64 labels (N,) for cross_entropy; float32 (N, 1) for
    bce_with_logits; float32 (N, k) for regression, where class labels are read as values."""
    if spec.loss == "cross_entropy":
        return targets.long()
    if spec.loss == "bce_with_logits" or targets.dim() == 1:
        return targets.float().unsqueeze(1)
    return targets.float()


def prepare_data(
    spec: JobSpec, *, seed: int, device: torch.device, uploaded: Tensors | None
) -> PreparedData:
    """Generate, split and standardise the data on the CPU, then move it to the device once."""
    inputs, targets = make_dataset(spec.dataset, uploaded=uploaded)
    train, held_out = holdout.split(
        inputs=inputs,
        targets=prepare_targets(targets, spec=spec),
        fraction=spec.validation_fraction,
        # Its own stream: a validation split leaves the initial weights as they were.
        generator=randomness.generator(seed, stream="validation"),
    )
    standardization = None
    images = inputs.dtype == torch.uint8
    if images:
        per_channel = spec.normalize == "per_channel"
        standardization = pixel_statistics(train[0], per_channel=per_channel)
    elif spec.standardize:
        regression = spec.task == "regression"
        standardization = Standardization.fit(
            inputs=train[0], targets=train[1] if regression else None
        )
        train = standardization.apply(train)
        held_out = standardization.apply(held_out) if held_out is not None else None
    return PreparedData(
        train=(train[0].to(device), train[1].to(device)),
        validation=None if held_out is None else (held_out[0].to(device), held_out[1].to(device)),
        standardization=standardization,
        images=images,
    )
