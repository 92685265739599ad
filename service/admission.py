"""What a job must pass before it is queued, and the row that queues it: the spec checked
against its data and dry-run (training/plan.py), the size limits, the key's active-job limit.
Used by a job's submission (jobs.py) and by a sweep's trials (sweeps/)."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch
from sqlalchemy.orm import Session

from service import datasets, repository, repository_datasets, storage
from service import repository_storage as storage_sql
from service.errors import InvalidSpec, TooManyJobs
from service.ids import new_id
from service.settings import Settings
from service.specs import JobSpec
from service.statuses import JobStatus
from service.tables import Job
from service.training.datasets import describe_dataset
from service.training.plan import DataShape, Plan, plan

# How long a caller over the active-jobs limit is told to wait before trying again.
RETRY_AFTER_SECONDS = 30


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SizeLimits:
    """The limits on what one job may train; a sweep keeps those in force when it was
    submitted, for the trials it draws later (sweeps stored before a field existed lack it,
    hence the defaults)."""

    max_parameters: int
    max_sample_epochs: int
    max_storage_bytes_per_key: int | None = None
    cpu_only: bool = False  # bf16 is CUDA autocast

    @classmethod
    def of(cls, settings: Settings) -> "SizeLimits":
        return cls(
            max_parameters=settings.max_parameters,
            max_sample_epochs=settings.max_sample_epochs,
            max_storage_bytes_per_key=settings.max_storage_bytes_per_key,
            cpu_only=settings.device == "cpu" or not torch.cuda.is_available(),
        )


def prepare(session: Session, *, spec: JobSpec, owner_id: str, limits: SizeLimits) -> Plan:
    """The planned (normalised) spec; InvalidSpec if it cannot train or is over a limit."""
    data = _data_shape(session, spec=spec, owner_id=owner_id)
    planned = plan(spec, data=data)
    _check_size(planned, data=data, limits=limits)
    storage.check_room(
        session,
        owner_id=owner_id,
        # At least its weights, float32, in one checkpoint.
        adding=4 * planned.parameters,
        what="the job's checkpoints",
        limit_bytes=limits.max_storage_bytes_per_key,
    )
    return planned


def _data_shape(session: Session, *, spec: JobSpec, owner_id: str) -> DataShape:
    """The shapes of the data a submitted spec names; an upload's come from its row, which must
    exist and belong to the caller (a shape the client wrote into the spec is not trusted)."""
    if spec.dataset.kind != "uploaded":
        return describe_dataset(spec.dataset)
    # Held against a concurrent delete until this submission commits (PostgreSQL).
    storage_sql.share_dataset(session, dataset_id=spec.dataset.id)
    row = repository_datasets.get_dataset(session, dataset_id=spec.dataset.id, owner_id=owner_id)
    if row is None:
        raise InvalidSpec(
            f"dataset {spec.dataset.id!r} does not exist; upload one with POST /v1/datasets"
        )
    return describe_dataset(spec.dataset, uploaded=datasets.shape_of(row))


def _check_size(planned: Plan, *, data: DataShape, limits: SizeLimits) -> None:
    if planned.parameters > limits.max_parameters:
        raise InvalidSpec(
            f"the network has {planned.parameters:,} parameters; the limit is "
            f"{limits.max_parameters:,} (SERVICE_MAX_PARAMETERS): use fewer or smaller layers"
        )
    sample_epochs = data.samples * planned.spec.epochs
    if sample_epochs > limits.max_sample_epochs:
        raise InvalidSpec(
            f"{data.samples:,} samples x {planned.spec.epochs:,} epochs = {sample_epochs:,}; the "
            f"limit is {limits.max_sample_epochs:,} (SERVICE_MAX_SAMPLE_EPOCHS): "
            "train fewer epochs or on fewer samples"
        )
    if planned.spec.precision == "bf16" and limits.cpu_only:
        raise InvalidSpec(
            "precision 'bf16' is CUDA autocast, and this service trains on the CPU "
            "(SERVICE_DEVICE); use precision 'fp32'"
        )


def check_room(session: Session, *, owner_id: str, settings: Settings, needed: int = 1) -> None:
    """TooManyJobs unless the key can have `needed` more jobs queued or running."""
    active = repository.count_active_jobs(session, owner_id=owner_id)
    limit = settings.max_active_jobs_per_key
    if active + needed <= limit:
        return
    wanted = "" if needed == 1 else f", and this sweep would queue {needed} at once"
    raise TooManyJobs(
        f"this key has {active} queued or running jobs of {limit} allowed "
        f"(SERVICE_MAX_ACTIVE_JOBS_PER_KEY){wanted}; wait for some to finish or cancel them",
        retry_after=RETRY_AFTER_SECONDS,
    )


def new_job(
    *,
    planned: Plan,
    owner_id: str,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    sweep_id: str | None = None,
    sweep_trial: int | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    """The row of a job queued now (not yet added to the session)."""
    return Job(
        id=new_id(),
        owner_id=owner_id,
        name=planned.spec.name,
        status=JobStatus.QUEUED,
        spec=planned.spec.model_dump(mode="json"),
        parameters=planned.parameters,
        epochs=planned.spec.epochs,
        epoch=0,
        attempt=1,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_at=now(),
        sweep_id=sweep_id,
        sweep_trial=sweep_trial,
        params=params,
    )
