"""GET /v1/sweeps/{id}/events over real HTTP, on a grid sweep an in-process worker trains while
the stream is open."""

import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.api.test_events import FAST_EVENTS, Event, read_events
from tests.conftest import create_api_key
from tests.sweeps import activation_sweep, run_trials, submit


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Poll for updates every 50 ms rather than the default 0.5 s."""
    return dict(FAST_EVENTS)


def stream(client: httpx.Client, sweep_id: str) -> Iterator[Event]:
    with client.stream("GET", f"/v1/sweeps/{sweep_id}/events") as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield from read_events(response.iter_lines())


def test_the_stream_sends_every_trials_every_epoch_once_their_ends_then_the_sweeps(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    sweep = submit(client, activation_sweep())
    received: list[Event] = []
    connected = threading.Event()

    def follow() -> None:
        for event in stream(client, sweep["id"]):
            received.append(event)
            connected.set()

    follower = threading.Thread(target=follow)
    follower.start()
    assert connected.wait(timeout=30)
    # The first two trials, queued at submission, were seen queued.
    assert [event.data["trial"] for event in received[:2]] == [1, 2]
    assert {event.data["status"] for event in received[:2]} == {"queued"}
    assert run_trials(sessions, settings) == 6
    follower.join(timeout=120)

    assert not follower.is_alive(), "the stream ends after the sweep"
    assert received[-1].event == "sweep"
    assert received[-1].data == {"status": "succeeded", "error": None}
    board = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()["trials"]
    trials = {trial["job_id"]: trial["trial"] for trial in board}
    assert sorted(trials.values()) == [1, 2, 3, 4, 5, 6]
    epochs = [event.data for event in received if event.event == "epoch"]
    sent = Counter((data["job_id"], data["epoch"]) for data in epochs)
    expected = {(job_id, epoch) for job_id in trials for epoch in range(1, 4)}
    assert sent == dict.fromkeys(expected, 1)
    for data in epochs:
        assert data["trial"] == trials[data["job_id"]]
        assert data["metrics"]["epoch"] == data["epoch"]
    # Each trial's epochs in order, as its job's metrics have them, then the status it ended in.
    for job_id in trials:
        mine = [event for event in received if event.data.get("job_id") == job_id]
        assert [e.data["epoch"] for e in mine if e.event == "epoch"] == [1, 2, 3]
        stored = client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
        assert [e.data["metrics"] for e in mine if e.event == "epoch"] == stored
        assert mine[-1].event == "status"
        assert mine[-1].data == {
            "job_id": job_id,
            "trial": trials[job_id],
            "status": "succeeded",
            "stop_reason": None,
            "error": None,
        }
        # Each status it was seen in once, in the order it went through them (a trial may be
        # created, or run, and end between two polls).
        statuses = [e.data["status"] for e in mine if e.event == "status"]
        order = ["queued", "running", "succeeded"]
        assert statuses == sorted(set(statuses), key=order.index), statuses


def test_a_finished_sweeps_stream_sends_it_all_and_ends_at_once(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    sweep = submit(client, activation_sweep())
    assert run_trials(sessions, settings) == 6

    received = list(stream(client, sweep["id"]))

    assert [event.event for event in received] == 6 * ["epoch", "epoch", "epoch", "status"] + [
        "sweep"
    ]
    assert [event.data["trial"] for event in received[:-1:4]] == [1, 2, 3, 4, 5, 6]
    assert received[-1].data == {"status": "succeeded", "error": None}


def test_another_keys_sweep_is_404_before_any_event(
    client: httpx.Client, sessions: sessionmaker[Session], server: str
) -> None:
    sweep = submit(client, activation_sweep())
    stranger = create_api_key(sessions, name="stranger")

    other = httpx.get(
        f"{server}/v1/sweeps/{sweep['id']}/events",
        headers={"Authorization": f"Bearer {stranger}"},
    )

    assert other.status_code == 404
    assert other.json()["detail"] == f"sweep {sweep['id']!r} does not exist"
    assert client.get("/v1/sweeps/0000000000000000/events").status_code == 404
