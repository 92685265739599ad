"""/v1/jobs/{id}/export: a checkpoint as an ONNX model with the job's preprocessing in it."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.api.deps import Caller, ExporterDep
from service.api.errors import responses
from service.api.routes.checkpoints import SAFETENSORS, checkpoint_file
from service.inference.export import INPUT_NAME, OUTPUT_NAME
from service.inference.lookup import parse_ref
from service.schemas import CHECKPOINT_REF_PATTERN

router = APIRouter(prefix="/v1/jobs", tags=["checkpoints"])

ONNX = SAFETENSORS


@router.get(
    "/{job_id}/export",
    response_class=Response,
    responses={
        **responses(404, 409),
        200: {
            "content": {ONNX: {"schema": {"type": "string", "format": "binary"}}},
            "description": f"An ONNX model: input `{INPUT_NAME}` (float32, samples first, any "
            f"number of them), output `{OUTPUT_NAME}` (a classifier's logits, a regression's "
            "values in the targets' units). The job's standardisation is part of the graph, so "
            "it takes the raw inputs predict takes. X-Checkpoint-Epoch, -Kind and -SHA256 say "
            "which checkpoint it holds.",
        },
    },
)
async def export_job(
    job_id: str,
    caller: Caller,
    exporter: ExporterDep,
    format: Annotated[Literal["onnx"], Query(description="The only format: onnx")] = "onnx",
    checkpoint: Annotated[
        str | None,
        # Documented, and checked by parse_ref, whose 422 says what a ref can be.
        Query(
            json_schema_extra={"pattern": CHECKPOINT_REF_PATTERN},
            description="best, final, latest or an epoch; default best, else latest",
        ),
    ] = None,
) -> Response:
    """The job's checkpoint as ONNX; 409 naming the layer if the exporter cannot take it."""
    exported = await run_in_threadpool(
        exporter.export, job_id=job_id, owner_id=caller.id, ref=parse_ref(checkpoint)
    )
    return checkpoint_file(exported.onnx, target=exported.target, suffix=format)
