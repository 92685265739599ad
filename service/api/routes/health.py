"""Liveness and readiness; no API key needed."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service import migrations
from service.api.deps import EngineDep, SchemaHead
from service.api.errors import error_response, responses
from service.db import DATABASE_FAULTS, database_fault
from service.errors import DatabaseUnavailable
from service.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: responses(503)[503]})
def readyz(engine: EngineDep, head: SchemaHead) -> HealthOut | JSONResponse:
    """The database answers and its schema is at the newest migration."""
    retry = {"Retry-After": str(DatabaseUnavailable.retry_after)}
    try:
        current = migrations.current_revision(engine)
    except DATABASE_FAULTS as error:
        return error_response(503, "NotReady", database_fault(error).message, retry)
    if current != head:
        return error_response(
            503,
            "NotReady",
            f"schema is at {current}, expected {head}: run `service migrate`",
            retry,
        )
    return HealthOut(status="ok", detail={"schema": current})
