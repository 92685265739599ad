"""GET /metrics: Prometheus' text format; no key needed, like /healthz."""

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from service.api.deps import TelemetryDep

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format 0.0.4",
        }
    },
)
def metrics(telemetry: TelemetryDep) -> Response:
    """Jobs by status, the queue, training throughput (read from the database now); prediction
    latency, batch sizes, caches and event streams (seen by this api process)."""
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
