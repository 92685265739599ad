"""Liveness and readiness; no API key needed."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from service import migrations
from service.api.deps import EngineDep, SchemaHead
from service.api.errors import error_response, responses
from service.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: responses(503)[503]})
def readyz(engine: EngineDep, head: SchemaHead) -> HealthOut | JSONResponse:
    """The database answers and its schema is at the newest migration."""
    try:
        current = migrations.current_revision(engine)
    except SQLAlchemyError as error:
        return error_response(
            503, "NotReady", f"the database is unreachable: {type(error).__name__}"
        )
    if current != head:
        return error_response(
            503, "NotReady", f"schema is at {current}, expected {head}: run `service migrate`"
        )
    return HealthOut(status="ok", detail={"schema": current})
