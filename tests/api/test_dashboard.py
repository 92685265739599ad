"""The dashboard in headless Chromium against the real api and real workers: the key prompt, a
job followed live from queued to cancelled, downloads, predictions, a stale view that cannot
cancel another job, what the page requests, and the page's assets."""

import hashlib
import json
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.browser import needs_chromium, poll, sign_in
from tests.conftest import create_api_key
from tests.factories import tiny_spec
from tests.unit.training.test_pictures import shapes_spec

pytestmark = needs_chromium


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"events_poll_seconds": 0.05}


def shown_epoch(page: "Page", *, at_least: int) -> int:  # noqa: F821
    def read() -> int:
        return int(page.inner_text("#epoch").replace(",", "") or 0)

    return poll(page, read, lambda epoch: epoch >= at_least, f"epoch {at_least} on the page")


def test_a_job_followed_from_queued_to_cancelled_with_downloads_and_a_prediction(
    page: "Page",  # noqa: F821
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    job_id = client.post(
        "/v1/jobs", json=tiny_spec(name="live", epochs=100_000, checkpoint_every=200)
    ).json()["id"]
    sign_in(page, server=server, api_key=api_key)
    page.locator(f"#jobs-table tr[data-job='{job_id}'] a").click()
    page.locator("#job-status", has_text="queued").wait_for()
    assert "waiting for a worker" in page.inner_text("#job-id")
    # Nothing can be plotted yet: nothing is asked for. The note follows the header, once the
    # page has read the job's checkpoints.
    page.locator("#plots-note", has_text="curves: after the first epoch").wait_for()

    training = threading.Thread(target=Worker(settings=settings, sessions=sessions).run_once)
    training.start()
    try:
        page.locator("#job-status", has_text="running").wait_for()
        page.locator("#job-id", has_text="cpu").wait_for()  # the device, once it has one
        seen = shown_epoch(page, at_least=10)
        shown_epoch(page, at_least=seen + 10)
        first_plot = page.inner_text("#plot-curves figcaption")
        # The plots follow training: redrawn as later checkpoints arrive.
        poll(
            page,
            lambda: page.inner_text("#plot-curves figcaption"),
            lambda caption: caption != first_plot,
            "the curves plot to be redrawn",
        )

        page.once("dialog", lambda dialog: dialog.dismiss())
        page.click("#cancel-job")
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cancel-job")
        page.locator("#job-status", has_text="cancelled").wait_for()
        page.locator("#job-stop-reason", has_text="cancelled at epoch").wait_for()
        stop_reason = page.inner_text("#job-stop-reason")
    finally:
        client.post(f"/v1/jobs/{job_id}/cancel")
        training.join(timeout=60)

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert stop_reason == f"Stopped: cancelled at epoch {job['epoch']}"
    assert page.is_hidden("#cancel-job")
    page.locator("#job-times", has_text="Finished").wait_for()

    with page.expect_download() as metrics_download:
        page.click("#download-metrics")
    api_csv = client.get(f"/v1/jobs/{job_id}/metrics", headers={"Accept": "text/csv"}).text
    assert Path(metrics_download.value.path()).read_text() == api_csv
    page.locator("#checkpoints-table tbody tr").first.wait_for()
    with page.expect_download() as checkpoint_download:
        page.locator("#checkpoints-table tbody tr").last.locator(
            "button", has_text="safetensors"
        ).click()
    final = client.get(f"/v1/jobs/{job_id}/checkpoints/latest")
    weights = Path(checkpoint_download.value.path()).read_bytes()
    assert hashlib.sha256(weights).hexdigest() == final.headers["X-Checkpoint-SHA256"]
    assert checkpoint_download.value.suggested_filename == (
        f"{job_id}-epoch-{final.headers['X-Checkpoint-Epoch']}.safetensors"
    )

    page.fill("#predict-inputs", "[[0.0, 0.1], [0.9, 1.0]]")
    page.fill("#predict-top-k", "2")
    page.click("#predict-form button[type=submit]")
    page.locator("#prediction-table").wait_for()
    expected = client.post(
        f"/v1/jobs/{job_id}/predict", json={"inputs": [[0.0, 0.1], [0.9, 1.0]], "top_k": 2}
    ).json()
    assert json.loads(page.locator("#prediction-json").text_content() or "") == expected
    rows = page.locator("#prediction-table tbody tr").all_inner_texts()
    assert [row.split("\t")[:2] for row in rows] == [
        ["1", str(expected["predictions"][0])],
        ["2", str(expected["predictions"][1])],
    ]

    assert page.evaluate("sessionStorage.getItem('service-api-key')") == api_key
    assert all(url.startswith((server, "blob:")) for url in requested), requested
    assert not any(api_key in url for url in requested), "the key never travels in a URL"
    assert page.locator("#plot-curves img").evaluate("image => image.naturalWidth") == 960


def test_an_unknown_or_foreign_job_leaves_nothing_of_the_previous_one_to_cancel(
    page: "Page",  # noqa: F821
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    queued = client.post("/v1/jobs", json=tiny_spec(name="mine")).json()["id"]
    wide = tiny_spec(
        name="wide", dataset={"kind": "sum_bins", "samples": 16, "features": 784, "edges": [0]}
    )
    wide_id = client.post("/v1/jobs", json=wide).json()["id"]
    other_key = create_api_key(sessions, name="someone else")
    foreign = httpx.post(
        f"{server}/v1/jobs",
        json=tiny_spec(name="theirs"),
        headers={"Authorization": f"Bearer {other_key}"},
    ).json()["id"]
    sign_in(page, server=server, api_key=api_key)

    page.goto(f"{server}/#/jobs/{queued}")
    page.locator("#cancel-job:enabled").wait_for()
    for unknown in ("job_that_does_not_exist", foreign):
        page.goto(f"{server}/#/jobs/{unknown}")
        page.locator("#job-name", has_text="Job not found").wait_for()
        assert page.is_hidden("#cancel-job")
        assert page.is_disabled("#cancel-job")
        assert page.inner_text("#job-status") == ""
        assert page.is_hidden("#job-body")
        assert page.title().startswith("Job not found")
        assert page.inner_text("#job-error") == f"job '{unknown}' does not exist"
    assert client.get(f"/v1/jobs/{queued}").json()["status"] == "queued"

    page.goto(f"{server}/#/jobs/{wide_id}")
    page.locator("#plots-note", has_text="needs 1 or 2 input features, not 784").wait_for()
    assert "decision_boundary: needs 2 input features, not 784" in page.inner_text("#plots-note")
    assert "Expected inputs: shape [n, 784]" in page.inner_text("#predict-shape")
    assert not [url for url in requested if "/plots/" in url], "no plot can apply yet"

    # A picture job shows its samples before any checkpoint; its confusion matrix waits for one.
    pictures = client.post("/v1/jobs", json=shapes_spec(name="pictures")).json()["id"]
    page.goto(f"{server}/#/jobs/{pictures}")
    page.locator("#plot-samples img").wait_for()
    assert "confusion: after the first checkpoint" in page.inner_text("#plots-note")
    assert f"{server}/v1/jobs/{pictures}/plots/samples.png" in requested

    formatted = page.evaluate(
        "import('/dashboard/format.js').then(m => "
        "[1.2e34, 3e-5, 0.123456, 550.123, 12345.6, 1234567].map(v => m.formatNumber(v)))"
    )
    assert formatted == ["1.2e34", "3e-5", "0.1235", "550.1", "12346", "1,234,567"]


def test_the_page_and_its_assets_are_served_without_a_key(server: str) -> None:
    page = httpx.get(f"{server}/")
    script = httpx.get(f"{server}/dashboard/app.js")
    chart = httpx.get(f"{server}/dashboard/vendor/uplot/uPlot.iife.min.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in httpx.get(f"{server}/dashboard/api.js").text
    assert chart.status_code == 200
    assert "uPlot" in chart.text
    assert httpx.get(f"{server}/dashboard/style.css").status_code == 200
    assert httpx.get(f"{server}/favicon.ico").headers["content-type"] == "image/svg+xml"
    assert httpx.get(f"{server}/dashboard/__init__.py").status_code == 404
    assert httpx.get(f"{server}/dashboard/../settings.py").status_code == 404
