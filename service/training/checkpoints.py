"""Checkpoints as safetensors bytes: the weights, and everything else a resume needs. No pickle.

`weights` is the network's state_dict. `state` holds tensors under these keys:

    optimizer.state.<param index>.<name>   optimizer tensors (Adam's exp_avg, step, ...)
    rng.cpu, rng.cuda                      torch's global generator states (uint8)
    rng.shuffle                            the shuffle generator's state (uint8)
    standardize.x_mean, .x_std, .y_mean, .y_std   present only when the job standardises, or
                                           trains on pictures: then x_mean and x_std are
                                           (C, 1, 1) in pixel units, inputs = (pixels - x_mean)
                                           / x_std (see training/pictures.py)

and scalars as JSON in the safetensors metadata: format_version, epoch, optimizer.param_groups,
optimizer.scalars (non-tensor optimizer state), schedule (the scheduler's state_dict), best,
early_stopping (the Patience fields, or null when the job does not stop early; a checkpoint
written before early stopping existed has no such key and reads as null), and for a job on
pictures `pictures`: {"normalize": "per_channel" or "none", "channel_mean", "channel_std"}, the
per-channel statistics on the [0, 1] scale (torchvision's Normalize(mean, std) after
ToTensor()), written for readers of the file; the tensors above are what inference applies.
"""

import json
import struct
from dataclasses import asdict, dataclass
from typing import Any

import safetensors
import safetensors.torch
import torch

from service.errors import ServiceError
from service.training.early_stopping import Patience
from service.training.standardize import Standardization

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrainingState:
    """What a checkpoint's `state` bytes hold, decoded."""

    epoch: int
    optimizer: dict[str, Any]  # in the form of torch's Optimizer.state_dict()
    schedule: dict[str, Any] | None
    rng: dict[str, torch.Tensor]  # "cpu", "shuffle", and "cuda" when trained there
    best: float | None  # the best value of the job's best_metric among emitted checkpoints
    standardization: Standardization | None
    patience: Patience | None = None  # early stopping's count, when the job stops early
    # A job on pictures: how they are normalised ("per_channel", or "none": pixels / 255).
    pictures_normalize: str | None = None


def encode_weights(network: torch.nn.Module) -> bytes:
    return encode_weights_dict(network.state_dict())


def encode_weights_dict(weights: dict[str, torch.Tensor]) -> bytes:
    """A state_dict as safetensors bytes (a fused member's weights come as such a dict)."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in weights.items()}
    return safetensors.torch.save(tensors)


def load_weights(network: torch.nn.Module, weights: bytes) -> None:
    """Load weights into `network` (strict: every name and shape must match), on its device."""
    try:
        network.load_state_dict(safetensors.torch.load(weights), strict=True)
    except (RuntimeError, safetensors.SafetensorError) as exc:
        raise ServiceError(f"checkpoint weights do not fit the network: {exc}") from exc


def encode_state(state: TrainingState) -> bytes:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state.optimizer["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    tensors.update({f"rng.{name}": value for name, value in state.rng.items()})
    if state.standardization is not None:
        tensors.update(state.standardization.tensors())
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "epoch": str(state.epoch),
        "optimizer.param_groups": json.dumps(state.optimizer["param_groups"]),
        "optimizer.scalars": json.dumps(scalars),
        "schedule": json.dumps(state.schedule),
        "best": json.dumps(state.best),
        "early_stopping": json.dumps(None if state.patience is None else asdict(state.patience)),
    }
    if state.pictures_normalize is not None and state.standardization is not None:
        metadata["pictures"] = json.dumps(
            {
                "normalize": state.pictures_normalize,
                "channel_mean": (state.standardization.x_mean.flatten() / 255).tolist(),
                "channel_std": (state.standardization.x_std.flatten() / 255).tolist(),
            }
        )
    cpu_tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    return safetensors.torch.save(cpu_tensors, metadata=metadata)


def read_metadata(blob: bytes) -> dict[str, str]:
    """The safetensors header's `__metadata__`: an 8-byte little-endian length, then JSON."""
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    metadata: dict[str, str] = header.get("__metadata__", {})
    return metadata


def decode_state(blob: bytes) -> TrainingState:
    try:
        return _decode_state(blob)
    except (safetensors.SafetensorError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"checkpoint state is unreadable: {exc!r}") from exc


def _decode_state(blob: bytes) -> TrainingState:
    tensors = safetensors.torch.load(blob)
    metadata = read_metadata(blob)
    version = int(metadata["format_version"])
    if version != FORMAT_VERSION:
        raise ServiceError(
            f"checkpoint state has format {version}; this service reads {FORMAT_VERSION}"
        )
    optimizer_state: dict[int, dict[str, Any]] = {}
    for index, values in json.loads(metadata["optimizer.scalars"]).items():
        optimizer_state.setdefault(int(index), {}).update(values)
    for key, tensor in tensors.items():
        if key.startswith("optimizer.state."):
            index, name = key.removeprefix("optimizer.state.").split(".", 1)
            optimizer_state.setdefault(int(index), {})[name] = tensor
    return TrainingState(
        epoch=int(metadata["epoch"]),
        optimizer={
            "state": optimizer_state,
            "param_groups": json.loads(metadata["optimizer.param_groups"]),
        },
        schedule=json.loads(metadata["schedule"]),
        rng={k.removeprefix("rng."): t for k, t in tensors.items() if k.startswith("rng.")},
        best=json.loads(metadata["best"]),
        standardization=Standardization.from_tensors(tensors),
        patience=_patience(metadata.get("early_stopping")),
    )


def _patience(stored: str | None) -> Patience | None:
    fields = json.loads(stored) if stored is not None else None
    return None if fields is None else Patience(**fields)


def read_standardization(state: bytes) -> Standardization | None:
    """The statistics inference applies to inputs (and inverts on regression outputs), if any."""
    try:
        return Standardization.from_tensors(safetensors.torch.load(state))
    except safetensors.SafetensorError as exc:
        raise ServiceError(f"checkpoint state is unreadable: {exc}") from exc
