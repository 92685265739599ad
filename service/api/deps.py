"""Request dependencies as Annotated aliases: settings, sessions, the calling API key, and the
process's long-lived objects (predictor, plotter, event hub, telemetry), so that no route reads
`request.app.state` itself.

Sessions use scope="function": the transaction commits (or rolls back) when the route returns,
before the response is sent, so a client that got 202 can read what it created at once.

At most `api_threads` requests hold a session at once; the rest wait on a semaphore, holding
nothing. The pool has more connections than that, so no route ever waits for a connection held
by a session whose commit is itself waiting for a thread (which deadlocked at ~60 concurrent
requests before: tests/api/test_concurrency.py).

One route does without these: predict (`PredictRoute`, api/routes/predictions.py) checks the key
with `caller_of` and reads the predictor, its query and its body itself, because FastAPI's
per-request machinery (solving dependencies, validating parameters) costs more than a one-row
prediction. bench/predict_http.py measures it against the same endpoint written as an ordinary
route (`Caller`, `PredictorDep` and `TelemetryDep` from here, checkpoint and top_k as validated
query parameters, the body read as bytes, the same Predictor call, batching on): at 64 one-row
JSON clients, medians of 3 rounds of 2 s on 2 shared cores, PredictRoute served 6432 requests/s
at 117 us of server CPU each, the ordinary route 2013 at 277 us (0.31x the requests/s); at 16
clients 5194 against 2254, at 1 client 1298 against 1102. Every other route is ordinary.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from service import keys
from service.api.event_hub import EventHub
from service.api.telemetry import Telemetry
from service.db import transaction
from service.inference.export import Exporter
from service.inference.predictor import Predictor
from service.plots.plotter import Plotter
from service.settings import Settings
from service.tables import ApiKey

# SQLite: take the write lock up front (see db.transaction).
IMMEDIATE = {"sqlite_begin": "IMMEDIATE"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


@asynccontextmanager
async def _admitted_transaction(request: Request, *, immediate: bool) -> AsyncIterator[Session]:
    slots: anyio.Semaphore = request.app.state.session_slots
    async with slots:
        session = _sessions(request)()
        try:
            if immediate:
                await run_in_threadpool(session.connection, execution_options=IMMEDIATE)
            yield session
            await run_in_threadpool(session.commit)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.rollback)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.close)


async def _read_session(request: Request) -> AsyncIterator[Session]:
    async with _admitted_transaction(request, immediate=False) as session:
        yield session


async def _write_session(request: Request) -> AsyncIterator[Session]:
    async with _admitted_transaction(request, immediate=True) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionFactory = Annotated[sessionmaker[Session], Depends(_sessions)]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]


# A security scheme, so the OpenAPI document (and clients generated from it) knows every /v1
# route needs the key; auto_error=False leaves the wording of the 401 to keys.authenticate.
_bearer = HTTPBearer(
    auto_error=False, description="An API key: `service keys create` or data/api-key"
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    authorization = f"Bearer {credentials.credentials}" if credentials else None
    return await caller_of(request.app, authorization=authorization)


async def caller_of(app: Starlette, *, authorization: str | None) -> ApiKey:
    """The key's row for an Authorization header: from the key cache, else looked up in a
    transaction of its own, so no request holds a pooled connection while it waits for
    something else. Unauthorized when the header holds no key or an unknown one."""
    cache: keys.KeyCache = app.state.key_cache
    row = cache.get(authorization)
    if row is not None:
        return row
    sessions: sessionmaker[Session] = app.state.sessions

    def lookup() -> ApiKey:
        with transaction(sessions) as session:
            row = keys.authenticate(session, authorization=authorization, cache=cache)
        keys.mark_used(sessions, row, cache=cache)
        return row

    return await run_in_threadpool(lookup)


Caller = Annotated[ApiKey, Depends(_caller)]


# The app's long-lived objects. These are async, like every dependency on the predict and plot
# paths: FastAPI runs a plain function dependency in a worker thread, a hand-off per request.
def _app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that reads `request.app.state.<name>`; its Annotated alias gives the type."""

    async def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    read.__name__ = f"app_state_{name}"
    return read


EngineDep = Annotated[Engine, Depends(_app_state("engine"))]
SchemaHead = Annotated[str, Depends(_app_state("schema_head"))]
"""The newest migration's revision, as this code knows it."""
PredictorDep = Annotated[Predictor, Depends(_app_state("predictor"))]
ExporterDep = Annotated[Exporter, Depends(_app_state("exporter"))]
PlotterDep = Annotated[Plotter, Depends(_app_state("plotter"))]
EventHubDep = Annotated[EventHub, Depends(_app_state("events"))]
TelemetryDep = Annotated[Telemetry, Depends(_app_state("telemetry"))]
