"""The database's faults, made real, under a training worker: a connection killed by the server, a
lock held past busy_timeout, a full SQLite database. No job fails, no worker exits, every job ends
with the epochs and losses of an uninterrupted run."""

import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, transaction
from service.settings import Settings
from service.worker import outages
from service.worker.loop import Worker
from tests.factories import stochastic_spec, tiny_spec
from tests.jobs import history, queue, queue_spec, read, wait_for
from tests.proxy import Proxy
from tests.servers import start_service
from tests.solo import assert_like_solo

# --- telling the database's faults from the job's ------------------------------------------------


def run(engine: Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_a_lock_wait_run_out_and_a_full_database_are_outages_a_constraint_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "faults.db"
    engine = make_engine(f"sqlite:///{path}")
    run(
        engine,
        "CREATE TABLE rows (id INTEGER PRIMARY KEY, data BLOB)",
        "INSERT INTO rows (id, data) VALUES (1, x'00')",
    )

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError) as locked:
        run(engine, "PRAGMA busy_timeout=0", "INSERT INTO rows (data) VALUES (x'01')")
    holder.rollback()
    holder.close()

    with pytest.raises(OperationalError) as full:
        run(engine, "PRAGMA max_page_count=1", "INSERT INTO rows (data) VALUES (zeroblob(100000))")

    with pytest.raises(IntegrityError) as duplicate:
        run(engine, "INSERT INTO rows (id, data) VALUES (1, x'02')")
    engine.dispose()

    assert outages.outage_reason(locked.value) == outages.LOCKED
    assert outages.outage_reason(full.value) == outages.DISK_FULL
    assert outages.outage_reason(duplicate.value) is None
    assert outages.outage_reason(ValueError("a job's own error")) is None


# --- PostgreSQL: the server kills the worker's connections -------------------------------------


def named_worker(settings: Settings, name: str) -> Settings:
    """The settings with the worker's connections named, so the test can find them on the server."""
    separator = "&" if "?" in settings.database_url else "?"
    return settings.model_copy(
        update={"database_url": f"{settings.database_url}{separator}application_name={name}"}
    )


def waits_on_a_lock(sessions: sessionmaker[Session], name: str) -> bool:
    with transaction(sessions) as session:
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = :name AND wait_event_type = 'Lock'"
        )
        return bool(session.execute(query, {"name": name}).scalar())


def terminate_connections(sessions: sessionmaker[Session], name: str) -> int:
    """pg_terminate_backend on every connection the named worker holds; how many there were."""
    with transaction(sessions) as session:
        query = text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name"
        )
        return int(session.execute(query, {"name": name}).scalar() or 0)


def kill_connections_mid_flush(sessions: sessionmaker[Session], *, job_id: str, name: str) -> None:
    """Hold the job's row so that the worker's next flush waits on it, then kill every connection
    the worker holds: they fail mid-transaction, not idle in the pool (where the pool's pre-ping
    would replace them unnoticed)."""
    with transaction(sessions) as session:
        session.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": job_id})
        wait_for(lambda: waits_on_a_lock(sessions, name))
        assert terminate_connections(sessions, name) >= 1


