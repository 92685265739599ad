"""Plain functions that build training inputs, with overridable defaults, and hooks that record."""

from dataclasses import dataclass, field
from typing import Any

import torch

from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.hooks import EpochResult, Resume, Snapshot, StopKind, StopReason
from service.training.loop import TrainingOutcome, train
from service.training.plan import plan

CPU = torch.device("cpu")


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """A small classification job that trains in well under a second: mini-batches, shuffle,
    Dropout, a schedule and Adam, so it exercises every random stream."""
    spec: dict[str, Any] = {
        "name": "small",
        "dataset": {"kind": "sum_bins", "samples": 120, "features": 12, "edges": [-2, 0, 2]},
        "model": {
            "layers": [
                {"type": "Linear", "out_features": 16},
                {"type": "ReLU"},
                {"type": "Dropout", "p": 0.3},
                {"type": "Linear", "out_features": 4},
            ]
        },
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"kind": "step", "step_size": 2, "gamma": 0.5},
        "epochs": 6,
        "batch_size": 16,
        "seed": 3,
    }
    spec.update(overrides)
    return spec


def planned(**overrides: Any) -> JobSpec:
    """The normalised spec of spec_dict(**overrides)."""
    spec = JobSpec.model_validate(spec_dict(**overrides))
    return plan(spec, data=describe_dataset(spec.dataset)).spec


@dataclass
class RecordingHooks:
    """TrainingHooks that keep what they are given, and ask to stop after `stop_after` epochs."""

    stop_after: int | None = None
    epochs: list[EpochResult] = field(default_factory=list)
    checkpoints: list[Snapshot] = field(default_factory=list)

    def on_epoch(self, metrics: EpochResult) -> None:
        self.epochs.append(metrics)

    def on_checkpoint(self, snapshot: Snapshot) -> None:
        self.checkpoints.append(snapshot)

    def should_stop(self, *, epoch: int) -> StopReason | None:
        if self.stop_after is not None and len(self.epochs) >= self.stop_after:
            return StopReason(kind=StopKind.SHUTDOWN, detail=f"stopped after epoch {epoch}")
        return None

    @property
    def losses(self) -> list[float]:
        return [m.loss for m in self.epochs]

    def resume_point(self) -> Resume:
        last = self.checkpoints[-1]
        return Resume(epoch=last.epoch, weights=last.weights, state=last.state)


def run(
    spec: JobSpec, *, device: torch.device = CPU, **kwargs: Any
) -> tuple[TrainingOutcome, RecordingHooks]:
    """Train (on the CPU unless told) with recording hooks; kwargs go to RecordingHooks or
    train()."""
    hooks = RecordingHooks(stop_after=kwargs.pop("stop_after", None))
    outcome = train(spec, device=device, hooks=hooks, **kwargs)
    return outcome, hooks
