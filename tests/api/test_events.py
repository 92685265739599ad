"""GET /v1/jobs/{id}/events over real HTTP, on jobs a real worker trains as the stream runs."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.factories import tiny_spec

FAST_EVENTS = {"events_poll_seconds": 0.05}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Poll for updates every 50 ms rather than the default 0.5 s."""
    return dict(FAST_EVENTS)


@dataclass
class Event:
    event: str  # "epoch", "status", or "comment" for a `: ...` line
    id: str | None
    data: Any


def read_events(lines: Iterator[str]) -> Iterator[Event]:
    """SSE as a browser parses it, comments included so keep-alives can be seen."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield Event("comment", None, line[1:].strip())
        elif line == "":
            if "data" in fields:
                data = json.loads(fields["data"])
                yield Event(fields.get("event", "message"), fields.get("id"), data)
            fields = {}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def submit(client: httpx.Client, **overrides: Any) -> str:
    response = client.post("/v1/jobs", json=tiny_spec(**overrides))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def stream(client: httpx.Client, job_id: str, **headers: str) -> Iterator[Event]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield from read_events(response.iter_lines())


def epochs_and_statuses(events: list[Event]) -> tuple[list[int], list[str]]:
    epochs = [event.data["epoch"] for event in events if event.event == "epoch"]
    statuses = [event.data["status"] for event in events if event.event == "status"]
    return epochs, statuses


def test_a_stream_open_while_a_worker_trains_yields_every_epoch_once_then_ends(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job_id = submit(client, epochs=40)
    received: list[Event] = []
    connected = threading.Event()

    def follow() -> None:
        for event in stream(client, job_id):
            received.append(event)
            connected.set()

    follower = threading.Thread(target=follow)
    follower.start()
    assert connected.wait(timeout=30)
    assert Worker(settings=settings, sessions=sessions).run_once()
    follower.join(timeout=60)

    assert not follower.is_alive(), "the stream ends after the final state"
    epochs, statuses = epochs_and_statuses(received)
    assert epochs == list(range(1, 41))
    assert statuses == ["queued", "running", "succeeded"]
    assert received[-1].event == "status"
    epoch_events = [event for event in received if event.event == "epoch"]
    assert [event.id for event in epoch_events] == [str(n) for n in range(1, 41)]
    assert set(epoch_events[-1].data) == {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
    }
    assert epoch_events[-1].data == client.get(f"/v1/jobs/{job_id}").json()["latest"]
    assert received[-1].data["epoch"] == 40
    assert received[-1].data["error"] is None


def test_last_event_id_resumes_after_that_epoch_mid_run_and_after_the_end(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job_id = submit(client, epochs=300)
    worker = threading.Thread(target=Worker(settings=settings, sessions=sessions).run_once)
    worker.start()
    first: list[Event] = []
    for event in stream(client, job_id):
        first.append(event)
        if event.event == "epoch" and event.data["epoch"] >= 5:
            break  # the client drops the connection mid-run
    last_id = [event.id for event in first if event.event == "epoch"][-1]
    assert last_id is not None

    second = list(stream(client, job_id, **{"Last-Event-ID": last_id}))
    worker.join(timeout=60)

    epochs = epochs_and_statuses(first)[0] + epochs_and_statuses(second)[0]
    assert epochs == list(range(1, 301)), "no gaps, no repeats across the reconnect"
    assert second[-1].event == "status"
    assert second[-1].data["status"] == "succeeded"

    finished = list(stream(client, job_id, **{"Last-Event-ID": "295"}))
    assert epochs_and_statuses(finished) == ([296, 297, 298, 299, 300], ["succeeded"])
    assert epochs_and_statuses(list(stream(client, job_id, **{"Last-Event-ID": "300"}))) == (
        [],
        ["succeeded"],
    )


@pytest.mark.parametrize("settings_overrides", [{**FAST_EVENTS, "events_keepalive_seconds": 0.2}])
def test_an_idle_stream_sends_keep_alives_and_ends_when_the_job_is_cancelled(
    client: httpx.Client, settings: Settings
) -> None:
    job_id = submit(client)
    received: list[Event] = []
    for event in stream(client, job_id):
        received.append(event)
        if event.event == "comment" and event.data == "keep-alive":
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert epochs_and_statuses(received) == ([], ["queued", "cancelled"])


def test_the_stream_needs_the_owners_key(
    client: httpx.Client, server: str, sessions: sessionmaker[Session]
) -> None:
    job_id = submit(client)
    path = f"/v1/jobs/{job_id}/events"
    assert httpx.get(f"{server}{path}").status_code == 401
    stranger = create_api_key(sessions, name="stranger")
    other = httpx.get(f"{server}{path}", headers={"Authorization": f"Bearer {stranger}"})
    assert other.status_code == 404
    assert other.json()["error"] == "NotFound"
    assert client.get("/v1/jobs/0000000000000000/events").status_code == 404
    bad_id = client.get(path, headers={"Last-Event-ID": "five"})
    assert bad_id.status_code == 422
    assert bad_id.json()["error"] == "InvalidRequest"
