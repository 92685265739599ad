"""The doorbell on its own: real named pipes, a real database, a real LISTEN connection.

Every wait that should return at once is given 30 s: a doorbell that failed to wake it would
make the test slow and then fail, never pass.
"""

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from service import jobs, wakeup
from service.db import transaction
from service.keys import create_key
from service.settings import Settings
from service.specs import JobSpec
from tests.factories import tiny_spec
from tests.jobs import claimed, read, wait_for

AT_ONCE = 30.0  # seconds: a wait that must be woken long before this
QUIET = 0.05  # seconds: a wait that must time out, nothing having rung


def settle(listener: wakeup.Listener) -> None:
    """Wait until nothing is left to wake the listener (earlier rings, a reconnect)."""
    while listener.wait(QUIET):
        pass


def test_a_ring_wakes_every_listener_and_is_drained_by_its_wait(tmp_path: Path) -> None:
    doorbell = wakeup.PipeDoorbell(directory=tmp_path / "doorbell")
    with doorbell.listen() as first, doorbell.listen() as second:
        assert first.wait(QUIET) is False

        doorbell.ring()
        doorbell.ring()

        assert first.wait(AT_ONCE) is True
        assert second.wait(AT_ONCE) is True
        assert first.wait(QUIET) is False
        assert second.wait(QUIET) is False


def test_a_ring_before_the_wait_is_kept_for_it(tmp_path: Path) -> None:
    doorbell = wakeup.PipeDoorbell(directory=tmp_path / "doorbell")
    with doorbell.listen() as listener:
        doorbell.ring()
        assert listener.wait(AT_ONCE) is True


def test_ringing_with_no_listener_yet_does_nothing(tmp_path: Path) -> None:
    wakeup.PipeDoorbell(directory=tmp_path / "never-created").ring()

    assert not (tmp_path / "never-created").exists()


def test_a_closed_listener_takes_its_pipe_away(tmp_path: Path) -> None:
    doorbell = wakeup.PipeDoorbell(directory=tmp_path / "doorbell")
    with doorbell.listen() as listener:
        assert isinstance(listener, wakeup.PipeListener)
        assert [p.name for p in doorbell.directory.iterdir()] == [listener.path.name]

    assert list(doorbell.directory.iterdir()) == []


def test_a_ring_removes_the_pipe_of_a_worker_that_died_and_still_wakes_the_rest(
    tmp_path: Path,
) -> None:
    doorbell = wakeup.PipeDoorbell(directory=tmp_path / "doorbell")
    with doorbell.listen() as alive:
        # What a SIGKILLed worker leaves: its pipe, with nobody holding it open.
        dead = doorbell.directory / "999999-deadbeef.pipe"
        os.mkfifo(dead, 0o600)

        doorbell.ring()

        assert not dead.exists()
        assert alive.wait(AT_ONCE) is True


def test_interrupt_ends_a_wait_without_a_ring() -> None:
    with wakeup.Doorbell().listen() as listener:
        assert listener.wait(QUIET) is False
        listener.interrupt()
        assert listener.wait(AT_ONCE) is True
        assert listener.wait(QUIET) is False


def test_the_database_url_chooses_the_doorbell(tmp_path: Path) -> None:
    on_sqlite = wakeup.open_doorbell(Settings(data_dir=tmp_path))
    assert isinstance(on_sqlite, wakeup.PipeDoorbell)
    assert on_sqlite.directory == (tmp_path / "service.db-doorbell").resolve()

    on_postgres = wakeup.open_doorbell(
        Settings(database_url="postgresql+psycopg://user:p%40ss@db:5432/service?sslmode=require")
    )
    assert isinstance(on_postgres, wakeup.PostgresDoorbell)
    assert on_postgres.conninfo == "postgresql://user:p%40ss@db:5432/service?sslmode=require"

    in_memory = wakeup.open_doorbell(Settings(database_url="sqlite://"))
    assert type(in_memory) is wakeup.Doorbell


# --- through the database: a commit that queues a job rings, on either backend -------------------


def submit(session: Session, settings: Settings) -> str:
    owner, _ = create_key(session, name="wakeup")
    spec = JobSpec.model_validate(tiny_spec())
    return jobs.submit(session, spec=spec, owner_id=owner.id, settings=settings).id


def test_the_commit_that_queues_a_job_rings_and_a_rollback_does_not(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    doorbell = wakeup.open_doorbell(settings)
    wakeup.ring_on_commit(sessions, doorbell)
    with doorbell.listen() as listener:
        settle(listener)

        with sessions() as session:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            submit(session, settings)
            session.rollback()  # the request failed after the job was added
        assert listener.wait(QUIET) is False

        with transaction(sessions, immediate=True) as session:
            job_id = submit(session, settings)
            # Queued but not yet committed: no worker could claim it, so nobody is woken.
            assert listener.wait(QUIET) is False
        assert listener.wait(AT_ONCE) is True

        assert read(sessions, job_id).status == "queued"


def test_a_job_handed_back_to_the_queue_rings(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    doorbell = wakeup.open_doorbell(settings)
    wakeup.ring_on_commit(sessions, doorbell)
    with transaction(sessions, immediate=True) as session:
        submit(session, settings)
    job = claimed(sessions, settings, token="w:1")

    with doorbell.listen() as listener:
        settle(listener)
        with transaction(sessions, immediate=True) as session:
            assert jobs.release(session, job_id=job.id, lease_token="w:1")
        assert listener.wait(AT_ONCE) is True


def test_the_listen_connection_comes_back_after_postgresql_drops_it(
    backend: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    doorbell = wakeup.open_doorbell(settings)
    wakeup.ring_on_commit(sessions, doorbell)
    name = f"service worker {os.getpid()} doorbell"
    with doorbell.listen() as listener:
        with transaction(sessions) as session:
            [before] = backends_named(session, name)
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})

        # The drop is no ring; the reconnect is (rings meanwhile were lost: look now).
        wait_for(lambda: listener.wait(QUIET))
        assert listener.wait(QUIET) is False
        with transaction(sessions) as session:
            [after] = backends_named(session, name)
        assert after != before

        with transaction(sessions, immediate=True) as session:
            submit(session, settings)
        assert listener.wait(AT_ONCE) is True


def backends_named(session: Session, name: str) -> list[int]:
    rows = session.execute(
        text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": name}
    )
    return [int(pid) for pid in rows.scalars()]
