"""The api while its database is away or full: 503 with Retry-After (PostgreSQL behind a real
TCP proxy that is cut), 507 at SQLite's page limit, and back to normal by itself afterwards."""

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from service.api.app import create_app
from service.client.api import Api
from service.client.sse import ServerEvent, follow
from service.settings import Settings
from tests.conftest import POSTGRES_URL
from tests.factories import tiny_spec
from tests.proxy import Proxy
from tests.servers import serve_in_thread
from tests.sweeps import activation_sweep, submit

# The client's patience: a request during the cut must be answered well within it.
PATIENCE = httpx.Timeout(20.0)


@pytest.fixture
def proxy(backend: str) -> Iterator[Proxy]:
    if backend != "postgresql":
        pytest.skip("a database across the network: PostgreSQL (SERVICE_TEST_POSTGRES_URL)")
    assert POSTGRES_URL is not None
    upstream = make_url(POSTGRES_URL)
    with Proxy(upstream=(upstream.host or "127.0.0.1", upstream.port or 5432)) as running:
        yield running


@pytest.fixture
def proxied(settings: Settings, engine: Engine, proxy: Proxy) -> Iterator[str]:
    """The api, migrated database and all, reaching PostgreSQL only through the proxy."""
    url = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    through_proxy = settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    with serve_in_thread(through_proxy) as server:
        yield server


def test_while_postgres_is_cut_off_the_api_answers_503_then_recovers_by_itself(
    proxied: str, proxy: Proxy, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=proxied, headers=headers, timeout=PATIENCE) as client:
        job_id = client.post("/v1/jobs", json=tiny_spec()).json()["id"]
        assert client.get("/v1/jobs").status_code == 200
        events: list[ServerEvent] = []
        follower = threading.Thread(
            target=lambda: events.extend(follow(Api(url=proxied, key=api_key), job_id))
        )

        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data:")).startswith(
                'data: {"status":"queued"'
            )
            follower.start()
            proxy.cut()
            # The stream's last event: come back later; then it ends.
            rest = list(lines)
        assert rest[rest.index("event: error") - 1] == "retry: 5000"
        assert '"error":"DatabaseUnavailable"' in rest[rest.index("event: error") + 1]

        for method, path, body in [
            ("GET", "/v1/jobs", None),
            ("GET", f"/v1/jobs/{job_id}", None),
            ("POST", "/v1/jobs", tiny_spec()),
            ("GET", f"/v1/jobs/{job_id}/events", None),
            ("POST", f"/v1/jobs/{job_id}/predict", {"inputs": [[0.0, 0.1]]}),
            ("GET", f"/v1/jobs/{job_id}/plots/curves.png", None),
        ]:
            response = client.request(method, path, json=body)
            assert (response.status_code, response.headers.get("retry-after")) == (503, "5")
            assert response.json()["error"] == "DatabaseUnavailable", path
            assert response.json()["detail"].startswith("the database is unavailable (")
        # A key the api has not seen yet is looked up in the database too.
        unseen = client.get("/v1/jobs", headers={"Authorization": "Bearer sk_unseen"})
        assert (unseen.status_code, unseen.json()["error"]) == (503, "DatabaseUnavailable")
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["error"]) == (503, "NotReady")
        assert ready.json()["detail"].startswith("the database is unavailable (")
        assert client.get("/healthz").status_code == 200

        proxy.restore()
        assert client.get("/readyz").status_code == 200
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        # The CLI's follow waited out the 503s and saw the job end.
        follower.join(timeout=120)
        assert not follower.is_alive()
        assert [e.data["status"] for e in events if e.event == "status"][-1] == "cancelled"


def test_a_sweeps_stream_ends_with_an_error_event_while_postgres_is_cut_off(
    proxied: str, proxy: Proxy, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=proxied, headers=headers, timeout=PATIENCE) as client:
        sweep_id = submit(client, activation_sweep())["id"]

        with client.stream("GET", f"/v1/sweeps/{sweep_id}/events") as stream:
            lines = stream.iter_lines()
            assert '"status":"queued"' in next(line for line in lines if line.startswith("data:"))
            proxy.cut()
            rest = list(lines)
        assert rest[rest.index("event: error") - 1] == "retry: 5000"
        assert '"error":"DatabaseUnavailable"' in rest[rest.index("event: error") + 1]
        assert "event: sweep" not in rest
        reconnect = client.get(f"/v1/sweeps/{sweep_id}/events")
        assert (reconnect.status_code, reconnect.headers.get("retry-after")) == (503, "5")

        proxy.restore()
        assert client.get(f"/v1/sweeps/{sweep_id}").json()["status"] == "running"


# --- SQLite at its page limit -----------------------------------------------------------------


@pytest.fixture
def page_limit(backend: str) -> dict[str, int]:
    if backend != "sqlite":
        pytest.skip("PRAGMA max_page_count is SQLite's")
    return {"pages": 0}  # 0: no limit set


@pytest.fixture
def limited(settings: Settings, engine: Engine, page_limit: dict[str, int]) -> Iterator[str]:
    """The api on a SQLite file whose every connection gets max_page_count from page_limit
    when it is checked out; a real limit of SQLite's, per connection."""
    app = create_app(settings)

    @event.listens_for(app.state.engine, "checkout")
    def _limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if page_limit["pages"]:
            dbapi_connection.execute(f"PRAGMA max_page_count = {page_limit['pages']}")

    with serve_in_thread(settings, app=app) as server:
        yield server


def database_file(settings: Settings) -> Path:
    return Path(make_url(settings.database_url).database or "")


def csv_upload(rows: int) -> dict[str, tuple[str, bytes, str]]:
    lines = ["a,b,c,target"] + [f"{i * 0.001:.6f},{i % 7},{i % 13},{i % 2}" for i in range(rows)]
    return {"file": ("big.csv", "\n".join(lines).encode(), "text/csv")}


def inline_spec(samples: int) -> dict[str, object]:
    inputs = [[i * 0.001, (i % 7) * 0.1] for i in range(samples)]
    dataset = {"kind": "inline", "inputs": inputs, "targets": [i % 2 for i in range(samples)]}
    return tiny_spec(dataset=dataset)


def test_at_sqlites_page_limit_uploads_and_submissions_are_507_and_the_database_stays_whole(
    limited: str, api_key: str, settings: Settings, page_limit: dict[str, int]
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    path = database_file(settings)
    with httpx.Client(base_url=limited, headers=headers, timeout=PATIENCE) as client:
        assert client.post("/v1/jobs", json=tiny_spec()).status_code == 202
        with sqlite3.connect(path) as probe:
            page_limit["pages"] = probe.execute("PRAGMA page_count").fetchone()[0]

        upload = client.post("/v1/datasets", files=csv_upload(20_000))
        submission = client.post("/v1/jobs", json=inline_spec(5000))
        for response in (upload, submission):
            assert response.status_code == 507
            assert response.json()["error"] == "StorageFull"
            assert response.json()["detail"].startswith(
                "the database is full (database or disk is full); nothing was stored. "
                "Free space on the disk that holds it"
            )
        with sqlite3.connect(path) as probe:
            assert probe.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # Reads still work at the limit.
        assert len(client.get("/v1/jobs").json()["jobs"]) == 1

        page_limit["pages"] = 1_073_741_823  # SQLite's own default: space was freed
        assert client.post("/v1/datasets", files=csv_upload(20_000)).status_code == 201
        assert client.post("/v1/jobs", json=inline_spec(5000)).status_code == 202
        assert len(client.get("/v1/jobs").json()["jobs"]) == 2
    with sqlite3.connect(path) as probe:
        assert probe.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
