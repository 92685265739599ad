"""/v1/jobs: submit, list, read, cancel, delete, metrics."""

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import PlainTextResponse, Response

from service import job_reads, jobs
from service.api.deps import Caller, PredictorDep, ReadSession, SettingsDep, WriteSession
from service.api.errors import responses
from service.api.views import job_out, job_page_out, metrics_csv, metrics_out
from service.schemas import JobListOut, JobOut, MetricsOut
from service.specs import JobSpec
from service.statuses import JobStatus
from service.sweeps import control

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
# PostgreSQL refuses text holding NUL: a 422 here, not a database error.
NO_NUL = r"^[^\x00]*$"


@router.post("", status_code=202, response_model=JobOut, responses=responses(413, 422, 429, 507))
def submit_job(
    spec: JobSpec,
    caller: Caller,
    session: WriteSession,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200, description="Send the same key and body again to get the same job back."
        ),
    ] = None,
) -> JobOut:
    """Validate the spec, dry-run its shapes on the meta device, and queue it."""
    job = jobs.submit(
        session, spec=spec, owner_id=caller.id, settings=settings, idempotency_key=idempotency_key
    )
    return job_out(job_reads.summary(session, job))


@router.get("", response_model=JobListOut, responses=responses(422))
def list_jobs(
    caller: Caller,
    session: ReadSession,
    status: JobStatus | None = None,
    name: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Only jobs whose name contains this."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="next_cursor of the previous page"),
    ] = None,
    sweep_id: Annotated[
        str | None, Query(max_length=64, pattern=NO_NUL, description="Only this sweep's trials.")
    ] = None,
) -> JobListOut:
    """The caller's jobs, newest first."""
    page = job_reads.page(
        session,
        owner_id=caller.id,
        status=status,
        name=name,
        limit=limit,
        cursor=cursor,
        sweep_id=sweep_id,
    )
    return job_page_out(page)


@router.get("/{job_id}", response_model=JobOut, responses=responses(404))
def get_job(job_id: str, caller: Caller, session: ReadSession) -> JobOut:
    return job_out(job_reads.job(session, job_id=job_id, owner_id=caller.id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=responses(404, 409, 507))
def cancel_job(job_id: str, caller: Caller, session: WriteSession) -> JobOut:
    """Cancel a queued job now; a running one stops at its next epoch, keeping its checkpoints."""
    job = jobs.cancel(session, job_id=job_id, owner_id=caller.id)
    return job_out(job_reads.summary(session, job))


@router.delete("/{job_id}", status_code=204, responses=responses(404, 507))
def delete_job(
    job_id: str, caller: Caller, session: WriteSession, predictor: PredictorDep
) -> Response:
    """Delete the job with its metrics and checkpoints, and give their bytes back. A running job
    stops at its worker's next write, within SERVICE_METRICS_FLUSH_SECONDS."""
    control.delete_job(session, job_id=job_id, owner_id=caller.id)
    predictor.forget(job_id)
    return Response(status_code=204)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsOut,
    responses={
        **responses(404, 422),
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV on Accept: text/csv",
        },
    },
)
def get_metrics(
    job_id: str,
    caller: Caller,
    session: ReadSession,
    since: Annotated[int, Query(ge=0, description="Only epochs after this one.")] = 0,
    accept: Annotated[str | None, Header()] = None,
) -> MetricsOut | Response:
    metrics = job_reads.metrics(session, job_id=job_id, owner_id=caller.id, since=since)
    if accept is not None and "text/csv" in accept:
        return PlainTextResponse(metrics_csv(metrics), media_type="text/csv")
    return MetricsOut(job_id=job_id, epochs=metrics_out(metrics))
