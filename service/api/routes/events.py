"""/v1/jobs/{id}/events: a job's epochs and state changes as Server-Sent Events."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, WithJsonSchema

from service import jobs
from service.api.deps import Caller, EventHubDep, ReadSession, SessionFactory, SettingsDep
from service.api.errors import responses
from service.api.streams import JobStream
from service.schemas import EpochMetricOut, ErrorOut, StatusEventOut
from service.specs import MAX_EPOCHS

router = APIRouter(prefix="/v1/jobs", tags=["events"])

EVENT_STREAM = "text/event-stream"
# An epoch as the stream sends it in `id:`; at most 7 digits, as epochs are (MAX_EPOCHS).
EVENT_ID_PATTERN = r"^(0|[1-9][0-9]{0,6})$"
STREAM_DESCRIPTION = """Server-Sent Events, ending after the job's final state:

- `event: status`, data a StatusEventOut: the job's state on connect, then at every change;
- `event: epoch`, `id: <epoch>`, data an EpochMetric: every stored epoch once, in order;
- `: keep-alive` comments while nothing happens;
- `event: error`, data an ErrorOut, with `retry: <ms>`: the database failed; the stream ends
  here, and a reconnect after `retry` ms with Last-Event-ID resumes it (503 with Retry-After
  until the database is back)."""


def _inlined(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its $defs written in place: within an event's data it cannot
    refer to the document's components."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return dict(inline(schema))


def event_schema(name: str, data: type[BaseModel], **fields: dict[str, Any]) -> dict[str, Any]:
    """One event as schemathesis and OpenAPI 3.2 read a stream: an object per event."""
    return {
        "type": "object",
        "required": ["event", "data", *fields],
        "properties": {
            "event": {"const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _inlined(data),
            },
            **fields,
        },
    }


EVENT_SCHEMA = {
    "oneOf": [
        event_schema("status", StatusEventOut),
        event_schema("epoch", EpochMetricOut, id={"type": "string", "pattern": EVENT_ID_PATTERN}),
        event_schema("error", ErrorOut, retry={"type": "integer", "minimum": 0}),
    ]
}


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        **responses(404, 422),
        200: {
            "content": {EVENT_STREAM: {"schema": EVENT_SCHEMA}},
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
        str | None,
        Header(
            pattern=EVENT_ID_PATTERN,
            description="Resume after this epoch: the id of the last event received.",
        ),
        # A header is text: the document says which text, not "integer or null".
        WithJsonSchema({"type": "string", "pattern": EVENT_ID_PATTERN}),
    ] = None,
    since: Annotated[
        int, Query(ge=0, le=MAX_EPOCHS, description="Start after this epoch (Last-Event-ID wins).")
    ] = 0,
) -> StreamingResponse:
    """Follow a job live: `curl -N` or any SSE client; a reconnect with `Last-Event-ID`
    resumes after that epoch without gaps or repeats."""
    job = jobs.get(session, job_id=job_id, owner_id=caller.id)
    stream = JobStream(
        hub=hub,
        sessions=sessions,
        job_id=job.id,
        after=int(last_event_id) if last_event_id is not None else since,
        keepalive_seconds=settings.events_keepalive_seconds,
    )
    return StreamingResponse(
        stream.events(),
        media_type=EVENT_STREAM,
        # Proxies must pass each event on as it comes, not buffer the response.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
