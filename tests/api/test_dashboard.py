"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright): the key
prompt, the jobs list, a running job's epoch count advancing live, a prediction."""

import json
import shutil
import threading
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import tiny_spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous: the page waits on a real worker sharing two cores with the browser and the server.
WAIT_MS = 60_000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH: `apt-get install chromium` (.ci/run installs it) to run the "
    "dashboard test",
)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"events_poll_seconds": 0.05}


@pytest.fixture
def page(server: str, backend: str) -> Iterator[object]:
    if backend != "sqlite":
        pytest.skip("the dashboard speaks HTTP only: run once, on SQLite")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        yield page
        browser.close()


def epoch_on_screen(page: "Page", *, at_least: int) -> int:  # noqa: F821
    """The epoch the page shows, once it is at least `at_least`. Polled from here: the page's
    Content-Security-Policy forbids the eval that page.wait_for_function would need."""
    for _ in range(WAIT_MS // 100):
        shown = int(page.inner_text("#epoch") or 0)
        if shown >= at_least:
            return shown
        page.wait_for_timeout(100)
    raise AssertionError(f"the page still shows epoch {shown}, not {at_least} or more")


def test_the_dashboard_follows_a_running_job_and_predicts(
    page: "Page",  # noqa: F821
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    job_id = client.post(
        "/v1/jobs", json=tiny_spec(name="live", epochs=100_000, checkpoint_every=5)
    ).json()["id"]
    worker = Worker(settings=settings, sessions=sessions)
    training = threading.Thread(target=worker.run_once)
    training.start()
    try:
        page.goto(f"{server}/")
        page.fill("#key-input", api_key)
        page.click("#key-form button[type=submit]")

        row = page.locator(f"#jobs-table tr[data-job='{job_id}']")
        row.locator("text=running").wait_for()
        row.locator("a").click()

        seen = epoch_on_screen(page, at_least=10)
        epoch_on_screen(page, at_least=seen + 10)
        page.locator("#plot-curves img").wait_for()
        page.locator("#checkpoints-table tbody tr").first.wait_for()

        page.click("#cancel-job")
        page.locator("#job-status", has_text="cancelled").wait_for()
        page.locator("#job-stop-reason", has_text="cancelled at epoch").wait_for()
        stop_reason = page.inner_text("#job-stop-reason")

        page.fill("#predict-inputs", "[[0.0, 0.1], [0.9, 1.0]]")
        page.click("#predict-form button[type=submit]")
        page.locator("#prediction", has_text="predictions").wait_for()
        shown = page.inner_text("#prediction")
    finally:
        client.post(f"/v1/jobs/{job_id}/cancel")
        training.join(timeout=60)

    expected = client.post(
        f"/v1/jobs/{job_id}/predict", json={"inputs": [[0.0, 0.1], [0.9, 1.0]]}
    ).json()
    assert json.loads(shown) == expected
    epoch = client.get(f"/v1/jobs/{job_id}").json()["epoch"]
    assert stop_reason == f"Stopped: cancelled at epoch {epoch}"
    assert page.evaluate("sessionStorage.getItem('service-api-key')") == api_key
    assert all(url.startswith(server) or url.startswith("blob:") for url in requested), requested
    assert not any(api_key in url for url in requested), "the key never travels in a URL"
    plot = page.locator("#plot-curves img")
    assert plot.evaluate("image => image.naturalWidth") == 960


def test_the_page_and_its_assets_are_served_without_a_key(server: str) -> None:
    page = httpx.get(f"{server}/")
    script = httpx.get(f"{server}/dashboard/app.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text
    assert httpx.get(f"{server}/dashboard/style.css").status_code == 200
