"""The dashboard's heavier views in headless Chromium against the real api and real workers:
a 20,000-epoch run followed live and reopened finished (its charts redrawn a bounded number of
times, counted, not timed), the jobs list (paging, filters, focus kept across refreshes, narrow
screens) and the comparison of runs."""

import threading

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.client.numbers import significant
from service.settings import Settings
from service.worker.loop import Worker
from tests.browser import attribute, needs_chromium, poll, sign_in
from tests.factories import tiny_spec

pytestmark = needs_chromium

LONG_RUN = 20_000


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"events_poll_seconds": 0.05, "max_active_jobs_per_key": 200}


def test_a_20000_epoch_run_is_drawn_a_bounded_number_of_times_live_and_finished(
    page: "Page",  # noqa: F821
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    job_id = client.post(
        "/v1/jobs", json=tiny_spec(name="long", epochs=LONG_RUN, checkpoint_every=5_000)
    ).json()["id"]
    sign_in(page, server=server, api_key=api_key)
    page.goto(f"{server}/#/jobs/{job_id}")
    page.locator("#job-status", has_text="queued").wait_for()
    training = threading.Thread(target=Worker(settings=settings, sessions=sessions).run_once)
    training.start()
    try:
        page.locator("#job-status", has_text="succeeded").wait_for()
    finally:
        training.join(timeout=120)
    points = poll(
        page,
        lambda: attribute(page, "#chart-loss", "data-points"),
        lambda shown: shown == LONG_RUN,
        f"{LONG_RUN} epochs in the loss chart",
    )
    live_draws = attribute(page, "#chart-loss", "data-draws")

    page.reload()
    poll(
        page,
        lambda: attribute(page, "#chart-loss", "data-points"),
        lambda shown: shown == LONG_RUN,
        f"{LONG_RUN} epochs in the reopened loss chart",
    )
    page.wait_for_timeout(500)  # any redraw still due would come within this
    finished_draws = attribute(page, "#chart-loss", "data-draws")
    accuracy_points = attribute(page, "#chart-accuracy", "data-points")
    page.check("#job-log")  # still answers: the log scale rebuilds each chart once
    poll(
        page,
        lambda: attribute(page, "#chart-loss", "data-draws"),
        lambda draws: draws == finished_draws + 1,
        "one redraw for the log scale",
    )

    assert points == LONG_RUN
    # One redraw per epoch would be 20,000 (what froze the tab); the page draws at most four
    # times a second, however fast epochs arrive, so a run of 100 s would still be under 400.
    assert 1 <= live_draws <= LONG_RUN // 50, live_draws
    # Reopened: an empty chart, then every epoch at once (the metrics in one request).
    assert finished_draws <= 2, finished_draws
    assert accuracy_points == LONG_RUN
    assert page.inner_text("#epoch") == "20,000"


def test_the_list_pages_filters_keeps_focus_fits_narrow_screens_and_compares_runs(
    page: "Page",  # noqa: F821
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    adam = client.post("/v1/jobs", json=tiny_spec(name="opt-adam", epochs=4)).json()["id"]
    sgd_spec = tiny_spec(name="opt-sgd", epochs=6, optimizer={"name": "sgd", "lr": 0.1})
    sgd = client.post("/v1/jobs", json=sgd_spec).json()["id"]
    worker = Worker(settings=settings, sessions=sessions)
    assert worker.run_once()
    assert worker.run_once()
    for index in range(103):
        client.post("/v1/jobs", json=tiny_spec(name=f"queued-{index}"))
    rows = page.locator("#jobs-table tbody tr")

    sign_in(page, server=server, api_key=api_key)
    poll(page, rows.count, lambda count: count == 50, "the first page of 50 jobs")
    assert page.is_disabled("#jobs-newer")
    page.click("#jobs-older")
    page.locator("#jobs-page", has_text="page 2").wait_for()
    page.click("#jobs-older")
    poll(page, rows.count, lambda count: count == 5, "the last page: 105 jobs in all")
    assert page.is_disabled("#jobs-older")
    assert [rows.nth(i).get_attribute("data-job") for i in (3, 4)] == [sgd, adam]
    page.click("#jobs-newer")
    poll(page, rows.count, lambda count: count == 50, "page 2 again")

    page.fill("#filter-name", "OPT-")
    poll(page, rows.count, lambda count: count == 2, "the two jobs named opt-")
    page.select_option("#filter-status", "succeeded")
    page.locator("#jobs-page", has_text="page 1").wait_for()
    assert rows.count() == 2

    # The list refreshes every 2 s: the focused box and its tick survive it.
    tick = f"#jobs-table tr[data-job='{sgd}'] input[type=checkbox]"
    page.focus(tick)
    page.keyboard.press("Space")
    refreshes = attribute(page, "#jobs-table", "data-refreshes")
    poll(
        page,
        lambda: attribute(page, "#jobs-table", "data-refreshes"),
        lambda count: count >= refreshes + 2,
        "two refreshes of the list",
    )
    focused = page.evaluate("document.activeElement.closest('tr')?.dataset.job")
    assert focused == sgd
    assert page.is_checked(tick)

    page.set_viewport_size({"width": 800, "height": 900})
    wrapper = page.locator("#jobs-view .scroll")
    assert wrapper.evaluate("e => e.scrollWidth <= e.clientWidth"), "the table fits in 800 px"
    page.set_viewport_size({"width": 420, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    page.set_viewport_size({"width": 1200, "height": 900})

    page.check(f"#jobs-table tr[data-job='{adam}'] input[type=checkbox]")
    page.click("#compare-selected")
    page.locator("#compare-diff tbody tr").first.wait_for()
    differing = page.locator("#compare-diff tbody tr td:first-child").all_inner_texts()
    best = page.locator("#compare-metrics tbody tr").all_inner_texts()
    points = poll(
        page,
        lambda: attribute(page, "#compare-chart", "data-points"),
        lambda shown: shown > 0,
        "the overlaid curves",
    )

    assert page.title().startswith("Compare 2 runs")
    assert {"epochs", "optimizer.name", "optimizer.lr", "optimizer.momentum"} <= set(differing)
    assert "name" not in differing
    assert "seed" not in differing  # the same in both
    assert points == 6  # the union of their epochs, 1 to 6
    expected = []
    for job_id in (sgd, adam):
        epochs = client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
        lowest = min(epochs, key=lambda epoch: epoch["loss"])
        expected.append(
            [
                "succeeded",
                str(len(epochs)),
                significant(lowest["loss"]),
                str(lowest["epoch"]),
                significant(epochs[-1]["loss"]),
            ]
        )
    assert [row.split("\t")[1:] for row in best] == expected
