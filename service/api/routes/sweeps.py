"""/v1/sweeps: submit, list, read, leaderboard, events, cancel, delete."""

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from service.api.deps import (
    Caller,
    PredictorDep,
    ReadSession,
    SessionFactory,
    SettingsDep,
    WriteSession,
)
from service.api.errors import responses
from service.api.routes.events import EVENT_STREAM, event_schema
from service.api.sweep_stream import SweepStream
from service.api.sweep_views import sweep_out, sweep_page_out, trials_csv, trials_out
from service.schemas import (
    ErrorOut,
    SweepListOut,
    SweepOut,
    SweepStatusEventOut,
    TrialEpochEventOut,
    TrialsOut,
    TrialStatusEventOut,
)
from service.sweeps import control, reads
from service.sweeps.spec import SweepSpec

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.post("", status_code=202, response_model=SweepOut, responses=responses(422, 429, 507))
def submit_sweep(
    spec: SweepSpec, caller: Caller, session: WriteSession, settings: SettingsDep
) -> SweepOut:
    """Check every trial (bayes: the first ones, as drawn), store the sweep, queue its first
    `parallel` trials; the next ones are queued as those end."""
    sweep = control.submit(session, spec=spec, owner_id=caller.id, settings=settings)
    return sweep_out(reads.summary(session, sweep=sweep))


@router.get("", response_model=SweepListOut, responses=responses(422))
def list_sweeps(
    caller: Caller,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> SweepListOut:
    """The caller's sweeps, newest first."""
    return sweep_page_out(reads.page(session, owner_id=caller.id, limit=limit, cursor=cursor))


@router.get("/{sweep_id}", response_model=SweepOut, responses=responses(404))
def get_sweep(sweep_id: str, caller: Caller, session: ReadSession) -> SweepOut:
    return sweep_out(reads.sweep(session, sweep_id=sweep_id, owner_id=caller.id))


@router.get(
    "/{sweep_id}/trials",
    response_model=TrialsOut,
    responses={
        **responses(404),
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV on Accept: text/csv",
        },
    },
)
def get_trials(
    sweep_id: str,
    caller: Caller,
    session: ReadSession,
    accept: Annotated[str | None, Header()] = None,
) -> TrialsOut | Response:
    """The leaderboard: every trial ranked by the sweep's metric at its best epoch."""
    sweep, rows = reads.trials(session, sweep_id=sweep_id, owner_id=caller.id)
    if accept is not None and "text/csv" in accept:
        return PlainTextResponse(trials_csv(rows), media_type="text/csv")
    return trials_out(sweep, rows)


EVENTS_DESCRIPTION = """Server-Sent Events, ending after the sweep has ended and every trial
with it:

- `event: status`, data a TrialStatusEventOut: each trial's status when first seen, then at
  every change (one shorter than SERVICE_EVENTS_POLL_SECONDS may not be seen);
- `event: epoch`, data a TrialEpochEventOut: every stored epoch of every trial once, in order
  within its trial;
- `: keep-alive` comments while nothing happens;
- `event: sweep`, data a SweepStatusEventOut: the sweep's final status, the last event;
- `event: error`, data an ErrorOut, with `retry: <ms>`: the database failed; the stream ends
  here (a reconnect starts it over)."""
EVENTS_SCHEMA = {
    "oneOf": [
        event_schema("status", TrialStatusEventOut),
        event_schema("epoch", TrialEpochEventOut),
        event_schema("sweep", SweepStatusEventOut),
        event_schema("error", ErrorOut, retry={"type": "integer", "minimum": 0}),
    ]
}


@router.get(
    "/{sweep_id}/events",
    response_class=StreamingResponse,
    responses={
        **responses(404),
        200: {
            "content": {EVENT_STREAM: {"schema": EVENTS_SCHEMA}},
            "description": EVENTS_DESCRIPTION,
        },
    },
)
def sweep_events(
    sweep_id: str,
    caller: Caller,
    session: ReadSession,
    settings: SettingsDep,
    sessions: SessionFactory,
) -> StreamingResponse:
    """Follow a sweep live: its trials' epochs and status changes, until it ends."""
    sweep = control.get(session, sweep_id=sweep_id, owner_id=caller.id)
    stream = SweepStream(
        sessions=sessions,
        sweep_id=sweep.id,
        poll_seconds=settings.events_poll_seconds,
        keepalive_seconds=settings.events_keepalive_seconds,
    )
    return StreamingResponse(
        stream.events(),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{sweep_id}/cancel", response_model=SweepOut, responses=responses(404, 409, 507))
def cancel_sweep(sweep_id: str, caller: Caller, session: WriteSession) -> SweepOut:
    """Queue no more trials; cancel the queued ones, stop the running ones at their next epoch."""
    sweep = control.cancel(session, sweep_id=sweep_id, owner_id=caller.id)
    return sweep_out(reads.summary(session, sweep=sweep))


@router.delete("/{sweep_id}", status_code=204, responses=responses(404, 507))
def delete_sweep(
    sweep_id: str, caller: Caller, session: WriteSession, predictor: PredictorDep
) -> Response:
    """Delete the sweep and every trial with its metrics and checkpoints, and give their bytes
    back; a running sweep creates no more trials, and its running trials stop at their
    worker's next write, within SERVICE_METRICS_FLUSH_SECONDS."""
    for trial_id in control.delete(session, sweep_id=sweep_id, owner_id=caller.id):
        predictor.forget(trial_id)
    return Response(status_code=204)