@pytest.mark.parametrize("settings_overrides", [{"metrics_flush_seconds": 0.1}])
def test_connections_killed_mid_training_cost_the_job_nothing(
    sessions: sessionmaker[Session], settings: Settings, backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    spec = stochastic_spec(checkpoint_every=20)
    reference_id = queue_spec(sessions, settings, spec)
    Worker(settings=settings, sessions=sessions).run_once()
    reference = history(sessions, reference_id)

    job_id = queue_spec(sessions, settings, spec)
    log = tmp_path / "worker.log"
    worker = start_service(named_worker(settings, "doomed-worker"), "worker", log_path=str(log))
    try:

        def pauses() -> int:
            return log.read_text().count("paused at a database fault")

        wait_for(lambda: read(sessions, job_id).epoch >= 40, timeout=120)
        kill_connections_mid_flush(sessions, job_id=job_id, name="doomed-worker")
        wait_for(lambda: pauses() == 1)
        wait_for(lambda: read(sessions, job_id).epoch >= 80, timeout=120)
        kill_connections_mid_flush(sessions, job_id=job_id, name="doomed-worker")
        wait_for(lambda: pauses() == 2)
        wait_for(lambda: read(sessions, job_id).status == "succeeded", timeout=240)
        assert worker.poll() is None, "the worker process exited"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    job = read(sessions, job_id)
    # Its lease held all along, the worker handed the job back to itself: the same attempt.
    assert (job.status, job.attempt, job.error) == ("succeeded", 1, None)
    resumed = history(sessions, job_id)
    assert [row[0] for row in resumed[0]] == list(range(1, 301))
    assert resumed == reference
    text_of_log = log.read_text()
    assert text_of_log.count("handed back to the queue after a database fault") == 2
    assert "Traceback" not in text_of_log


@pytest.mark.parametrize("settings_overrides", [{"metrics_flush_seconds": 0.1}])
def test_a_network_cut_of_five_seconds_costs_the_training_jobs_nothing(
    sessions: sessionmaker[Session], settings: Settings, backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        pytest.skip("a network cut needs a database across a network: PostgreSQL")
    spec = stochastic_spec(checkpoint_every=20)
    reference_id = queue_spec(sessions, settings, spec)
    Worker(settings=settings, sessions=sessions).run_once()
    reference = history(sessions, reference_id)

    job_ids = [queue_spec(sessions, settings, spec) for _ in range(2)]
    upstream = make_url(settings.database_url)
    assert upstream.port is not None
    with Proxy(upstream=(upstream.host or "127.0.0.1", upstream.port)) as proxy:
        behind = upstream.set(host="127.0.0.1", port=proxy.port)
        url = behind.render_as_string(hide_password=False)
        logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
        workers = [
            start_service(
                settings.model_copy(update={"database_url": url}), "worker", log_path=str(log)
            )
            for log in logs
        ]
        try:
            wait_for(lambda: all(read(sessions, j).epoch >= 40 for j in job_ids), timeout=120)
            proxy.cut()
            time.sleep(5)
            proxy.restore()
            wait_for(
                lambda: all(read(sessions, j).status == "succeeded" for j in job_ids), timeout=240
            )
            assert all(worker.poll() is None for worker in workers), "a worker process exited"
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)

    for job_id in job_ids:
        job = read(sessions, job_id)
        assert (job.status, job.error) == ("succeeded", None)
        resumed = history(sessions, job_id)
        assert [row[0] for row in resumed[0]] == list(range(1, 301))
        assert resumed == reference
    text_of_logs = "".join(log.read_text() for log in logs)
    assert text_of_logs.count("paused at a database fault") >= 2
    assert "Traceback" not in text_of_logs


def test_a_claim_that_loses_its_connection_waits_and_the_worker_carries_on(
    sessions: sessionmaker[Session], settings: Settings, backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    log = tmp_path / "worker.log"
    worker = start_service(named_worker(settings, "idle-worker"), "worker", log_path=str(log))
    try:
        wait_for(lambda: log.exists() and "polling" in log.read_text())
        with transaction(sessions) as session:
            session.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            wait_for(lambda: waits_on_a_lock(sessions, "idle-worker"))
            assert terminate_connections(sessions, "idle-worker") >= 1
        wait_for(lambda: "the database answers again" in log.read_text())
        [job_id] = queue(sessions, settings)
        wait_for(lambda: read(sessions, job_id).status == "succeeded")
        assert worker.poll() is None, "the worker process exited"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert "waits for the database: AdminShutdown" in log.read_text()


# --- SQLite: the database file reaches its size limit ------------------------------------------


@contextmanager
def page_limited_worker(settings: Settings) -> Iterator[tuple[list[int], threading.Thread]]:
    """A worker running in a thread whose every connection has a real page limit
    (max_page_count is per connection): `pages[0]`, set from the test, at each checkout.

    Its jobs must meet the full database well before their last epoch; two CI runs' did not:
    they trained to the end and only the final write waited. So every periodic checkpoint is
    kept (a pruned one frees pages a later write fills without the file growing), and writes
    go every 0.05 s, keeping up with the training."""
    settings = settings.model_copy(
        update={"metrics_flush_seconds": 0.05, "keep_periodic_checkpoints": 1000}
    )
    pages = [1 << 30]
    engine = make_engine(settings.database_url)

    @event.listens_for(engine, "checkout")
    def _limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages[0]}")

    worker = Worker(settings=settings, sessions=make_session_factory(engine))
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        yield pages, thread
    finally:
        worker.shutdown.set()
        thread.join(timeout=60)
        engine.dispose()


def test_a_full_sqlite_database_pauses_the_job_until_space_is_freed(
    sessions: sessionmaker[Session],
    settings: Settings,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if backend != "sqlite":
        pytest.skip("PRAGMA max_page_count is SQLite's")
    caplog.set_level(logging.INFO, logger="service.worker")
    spec = stochastic_spec(checkpoint_every=20, epochs=600)
    reference_id = queue_spec(sessions, settings, spec)
    Worker(settings=settings, sessions=sessions).run_once()
    reference = history(sessions, reference_id)
    job_id = queue_spec(sessions, settings, spec)

    with page_limited_worker(settings) as (pages, thread):
        wait_for(lambda: read(sessions, job_id).epoch >= 40, timeout=120)
        pages[0] = 1  # no more pages than the file has now
        wait_for(lambda: "waits for the database: database or disk is full" in caplog.text)
        # Several tries later, it still waits, holding the job: it does not hand the job back
        # to fail again on the same write.
        time.sleep(1.0)
        assert "handed back" not in caplog.text
        paused = read(sessions, job_id)
        assert (paused.status, paused.error) == ("running", None)
        assert paused.epoch < 600
        with transaction(sessions) as session:
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert thread.is_alive()

        pages[0] = 1 << 30  # space is free again
        wait_for(lambda: read(sessions, job_id).status == "succeeded", timeout=240)
        assert thread.is_alive(), "the worker stopped"

    job = read(sessions, job_id)
    assert (job.status, job.attempt, job.error) == ("succeeded", 1, None)
    resumed = history(sessions, job_id)
    assert [row[0] for row in resumed[0]] == list(range(1, 601))
    assert resumed == reference
    assert "handed back to the queue after a database fault" in caplog.text
    with transaction(sessions) as session:
        assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_a_full_sqlite_database_pauses_a_fused_run_and_every_member_resumes(
    sessions: sessionmaker[Session],
    settings: Settings,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The members' writes share one transaction (writer.SharedFlush): when the database is
    full they pause, and each resumes from its own checkpoint, its epochs stored once."""
    if backend != "sqlite":
        pytest.skip("PRAGMA max_page_count is SQLite's")
    caplog.set_level(logging.INFO, logger="service.worker")
    # 20,482 parameters: each checkpoint (weights and Adam's state, 240 KB) needs new pages,
    # so every member's next write fails once the file may not grow.
    wide = [
        {"type": "Linear", "out_features": 4096},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 2},
    ]
    ids = [
        queue_spec(
            sessions,
            settings,
            tiny_spec(epochs=300, checkpoint_every=20, seed=seed, model={"layers": wide}),
        )
        for seed in (1, 2, 3)
    ]
    with page_limited_worker(settings) as (pages, thread):
        wait_for(lambda: all(read(sessions, i).epoch >= 40 for i in ids), timeout=120)
        assert read(sessions, ids[0]).device == "cpu (fused x3)"
        pages[0] = 1
        wait_for(lambda: "paused at a database fault" in caplog.text, timeout=120)
        # Paused or handed back, none failed.
        assert {read(sessions, i).status for i in ids} <= {"running", "queued"}
        pages[0] = 1 << 30
        wait_for(lambda: all(read(sessions, i).status == "succeeded" for i in ids), timeout=240)
        assert thread.is_alive(), "the worker stopped"

    # A failed flush of the shared transaction pauses every member; a member's own write (a
    # checkpoint stored from its training thread) pauses it alone.
    assert 1 <= caplog.text.count("paused at a database fault") <= 3
    for job_id in ids:
        job = read(sessions, job_id)
        assert (job.status, job.attempt, job.error) == ("succeeded", 1, None)
        assert_like_solo(sessions, job_id)
