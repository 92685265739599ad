"""Real databases for every test: a migrated SQLite file, and PostgreSQL when
SERVICE_TEST_POSTGRES_URL is set (each test gets a schema of its own, dropped afterwards)."""

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from service import migrations
from service.db import make_engine, make_session_factory, transaction
from service.settings import Settings

POSTGRES_URL = os.environ.get("SERVICE_TEST_POSTGRES_URL")
NO_POSTGRES = "SERVICE_TEST_POSTGRES_URL is not set: the PostgreSQL half of this test is skipped"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(POSTGRES_URL is None, reason=NO_POSTGRES),
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the requested backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
        return
    assert POSTGRES_URL is not None
    schema = f"test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override with @pytest.mark.parametrize("settings_overrides", [{...}]) to change a setting."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, settings_overrides: dict[str, object]) -> Settings:
    return make_settings(
        database_url=database_url, data_dir=tmp_path / "data", **settings_overrides
    )


def make_settings(**overrides: object) -> Settings:
    """Settings for a test: short leases and polls so the queue moves quickly."""
    values: dict[str, object] = {
        "lease_seconds": 5.0,
        "poll_seconds": 0.05,
        "device": "cpu",
        # Several worker processes share two cores in these tests.
        "torch_threads": 1,
        # Tests count on each checkpoint of the default cadence; tests of the pace set their own.
        "checkpoint_seconds": 0.0,
        # Fused groups as large as the count and budget allow, not as fast as measured here.
        "fuse_measure": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """The settings' database, migrated to head."""
    engine = make_engine(settings.database_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def api_key(sessions: sessionmaker[Session]) -> str:
    return create_api_key(sessions, name="tests")


def create_api_key(sessions: sessionmaker[Session], *, name: str) -> str:
    from service import keys

    with transaction(sessions, immediate=True) as session:
        _, key = keys.create_key(session, name=name)
    return key


@pytest.fixture
def server(settings: Settings, engine: Engine) -> Iterator[str]:
    """The api served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    from tests.servers import serve_in_thread

    with serve_in_thread(settings) as url:
        yield url


@pytest.fixture
def client(server: str, api_key: str) -> Iterator["httpx.Client"]:
    """An HTTP client that sends the test key."""
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as http:
        yield http
