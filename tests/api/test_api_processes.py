"""`service up` with SERVICE_API_PROCESSES=2: two api processes answer on one port, the first key
is made once, /metrics sums what both processes served, and event streams work."""

import json
import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from service.tables import ApiKey
from tests.factories import spiral_spec
from tests.jobs import wait_for
from tests.servers import free_port, service_children, service_up


def scrape(url: str) -> dict[str, float]:
    """Every unlabelled sample of GET /metrics, on a new connection."""
    response = httpx.get(f"{url}/metrics", headers={"Connection": "close"})
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


def stream_events(url: str, headers: dict[str, str], job_id: str) -> list[tuple[str, str]]:
    """The (event, data) pairs of the job's event stream, read until the server ends it."""
    events: list[tuple[str, str]] = []
    kind = ""
    with httpx.stream(
        "GET", f"{url}/v1/jobs/{job_id}/events", headers=headers, timeout=120
    ) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, line.removeprefix("data: ")))
    return events


def test_two_api_processes_share_the_port_the_first_key_metrics_and_streams(
    settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"port": free_port(), "workers": 1, "api_processes": 2})
    log = tmp_path / "up.log"
    with service_up(settings, log_path=log) as up:
        url = f"http://127.0.0.1:{settings.port}"
        apis = service_children(up.pid, "api")
        assert len(apis) == 2
        assert len(service_children(up.pid, "worker")) == 1

        # One key, made by `up` before any api process started.
        key = settings.api_key_file.read_text().strip()
        assert log.read_text().count(key) == 1
        with transaction(sessions) as session:
            assert session.scalar(select(func.count()).select_from(ApiKey)) == 1
        headers = {"Authorization": f"Bearer {key}"}

        submitted = httpx.post(f"{url}/v1/jobs", json=spiral_spec(epochs=30), headers=headers)
        assert submitted.status_code == 202
        job_id = submitted.json()["id"]
        events = stream_events(url, headers, job_id)
        epochs = [data for kind, data in events if kind == "epoch"]
        assert [json.loads(data)["epoch"] for data in epochs] == list(range(1, 31))
        assert events[-1][0] == "status"
        assert '"status":"succeeded"' in events[-1][1]

        # Each new connection goes to one process or the other, as the kernel hashes it: in
        # 30, both get some (all 30 to one: odds of 2 in 2**30). Each process loads the
        # network on its first prediction, so a scrape that counts 2 loads, 2 networks in
        # memory and 30 predictions sums both processes, whichever of them answers it.
        body = {"inputs": [[0.1, -0.3]], "checkpoint": "final"}
        for _ in range(30):
            answer = httpx.post(
                f"{url}/v1/jobs/{job_id}/predict",
                json=body,
                headers={**headers, "Connection": "close"},
            )
            assert answer.status_code == 200, answer.text
        expected = {
            "service_prediction_latency_seconds_count": 30,
            "service_network_cache_size": 2,
            "service_network_cache_misses_total": 2,
            "service_network_cache_hits_total": 28,
        }

        def counted() -> dict[str, float]:
            metrics = scrape(url)
            return {name: metrics[name] for name in expected}

        # Each process publishes its cache counts within a second.
        wait_for(lambda: counted() == expected, timeout=30)
        for _ in range(6):
            assert counted() == expected

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]
