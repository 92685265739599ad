"""An epoch's end, the same for a solo run and for each member of a fused one: its numbers
checked, the schedule stepped, the metrics reported, early stopping counted, the hooks asked
whether to stop, and the checkpoint the epoch takes decided.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.optim.lr_scheduler import LRScheduler

from service.errors import TrainingFailed
from service.specs import JobSpec
from service.training import early_stopping
from service.training.early_stopping import Patience
from service.training.hooks import (
    CheckpointKind,
    EpochResult,
    StopKind,
    StopReason,
    TrainingHooks,
)
from service.training.metrics import improves


@dataclass
class CheckpointPace:
    """Keeps a run's default periodic checkpoints (no checkpoint_every in its spec) at least
    `seconds` apart (SERVICE_CHECKPOINT_SECONDS; 0: a tenth of the run each). Counted from the
    run's start, so a run shorter than `seconds` takes only its final checkpoint."""

    seconds: float = 0.0
    last: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.seconds

    def taken(self) -> None:
        self.last = time.monotonic()


def checkpoint_kinds(
    spec: JobSpec, *, epoch: int, stop: StopReason | None, pace: CheckpointPace
) -> set[CheckpointKind]:
    """The kinds of checkpoint `epoch` takes, if any (the best is decided by the caller)."""
    # Early stopping ends the job where it is: that epoch is its last, as `final` says.
    if epoch == spec.epochs or (stop is not None and stop.kind == StopKind.EARLY_STOPPED):
        return {"final"}
    if stop is not None:
        return {"periodic"}
    if spec.checkpoint_every is not None:  # the user's cadence, to the epoch
        return {"periodic"} if epoch % spec.checkpoint_every == 0 else set()
    # The default: about ten over the run, paced.
    if epoch % max(1, spec.epochs // 10) == 0 and pace.due():
        return {"periodic"}
    return set()


@dataclass(frozen=True)
class EpochEnd:
    """What an epoch's numbers decide (end_epoch), for the loop to act on."""

    stop: StopReason | None  # why training ends after this epoch, short of its last; else None
    checkpoint: frozenset[CheckpointKind]  # the kinds of this epoch's checkpoint; empty: none
    metric: float | None  # this epoch's value of the spec's best_metric
    best: float | None  # the best value so far, this epoch's included
    patience: Patience  # early stopping's count after this epoch
    last: bool  # training ends after this epoch: stopped, or its last


def end_epoch(
    spec: JobSpec,
    *,
    epoch: int,
    lr: float,
    numbers: Sequence[tuple[float, float | None]],
    seconds: float,
    schedule: LRScheduler | None,
    hooks: TrainingHooks,
    best: float | None,
    patience: Patience,
    pace: CheckpointPace,
) -> EpochEnd:
    """An epoch's end, the same for a solo run and each fused member: check its loss, step the
    schedule, report its metrics, count early stopping, ask the hooks whether to stop, and
    decide its checkpoint. `numbers`: (loss, accuracy) of the training split, then of the
    validation split if there is one; `lr` the rate the epoch trained with.

    Raises TrainingFailed if a loss is not finite."""
    assert spec.best_metric is not None
    (loss, accuracy), *validated = numbers
    val_loss, val_accuracy = validated[0] if validated else (None, None)
    check_finite(loss=loss, val_loss=val_loss, epoch=epoch, lr=lr)
    if schedule is not None:
        schedule.step()
    metrics = EpochResult(
        epoch=epoch,
        loss=loss,
        accuracy=accuracy,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        lr=lr,
        seconds=seconds,
    )
    hooks.on_epoch(metrics)
    stopped_early = None
    if spec.early_stopping is not None:
        patience, stopped_early = early_stopping.observe(
            patience, rule=spec.early_stopping, epoch=epoch, metrics=metrics
        )
    # The last epoch ends training anyway, with nothing cut short. Early stopping goes before
    # the hooks: the job's work is done, and a shutdown handing it back would resume it past
    # the epoch it stopped at.
    stop = None if epoch == spec.epochs else stopped_early or hooks.should_stop(epoch=epoch)
    kinds = checkpoint_kinds(spec, epoch=epoch, stop=stop, pace=pace)
    if kinds:
        pace.taken()
    metric = getattr(metrics, spec.best_metric)
    if kinds and improves(metric, best=best, metric=spec.best_metric):
        kinds.add("best")
        best = metric
    return EpochEnd(
        stop=stop,
        checkpoint=frozenset(kinds),
        metric=metric,
        best=best,
        patience=patience,
        last=stop is not None or epoch == spec.epochs,
    )


def check_finite(*, loss: float, val_loss: float | None, epoch: int, lr: float) -> None:
    """Raise TrainingFailed, naming the epoch, if an epoch's loss is not a finite number."""
    for name, value in (("loss", loss), ("validation loss", val_loss)):
        if value is not None and not math.isfinite(value):
            raise TrainingFailed(
                f"{name} became {value} at epoch {epoch}; lower the learning rate "
                f"(now {lr:g}), set max_grad_norm, or set standardize true"
            )


def check_finite_weights(weights: dict[str, torch.Tensor], *, epoch: int) -> None:
    """Raise TrainingFailed if a weight is not finite: such a checkpoint is never stored."""
    tensors = [t for t in weights.values() if t.is_floating_point()]
    if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
        raise TrainingFailed(
            f"the weights became non-finite at epoch {epoch}; lower the learning rate "
            "or set max_grad_norm"
        )
