"""The FastAPI application, built from Settings."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
import torch
from fastapi import FastAPI

from service import keys, migrations, storage, wakeup
from service.api.errors import install_error_handlers
from service.api.event_hub import EventHub
from service.api.limits import BodySizeLimit
from service.api.routes import (
    checkpoints,
    dashboard,
    datasets,
    docs,
    events,
    exports,
    health,
    jobs,
    monitoring,
    plots,
    predictions,
    sweeps,
    usage,
)
from service.api.telemetry import Telemetry
from service.db import make_engine, make_session_factory
from service.inference.export import Exporter
from service.inference.predictor import Predictor
from service.plots.plotter import Plotter
from service.settings import Settings
from service.training import plan as planning

DESCRIPTION = """Train PyTorch networks from declarative job specs and serve their predictions.

Every /v1 route needs `Authorization: Bearer <key>`. Errors are
`{"error": "<ClassName>", "detail": "<what was wrong and what is expected>"}`."""


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(
        settings.database_url,
        pool_size=settings.api_threads,
        timeout_seconds=settings.database_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Requests holding a session, and threads to run them on; the pool above has more
        # connections than either (see api/deps.py).
        app.state.session_slots = anyio.Semaphore(settings.api_threads)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        torch.set_num_threads(settings.predict_threads)
        await anyio.to_thread.run_sync(planning.warm_up)
        # What is alive now (modules, torch, the app) lives as long as the process: frozen, it
        # is left out of the garbage collector's full passes, which otherwise walk it all and
        # stalled every request in flight for ~200 ms (predict's p99 at 64 clients: 231 ms,
        # 22 ms frozen; bench/predict_http.py).
        gc.collect()
        gc.freeze()
        publishing = asyncio.create_task(app.state.telemetry.publish_forever())
        yield
        publishing.cancel()
        gc.unfreeze()
        await app.state.events.close()
        engine.dispose()

    app = FastAPI(
        title="PyTorch training service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by routes/docs.py from vendored copies, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_session_factory(engine)
    # A commit that queues a job wakes the idle workers (service/wakeup.py).
    wakeup.ring_on_commit(app.state.sessions, wakeup.open_doorbell(settings))
    # A commit that deleted jobs or datasets gives their bytes back (service/storage.py).
    storage.reclaim_after_commits(app.state.sessions)
    app.state.schema_head = migrations.head_revision()
    app.state.key_cache = keys.KeyCache(ttl=settings.key_cache_seconds)
    app.state.predictor = Predictor(settings=settings, sessions=app.state.sessions)
    app.state.exporter = Exporter(sessions=app.state.sessions)
    app.state.plotter = Plotter(
        settings=settings, sessions=app.state.sessions, predictor=app.state.predictor
    )
    app.state.events = EventHub(
        sessions=app.state.sessions, poll_seconds=settings.events_poll_seconds
    )
    app.state.telemetry = Telemetry(
        sessions=app.state.sessions,
        predictor=app.state.predictor,
        plotter=app.state.plotter,
        events=app.state.events,
        multiprocess_dir=settings.prometheus_multiproc_dir,
    )

    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    # Routes are matched in order: the busiest, predict, first.
    predictions.add_predict_route(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(sweeps.router)
    app.include_router(datasets.router)
    app.include_router(checkpoints.router)
    app.include_router(exports.router)
    app.include_router(predictions.router)
    app.include_router(events.router)
    app.include_router(plots.router)
    app.include_router(usage.router)
    app.include_router(monitoring.router)
    app.include_router(docs.router)
    app.include_router(dashboard.router)
    return app
