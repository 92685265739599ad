"""GET /metrics after known activity: database numbers at scrape time, this process's counts."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.training.hooks import EpochResult
from service.worker.loop import Worker
from tests.factories import tiny_spec
from tests.jobs import claimed_hooks


def scrape(server: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics (fetched without a key) by name and labels."""
    response = httpx.get(f"{server}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def run_by_hand(sessions: sessionmaker[Session], settings: Settings, *, epochs: int) -> str:
    """Claim the oldest queued job as a worker would and store `epochs` epochs of 0.25 s."""
    hooks = claimed_hooks(sessions, settings, token="by-hand")
    for epoch in range(1, epochs + 1):
        hooks.on_epoch(
            EpochResult(
                epoch=epoch,
                loss=1.0,
                accuracy=0.5,
                val_loss=None,
                val_accuracy=None,
                lr=0.01,
                seconds=0.25,
            )
        )
    hooks.flush()
    return hooks.job_id


def test_metrics_report_jobs_queue_throughput_predictions_and_plots(
    client: httpx.Client, server: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    def submit() -> str:
        response = client.post("/v1/jobs", json=tiny_spec(epochs=3))
        assert response.status_code == 202
        return str(response.json()["id"])

    trained = submit()
    assert Worker(settings=settings, sessions=sessions).run_once()
    submit()
    run_by_hand(sessions, settings, epochs=4)
    submit()
    submit()
    cancelled = submit()
    client.post(f"/v1/jobs/{cancelled}/cancel")
    for rows in ([[0.0, 0.1], [1.0, 1.0]], [[0.5, 0.5]] * 3, [[0.2, 0.9]]):
        assert client.post(f"/v1/jobs/{trained}/predict", json={"inputs": rows}).status_code == 200
    for _ in range(2):
        assert client.get(f"/v1/jobs/{trained}/plots/curves.png").status_code == 200

    metrics = scrape(server)

    for status, count in (
        ("queued", 2),
        ("running", 1),
        ("succeeded", 1),
        ("failed", 0),
        ("cancelled", 1),
    ):
        assert metrics["service_jobs", (("status", status),)] == count, status
    assert metrics["service_queue_depth", ()] == 2
    assert 0 < metrics["service_queue_oldest_age_seconds", ()] < 600
    # The running job's 4 epochs took 0.25 s each.
    assert metrics["service_training_epochs_per_second", ()] == 4.0
    assert metrics["service_epochs_stored", ()] == 3 + 4
    assert metrics["service_prediction_latency_seconds_count", ()] == 3
    assert metrics["service_prediction_batch_rows_count", ()] == 3
    assert metrics["service_prediction_batch_rows_sum", ()] == 2 + 3 + 1
    assert metrics["service_prediction_batch_rows_bucket", (("le", "2.0"),)] == 2
    assert metrics["service_network_cache_misses_total", ()] == 1
    assert metrics["service_network_cache_hits_total", ()] == 2
    assert metrics["service_plots_drawn_total", ()] == 1
    assert metrics["service_plot_cache_hits_total", ()] == 1
    assert metrics["service_network_cache_size", ()] == 1
    assert metrics["service_event_streams", ()] == 0


def test_an_empty_service_reports_zeros(server: str) -> None:
    metrics = scrape(server)

    assert metrics["service_queue_depth", ()] == 0
    assert metrics["service_queue_oldest_age_seconds", ()] == 0
    assert metrics["service_training_epochs_per_second", ()] == 0
    assert metrics["service_prediction_latency_seconds_count", ()] == 0


@pytest.mark.parametrize("settings_overrides", [{"predict_batching": False}])
def test_unbatched_predictions_report_their_rows_too(
    client: httpx.Client, server: str, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job_id = client.post("/v1/jobs", json=tiny_spec()).json()["id"]
    assert Worker(settings=settings, sessions=sessions).run_once()
    for rows in ([[0.0, 0.1]] * 5, [[0.5, 0.5]] * 7):
        assert client.post(f"/v1/jobs/{job_id}/predict", json={"inputs": rows}).status_code == 200

    metrics = scrape(server)

    assert metrics["service_prediction_batch_rows_count", ()] == 2
    assert metrics["service_prediction_batch_rows_sum", ()] == 12
