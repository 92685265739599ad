"""Normalised specs to train directly (the specs themselves come from tests/factories.py), and
hooks that record what training gives them."""

from dataclasses import dataclass, field
from typing import Any

import torch

from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.hooks import EpochResult, Resume, Snapshot, StopKind, StopReason
from service.training.loop import TrainingOutcome, train
from service.training.plan import plan
from tests.factories import small_spec

CPU = torch.device("cpu")


def normalised(spec: dict[str, Any]) -> JobSpec:
    """What the service stores for a submitted `spec`: validated, then planned."""
    job = JobSpec.model_validate(spec)
    return plan(job, data=describe_dataset(job.dataset)).spec


def planned(**overrides: Any) -> JobSpec:
    """The normalised small_spec(**overrides)."""
    return normalised(small_spec(**overrides))


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
