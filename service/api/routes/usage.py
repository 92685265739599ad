"""/v1/usage: what the caller's key stores, and its limit."""

from fastapi import APIRouter

from service import storage
from service.api.deps import Caller, ReadSession, SettingsDep
from service.api.errors import responses
from service.schemas import DatasetUsageOut, JobUsageOut, UsageOut

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get("", response_model=UsageOut, responses=responses())
def get_usage(caller: Caller, session: ReadSession, settings: SettingsDep) -> UsageOut:
    """The caller's jobs (with their checkpoints' bytes) and datasets, largest first, and
    SERVICE_MAX_STORAGE_BYTES_PER_KEY (null: no limit)."""
    found = storage.usage(
        session, owner_id=caller.id, limit_bytes=settings.max_storage_bytes_per_key
    )
    return UsageOut(
        bytes=found.bytes,
        limit_bytes=found.limit_bytes,
        jobs=[
            JobUsageOut(
                id=entry.job.id,
                name=entry.job.name,
                status=entry.job.status,
                checkpoints=entry.checkpoints,
                bytes=entry.bytes,
            )
            for entry in found.jobs
        ],
        datasets=[
            DatasetUsageOut(id=entry.id, filename=entry.filename, bytes=entry.bytes)
            for entry in found.datasets
        ],
    )
