"""Bodies of the HTTP API's responses; the main request body, the JobSpec, is in specs.py."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.specs import JobSpec


class ErrorOut(BaseModel):
    error: str = Field(description="The error's class name, e.g. InvalidSpec.")
    detail: str = Field(description="What was wrong and what is expected.")


class EpochMetricOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    epoch: int
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float


JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


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
    spec: JobSpec = Field(description="The normalised spec: defaults filled in, sizes written out.")
    latest: EpochMetricOut | None
    best: EpochMetricOut | None


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
    format: Literal["csv", "npz"]
    samples: int
    input_shape: list[int]
    task: Literal["classification", "regression"]
    num_classes: int | None
    target_shape: list[int]
    sha256: str
    bytes: int
    created_at: datetime


class HealthOut(BaseModel):
    status: Literal["ok"]
    detail: dict[str, Any] = {}
