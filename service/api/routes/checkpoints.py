"""/v1/jobs/{id}/checkpoints: list a job's checkpoints, download one as safetensors."""

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from service import job_reads
from service.api.deps import Caller, ReadSession
from service.api.errors import responses
from service.api.views import checkpoints_out
from service.inference.lookup import Target, parse_ref, resolve_checkpoint
from service.schemas import CHECKPOINT_REF_PATTERN, CheckpointOut

router = APIRouter(prefix="/v1/jobs", tags=["checkpoints"])

# Safetensors, and ONNX (which has no registered media type either).
SAFETENSORS = "application/octet-stream"


@router.get("/{job_id}/checkpoints", response_model=list[CheckpointOut], responses=responses(404))
def list_checkpoints(job_id: str, caller: Caller, session: ReadSession) -> list[CheckpointOut]:
    """Oldest first; an epoch that is, say, both periodic and best is listed once per kind."""
    return checkpoints_out(job_reads.checkpoints(session, job_id=job_id, owner_id=caller.id))


@router.get(
    "/{job_id}/checkpoints/{ref}",
    response_class=Response,
    responses={
        **responses(404, 409),
        200: {
            "content": {SAFETENSORS: {"schema": {"type": "string", "format": "binary"}}},
            "description": "The network's state_dict as safetensors: load it with "
            "safetensors.torch.load_file, then load_state_dict(strict=True) into the network "
            "the job's normalised spec describes. Its sha256 is in X-Checkpoint-SHA256.",
        },
    },
)
def download_checkpoint(
    job_id: str,
    # Documented, and checked by parse_ref, whose 422 says what a ref can be.
    ref: Annotated[str, Path(json_schema_extra={"pattern": CHECKPOINT_REF_PATTERN})],
    caller: Caller,
    session: ReadSession,
) -> Response:
    """`ref`: best, final, latest or an epoch number."""
    target, row = resolve_checkpoint(
        session, job_id=job_id, owner_id=caller.id, ref=parse_ref(ref), with_blobs=True
    )
    return checkpoint_file(row.weights, target=target, suffix="safetensors")


def checkpoint_file(content: bytes, *, target: Target, suffix: str) -> Response:
    """A download of one checkpoint's bytes (or a file made from them), saying which it is."""
    filename = f"{target.job_id}-epoch-{target.epoch}.{suffix}"
    return Response(
        content,
        media_type=SAFETENSORS,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Checkpoint-SHA256": target.sha256,
            "X-Checkpoint-Epoch": str(target.epoch),
            "X-Checkpoint-Kind": target.kind,
        },
    )
