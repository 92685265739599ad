"""/v1/jobs/{id}/events: a job's epochs and state changes as Server-Sent Events."""

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from service import jobs
from service.api.deps import Caller, EventHubDep, ReadSession, SessionFactory, SettingsDep
from service.api.errors import responses
from service.api.streams import JobStream

router = APIRouter(prefix="/v1/jobs", tags=["events"])

EVENT_STREAM = "text/event-stream"
STREAM_DESCRIPTION = """Server-Sent Events, ending after the job's final state:

- `event: status`, data a StatusEventOut: the job's state on connect, then at every change;
- `event: epoch`, `id: <epoch>`, data an EpochMetric: every stored epoch once, in order;
- `: keep-alive` comments while nothing happens."""


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        **responses(404, 422),
        200: {
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
            "description": STREAM_DESCRIPTION,
        },
    },
)
def job_events(
    job_id: str,
    caller: Caller,
    session: ReadSession,
    settings: SettingsDep,
    hub: EventHubDep,
    sessions: SessionFactory,
    last_event_id: Annotated[
        int | None,
        Header(ge=0, description="Resume after this epoch: the id of the last event received."),
    ] = None,
    since: Annotated[
        int, Query(ge=0, description="Start after this epoch (Last-Event-ID wins).")
    ] = 0,
) -> StreamingResponse:
    """Follow a job live: `curl -N` or any SSE client; a reconnect with `Last-Event-ID`
    resumes after that epoch without gaps or repeats."""
    job = jobs.get(session, job_id=job_id, owner_id=caller.id)
    stream = JobStream(
        hub=hub,
        sessions=sessions,
        job_id=job.id,
        after=last_event_id if last_event_id is not None else since,
        keepalive_seconds=settings.events_keepalive_seconds,
    )
    return StreamingResponse(
        stream.events(),
        media_type=EVENT_STREAM,
        # Proxies must pass each event on as it comes, not buffer the response.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
