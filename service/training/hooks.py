"""What the training loop hands to its caller, and the hooks through which it does so.

The loop knows nothing of databases or HTTP: the worker implements `TrainingHooks` to write
metric rows, checkpoint rows and heartbeats, and to ask whether it should stop.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

CheckpointKind = Literal["periodic", "best", "final"]


class EpochResult(BaseModel):
    """What one epoch measured (an EpochMetric, as DESIGN.md defines it); fields that do not
    apply are None.

    The one list of an epoch's metrics: the worker stores them as an EpochMetric row, the api
    answers them as EpochMetricOut (this model), and the CSV's columns are METRIC_FIELDS.
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    epoch: int  # 1-based
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float


METRIC_FIELDS = tuple(EpochResult.model_fields)


@dataclass(frozen=True)
class Snapshot:
    """A checkpoint as training takes it: the state after `epoch`, complete enough to predict
    from and to resume exactly.

    `weights` is the network's state_dict as safetensors bytes, loadable with strict=True into
    the network the normalised spec describes. `state` is safetensors bytes holding everything
    else a resume or a prediction needs: optimizer and schedule state, random-generator states,
    standardisation statistics, with scalars in its metadata.
    """

    epoch: int
    kinds: frozenset[CheckpointKind]
    metric: float | None  # the value of the spec's best_metric at this epoch
    weights: bytes
    state: bytes


class StopKind(Enum):
    """Why training stops before its last epoch. The loop decides EARLY_STOPPED from the
    metrics; the hooks decide the rest, PRUNED among them (a sweep's early stopping)."""

    EARLY_STOPPED = "early stopped"
    PRUNED = "pruned"
    CANCEL_REQUESTED = "cancel requested"
    OUT_OF_TIME = "out of time"
    LEASE_LOST = "lease lost"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class StopReason:
    """A decision to stop after the current epoch.

    `detail` is one sentence a person can read, written by whoever decided, since only it knows
    why (the limit that was passed, the metric that stalled): it becomes the job's stop_reason
    when the stop ends the job.
    """

    kind: StopKind
    detail: str


@dataclass(frozen=True)
class Resume:
    """A stored checkpoint to continue training from."""

    epoch: int
    weights: bytes
    state: bytes


class TrainingHooks(Protocol):
    def on_epoch(self, metrics: EpochResult) -> None:
        """Called after every epoch, before any checkpoint of that epoch."""

    def on_checkpoint(self, snapshot: Snapshot) -> None:
        """Called with each checkpoint to store; never with non-finite weights."""

    def should_stop(self, *, epoch: int) -> StopReason | None:
        """Asked after every epoch but the last (after on_epoch) unless early stopping ends
        training there; a reason ends training there, after checkpointing that epoch."""
