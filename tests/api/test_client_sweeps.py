"""The `service sweep`, `sweeps` and `show SWEEP_ID` commands, run as subprocesses against a real
server and worker."""

import json
from pathlib import Path

import httpx
import pytest

from tests.api.test_client import _sqlite_only, cli, settings_overrides, worker, write_spec
from tests.factories import stochastic_spec
from tests.sweeps import activation_sweep, submit

__all__ = ["_sqlite_only", "settings_overrides", "worker"]  # fixtures, used by name


def trial_lines(text: str) -> list[str]:
    """The lines of the (last) trials table, under its header."""
    return text.rsplit("RANK  TRIAL", 1)[1].split("\n\n")[0].splitlines()[1:]


@pytest.mark.usefixtures("worker")
def test_sweep_follow_shows_the_trials_until_it_succeeds_then_sweeps_and_show_list_it(
    server: str, api_key: str, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, activation_sweep())

    done = cli("sweep", spec, "--follow", "--interval", "0.1", server=server, key=api_key)

    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("sweep ")
    assert first.endswith(" running: activations, grid, 6 trials, 2 at once")
    sweep_id = first.split()[1]
    # The last table: every trial in trial order, at its last epoch.
    rows = [line.split() for line in trial_lines(done.stdout)]
    assert [row[1] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [" ".join(row[3:5]) for row in rows] == [
        f"type={activation}, lr={lr}"
        for activation in ("ReLU", "Tanh", "Sigmoid")
        for lr in (0.01, 0.1)
    ]
    assert {(row[5], row[7]) for row in rows} == {("3/3", "succeeded")}
    assert sorted(int(row[0]) for row in rows) == [1, 2, 3, 4, 5, 6]
    assert "status:   succeeded" in done.stdout
    assert "trials:   6 of 6 created: 6 succeeded" in done.stdout

    listed = cli("sweeps", server=server, key=api_key)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "STATUS",
        "METHOD",
        "TRIALS",
        "METRIC",
        "BEST",
        "CREATED",
    ]
    assert lines[1].split()[:6] == [sweep_id, "activations", "succeeded", "grid", "6/6", "loss"]

    shown = cli("show", sweep_id, server=server, key=api_key)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"sweep {sweep_id}: activations\nstatus:   succeeded\n")
    assert "method:   grid, 2 trials at once, ranked by loss" in shown.stdout
    board = [line.split() for line in trial_lines(shown.stdout)]
    assert [row[0] for row in board] == ["1", "2", "3", "4", "5", "6"]  # by rank
    best = next(line for line in shown.stdout.splitlines() if line.startswith("best:"))
    assert f"(job {board[0][2]}): loss {board[0][6]} at epoch" in best

    as_json = json.loads(cli("show", sweep_id, "--json", server=server, key=api_key).stdout)
    assert as_json["id"] == sweep_id
    assert [trial["rank"] for trial in as_json["leaderboard"]] == [1, 2, 3, 4, 5, 6]


def test_following_a_cancelled_sweep_exits_1_and_an_unknown_id_names_both_kinds(
    server: str, api_key: str, client: httpx.Client
) -> None:
    sweep = submit(client, activation_sweep(base=stochastic_spec(epochs=100_000)))
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 200

    followed = cli("show", sweep["id"], "--follow", server=server, key=api_key)

    assert followed.returncode == 1, followed.stderr
    assert "status:   cancelled" in followed.stdout
    assert "trials:   2 of 6 created: 2 cancelled" in followed.stdout

    missing = cli("show", "nosuchid", server=server, key=api_key)
    assert missing.returncode == 3
    assert missing.stderr == (
        "error: GET /v1/jobs/nosuchid -> 404 NotFound: job 'nosuchid' does not exist; "
        "no sweep has that id either\n"
    )
