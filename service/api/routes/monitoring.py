"""GET /metrics: Prometheus' text format; no key needed, like /healthz."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from service.api.telemetry import Telemetry

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
def metrics(request: Request) -> Response:
    """Jobs by status, the queue, training throughput (read from the database now); prediction
    latency, batch sizes, caches and event streams (seen by this api process)."""
    telemetry: Telemetry = request.app.state.telemetry
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
