"""Bodies of the HTTP API's responses; the main request body, the JobSpec, is in specs.py."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.specs import MAX_EPOCHS, DatasetSpec, JobSpec
from service.statuses import JobStatus, SweepStatus
from service.sweeps.spec import SweepSpec
from service.training.hooks import EpochResult


class ErrorOut(BaseModel):
    error: str = Field(description="The error's class name, e.g. InvalidSpec.")
    detail: str = Field(description="What was wrong and what is expected.")


class EpochMetricOut(EpochResult):
    """One epoch's metrics; null where they do not apply (accuracy of a regression, val_*
    without a validation split)."""


class JobOut(BaseModel):
    id: str
    name: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    epoch: int = Field(description="The last epoch whose metrics are stored.")
    epochs: int
    attempt: int
    device: str | None
    parameters: int
    cancel_requested: bool
    error: str | None
    stop_reason: str | None = Field(
        description="Why the job ended before its last epoch, in one sentence (e.g. "
        '"cancelled at epoch 12"); null while it runs and when it trained every epoch.'
    )
    spec: JobSpec = Field(description="The normalised spec: defaults filled in, sizes written out.")
    latest: EpochMetricOut | None
    best: EpochMetricOut | None
    sweep_id: str | None = Field(default=None, description="The sweep this job is a trial of.")
    params: dict[str, Any] | None = Field(
        default=None, description="A trial's values the sweep chose: {dotted path: value}."
    )


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class MetricsOut(BaseModel):
    job_id: str
    epochs: list[EpochMetricOut]


class CheckpointOut(BaseModel):
    epoch: int
    kind: Literal["periodic", "best", "final"]
    metric: float | None
    sha256: str
    bytes: int
    created_at: datetime


class DatasetOut(BaseModel):
    id: str
    filename: str
    format: Literal["csv", "npz", "zip"]
    samples: int
    input_shape: list[int] = Field(
        description="One sample's shape; (channels, height, width) for pictures."
    )
    task: Literal["classification", "regression"]
    num_classes: int | None
    target_shape: list[int]
    class_names: list[str] | None = Field(
        description="What each class index stands for: a ZIP's folder names, sorted."
    )
    images: bool = Field(description="The inputs are uint8 pictures, scaled to [0, 1] to train.")
    sha256: str
    bytes: int
    created_at: datetime


class JobUsageOut(BaseModel):
    id: str
    name: str
    status: JobStatus
    checkpoints: int
    bytes: int  # its checkpoints' weights and state


class DatasetUsageOut(BaseModel):
    id: str
    filename: str
    bytes: int  # its stored arrays


class UsageOut(BaseModel):
    """What the caller's key stores, largest first; `limit_bytes` null when unlimited."""

    bytes: int
    limit_bytes: int | None
    jobs: list[JobUsageOut]
    datasets: list[DatasetUsageOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    detail: dict[str, Any] = {}


# --- inference ----------------------------------------------------------------------------------

CheckpointRefIn = Literal["best", "final", "latest"] | Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
# The same in a path or query: a name, or an epoch number of at most 7 digits (MAX_EPOCHS), so
# every string that matches is a ref the service looks up, and no number overflows a column.
CHECKPOINT_REF_PATTERN = r"^(best|final|latest|[1-9][0-9]{0,6})$"


class CheckpointUsed(BaseModel):
    epoch: int
    kind: Literal["best", "final", "latest", "periodic"] = Field(
        description="The name it was asked for by; for an epoch number, its own kind."
    )


class PredictIn(BaseModel):
    """Documents the JSON predict body; the route parses it with orjson, not through this."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] = Field(
        min_length=1,
        description="One entry per sample, each shaped like one training sample "
        "(a number or nested lists of numbers).",
        examples=[[[0.1, -0.3], [0.5, 0.2]]],
    )
    checkpoint: CheckpointRefIn | None = Field(
        default=None, description="best, final, latest or an epoch; default best, else latest."
    )
    top_k: int | None = Field(
        default=None, ge=1, description="Classification: also list each row's k likeliest classes."
    )


class ClassProbability(BaseModel):
    class_: int = Field(alias="class")
    probability: float


class PredictOut(BaseModel):
    predictions: list[Any] = Field(
        description="Classification: a class index per sample. Regression: the outputs, "
        "a number per sample for one output, a list per sample for several."
    )
    probabilities: list[list[float]] | None = Field(
        default=None,
        description="Classification: each sample's class probabilities (softmax; for one "
        "bce_with_logits output, [1 - p, p]).",
    )
    top_k: list[list[ClassProbability]] | None = Field(
        default=None,
        description="With top_k: per sample, the k likeliest classes, likeliest first.",
    )
    labels: list[str] | None = Field(
        default=None,
        description="When the job's dataset names its classes: each prediction's class name.",
    )
    checkpoint: CheckpointUsed


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: DatasetSpec = Field(
        description="A generated dataset (without a seed of its own it is drawn with seed 0), "
        "inline samples and targets, or an uploaded dataset's id."
    )
    checkpoint: CheckpointRefIn | None = None


class EvaluateOut(BaseModel):
    """Fields that do not apply to the job's task are null."""

    checkpoint: CheckpointUsed
    samples: int
    loss: float = Field(description="The job's loss function, as training measures it.")
    accuracy: float | None = None
    per_class_accuracy: list[float | None] | None = Field(
        default=None, description="Per class: the share of its samples predicted right."
    )
    confusion_matrix: list[list[int]] | None = Field(
        default=None, description="Row: the true class; column: the predicted class."
    )
    mse: float | None = None
    mae: float | None = None
    r2: float | None = Field(default=None, description="Averaged over outputs; null if constant.")


# --- event streams ------------------------------------------------------------------------------


class StatusEventOut(BaseModel):
    """The data of a `status` event on GET /v1/jobs/{id}/events."""

    status: JobStatus
    epoch: int = Field(description="The last epoch whose metrics are stored.")
    epochs: int
    attempt: int
    error: str | None
    stop_reason: str | None
    cancel_requested: bool


# --- sweeps -------------------------------------------------------------------------------------


class TrialOut(BaseModel):
    """A sweep's trial as its leaderboard shows it."""

    rank: int | None = Field(description="1 is best; null while the trial has no value.")
    trial: int = Field(description="The trial's number in its sweep, from 1.")
    job_id: str
    status: JobStatus
    params: dict[str, Any]
    value: float | None = Field(description="The sweep's metric at the trial's best epoch.")
    best_epoch: int | None
    epoch: int = Field(description="The trial's last stored epoch.")
    epochs: int
    stop_reason: str | None
    error: str | None


class TrialsOut(BaseModel):
    sweep_id: str
    metric: str
    goal: Literal["minimize", "maximize"]
    trials: list[TrialOut] = Field(description="Ranked by value; trials without one follow.")


class SweepOut(BaseModel):
    id: str
    name: str
    status: SweepStatus
    method: Literal["grid", "random", "bayes"]
    created_at: datetime
    finished_at: datetime | None
    max_trials: int = Field(description="Trials the sweep runs at most.")
    trials_created: int
    parallel: int
    counts: dict[JobStatus, int] = Field(description="Its trials by status.")
    best: TrialOut | None
    failed_trials: list[TrialOut] = Field(description="Each failed trial, with its error.")
    epochs_saved: int = Field(description="Epochs its pruned trials did not train.")
    error: str | None = Field(description="Why the sweep failed; null otherwise.")
    spec: SweepSpec


class SweepListOut(BaseModel):
    sweeps: list[SweepOut]
    next_cursor: str | None


class TrialEpochEventOut(BaseModel):
    """The data of an `epoch` event on GET /v1/sweeps/{id}/events."""

    job_id: str
    trial: int = Field(description="The trial's number in its sweep, from 1.")
    epoch: int
    metrics: EpochMetricOut


class TrialStatusEventOut(BaseModel):
    """The data of a `status` event on GET /v1/sweeps/{id}/events: a trial's new status."""

    job_id: str
    trial: int
    status: JobStatus
    stop_reason: str | None
    error: str | None


class SweepStatusEventOut(BaseModel):
    """The data of the `sweep` event that ends GET /v1/sweeps/{id}/events."""

    status: SweepStatus
    error: str | None
