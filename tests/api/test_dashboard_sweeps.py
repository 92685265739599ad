"""The dashboard's sweep pages in headless Chromium against the real api and real workers: a
grid of four tiny trials followed from the sweeps list to the end, its leaderboard as the API
ranks it and sorted by a header, one curve per trial, a trial's job page and its ONNX download
fetched with the key; an unknown or another key's sweep leaves nothing to cancel, a running one
is cancelled after a confirmation, a failed trial shows its error."""

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.client.numbers import significant
from service.settings import Settings
from tests.browser import attribute, needs_chromium, poll, sign_in
from tests.conftest import create_api_key
from tests.factories import diverging_spec, tiny_spec
from tests.sweeps import activation_sweep, run_trials, submit

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request

pytestmark = needs_chromium

LR = "optimizer.lr"
ACTIVATION = "model.layers.1.type"


def test_a_sweep_page_ranks_sorts_and_draws_its_trials_and_opens_their_jobs(
    page: "Page",
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    spec = activation_sweep(
        base=tiny_spec(epochs=4),
        parameters={ACTIVATION: {"values": ["ReLU", "Tanh"]}, LR: {"values": [0.01, 0.1]}},
        parallel=4,
    )
    sweep_id = submit(client, spec)["id"]
    other_key = create_api_key(sessions, name="someone else")
    foreign = httpx.post(
        f"{server}/v1/sweeps", json=spec, headers={"Authorization": f"Bearer {other_key}"}
    ).json()["id"]
    sign_in(page, server=server, api_key=api_key)
    page.click("nav a[href='#/sweeps']")
    page.locator(f"#sweeps-table tr[data-sweep='{sweep_id}'] a").click()
    page.locator("#sweep-status", has_text="running").wait_for()
    assert page.is_visible("#cancel-sweep")
    for unknown in ("no-such-sweep", foreign):
        page.goto(f"{server}/#/sweeps/{unknown}")
        page.locator("#sweep-name", has_text="Sweep not found").wait_for()
        assert page.is_hidden("#cancel-sweep")
        assert page.is_hidden("#sweep-body")
        page.goto(f"{server}/#/sweeps")
        page.locator(f"#sweeps-table tr[data-sweep='{sweep_id}']").wait_for()
        assert page.locator(f"#sweeps-table tr[data-sweep='{foreign}']").count() == 0
    page.goto(f"{server}/#/sweeps/{sweep_id}")
    page.locator("#sweep-status", has_text="running").wait_for()

    training = threading.Thread(target=run_trials, args=(sessions, settings))
    training.start()
    try:
        page.locator("#sweep-status", has_text="succeeded").wait_for()
    finally:
        training.join(timeout=120)
    rows = page.locator("#sweep-trials tbody tr")
    poll(
        page,
        lambda: rows.all_inner_texts(),
        lambda texts: len(texts) == 4 and all("\tsucceeded\t" in text for text in texts),
        "four succeeded trials on the leaderboard",
    )
    board = client.get(f"/v1/sweeps/{sweep_id}/trials").json()["trials"]
    by_rank = [
        [
            str(trial["rank"]),
            f"#{trial['trial']}",
            "succeeded",
            trial["params"][ACTIVATION],
            significant(trial["params"][LR]),
            significant(trial["value"]),
            str(trial["best_epoch"]),
            "4 of 4",
        ]
        for trial in board
    ]
    shown_by_rank = [text.split("\t") for text in rows.all_inner_texts()]
    counts = page.inner_text("#sweep-counts")
    sweep_facts = page.inner_text("#sweep-facts")
    page.click(f"#sweep-trials th[data-column='params.{LR}'] button")
    by_lr = [rows.nth(i).get_attribute("data-job") for i in range(4)]
    page.click(f"#sweep-trials th[data-column='params.{LR}'] button")
    by_lr_descending = [rows.nth(i).get_attribute("data-job") for i in range(4)]
    series = attribute(page, "#sweep-chart", "data-series")
    legend = page.locator("#sweep-chart .u-legend .u-series").all_inner_texts()
    points = attribute(page, "#sweep-chart", "data-points")

    assert shown_by_rank == by_rank
    assert [row[0] for row in shown_by_rank] == ["1", "2", "3", "4"]
    assert counts == "4 of 4 trials ended (4 succeeded)"
    best = board[0]
    assert f"Best trial\n#{best['trial']}: {significant(best['value'])} at epoch" in sweep_facts
    assert "Epochs saved by pruning\n0" in sweep_facts
    ascending = sorted(board, key=lambda t: (t["params"][LR], t["trial"]))
    assert by_lr == [trial["job_id"] for trial in ascending]
    descending = sorted(board, key=lambda t: (-t["params"][LR], t["trial"]))
    assert by_lr_descending == [trial["job_id"] for trial in descending]
    assert series == 4
    assert points == 4  # epochs 1 to 4
    # The legend: the epoch, then one entry per trial labelled by the params that differ.
    first = next(trial for trial in board if trial["trial"] == 1)
    assert legend[1].startswith(
        f"#1 {ACTIVATION}={first['params'][ACTIVATION]}, {LR}={significant(first['params'][LR])}"
    )
    assert len(legend) == 5

    page.locator(f"#sweep-trials tr[data-job='{best['job_id']}'] a").click()
    page.locator("#job-status", has_text="succeeded").wait_for()
    assert page.get_attribute("#job-sweep a", "href") == f"#/sweeps/{sweep_id}"
    with page.expect_download() as onnx_download:
        page.click("#download-onnx")
    export = client.get(f"/v1/jobs/{best['job_id']}/export", params={"format": "onnx"})
    saved = Path(onnx_download.value.path()).read_bytes()
    assert onnx_download.value.suggested_filename == (
        f"job-{best['job_id']}-{export.headers['X-Checkpoint-Epoch']}.onnx"
    )
    assert len(saved) == len(export.content)
    fetched = [r for r in requests if "/export?" in r.url]
    assert [r.headers.get("authorization") for r in fetched] == [f"Bearer {api_key}"]
    assert not any(api_key in r.url for r in requests), "the key never travels in a URL"
    page.click("#job-sweep a")
    page.locator("#sweep-status", has_text="succeeded").wait_for()


def test_a_running_sweep_keeps_its_sort_and_is_cancelled_after_a_confirmation(
    page: "Page",
    server: str,
    api_key: str,
    client: httpx.Client,
) -> None:
    spec = activation_sweep(parameters={LR: {"values": [0.01, 0.1]}}, parallel=2)
    sweep_id = submit(client, spec)["id"]
    sign_in(page, server=server, api_key=api_key)
    page.goto(f"{server}/#/sweeps/{sweep_id}")
    page.locator("#sweep-status", has_text="running").wait_for()

    # The leaderboard is redrawn every poll; the sort and the focused header survive it.
    lr_header = f"#sweep-trials th[data-column='params.{LR}']"
    page.click(f"{lr_header} button")
    draws = attribute(page, "#sweep-trials", "data-draws")
    poll(
        page,
        lambda: attribute(page, "#sweep-trials", "data-draws"),
        lambda count: count >= draws + 2,
        "two more polls of the leaderboard",
    )
    assert page.get_attribute(lr_header, "aria-sort") == "ascending"
    assert page.evaluate("document.activeElement.closest('th')?.dataset.column") == f"params.{LR}"

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#cancel-sweep")
    assert client.get(f"/v1/sweeps/{sweep_id}").json()["status"] == "running"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-sweep")
    page.locator("#sweep-status", has_text="cancelled").wait_for()

    assert page.is_hidden("#cancel-sweep")
    assert client.get(f"/v1/sweeps/{sweep_id}").json()["counts"]["cancelled"] == 2
    page.locator("#sweep-counts", has_text="2 of 2 trials ended (2 cancelled)").wait_for()


def test_a_failed_trial_shows_its_error_and_links_to_its_job(
    page: "Page",
    server: str,
    api_key: str,
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    spec = activation_sweep(
        base=diverging_spec(epochs=20), parameters={LR: {"values": [0.01, 1e6]}}, parallel=2
    )
    sweep_id = submit(client, spec)["id"]
    assert run_trials(sessions, settings) == 2
    failed = client.get(f"/v1/sweeps/{sweep_id}").json()["failed_trials"]
    sign_in(page, server=server, api_key=api_key)
    page.goto(f"{server}/#/sweeps/{sweep_id}")
    page.locator("#sweep-status", has_text="succeeded").wait_for()
    shown = page.locator("#sweep-failed li").all_inner_texts()

    assert [trial["params"][LR] for trial in failed] == [1e6]
    assert shown == [f"#{failed[0]['trial']} ({LR}=1,000,000): {failed[0]['error']}"]
    assert "lower the learning rate" in failed[0]["error"]
    href = page.get_attribute("#sweep-failed li a", "href")
    assert href == f"#/jobs/{failed[0]['job_id']}"
