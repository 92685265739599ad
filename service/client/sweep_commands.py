"""The client's commands for sweeps: `sweep SPEC.json [--follow]` submits one and can follow
its trials in a live table; `sweeps` lists them; `show` of a sweep id (commands.show falls back
here) prints its summary and leaderboard."""

import argparse
import json
import time
from typing import Any, TextIO

from service.client.api import Api, read_json
from service.client.describe import table
from service.client.numbers import significant
from service.sweeps.labels import short_labels

COMMANDS = ("sweep", "sweeps")
SWEEP_FAILED = 1
# Seconds between two polls of a followed sweep.
POLL_SECONDS = 2.0
# A table line's params column is cut to this many characters.
PARAMS_WIDTH = 60


def add_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    *,
    parents: list[argparse.ArgumentParser],
) -> None:
    sweep = commands.add_parser(
        "sweep", parents=parents, help="submit a sweep spec (JSON file, or - for stdin)"
    )
    sweep.add_argument("spec", help="a SweepSpec as JSON: a file, or - to read stdin")
    sweep.add_argument(
        "--follow",
        action="store_true",
        help="show a live table of its trials until it ends; exit 1 unless it succeeds",
    )
    sweep.add_argument(
        "--interval", type=float, default=POLL_SECONDS, help="seconds between refreshes"
    )
    listing = commands.add_parser("sweeps", parents=parents, help="list your sweeps, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    listing.add_argument("--json", action="store_true", help="the API's JSON")


def sweep(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    spec = read_json(args.spec)
    found = api.json("POST", "/v1/sweeps", json=spec)
    out.write(
        f"sweep {found['id']} {found['status']}: {found['name']}, {found['method']}, "
        f"{found['max_trials']} trials, {found['parallel']} at once\n"
    )
    out.flush()
    return follow_sweep(api, found, out, interval=args.interval) if args.follow else 0


def sweeps(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    listing = api.json("GET", "/v1/sweeps", params={"limit": args.limit})
    if args.json:
        out.write(json.dumps(listing, indent=2) + "\n")
        return 0
    rows = [("ID", "NAME", "STATUS", "METHOD", "TRIALS", "METRIC", "BEST", "CREATED")]
    for found in listing["sweeps"]:
        best = found["best"] or {}
        rows.append(
            (
                found["id"],
                found["name"],
                found["status"],
                found["method"],
                f"{found['trials_created']}/{found['max_trials']}",
                found["spec"]["metric"]["name"],
                significant(best.get("value")),
                found["created_at"][:19].replace("T", " "),
            )
        )
    out.write(table(rows))
    return 0


def show_sweep(api: Api, sweep_id: str, out: TextIO, *, as_json: bool) -> dict[str, Any]:
    """Print the sweep and its leaderboard; the sweep as the API gives it."""
    found = api.json("GET", f"/v1/sweeps/{sweep_id}")
    board = api.json("GET", f"/v1/sweeps/{sweep_id}/trials")
    if as_json:
        out.write(json.dumps({**found, "leaderboard": board["trials"]}, indent=2) + "\n")
    else:
        out.write(describe_sweep(found) + trials_table(board, ranked=True))
    return found


def describe_sweep(found: dict[str, Any]) -> str:
    counts = ", ".join(
        f"{count} {status}" for status, count in sorted(found["counts"].items()) if count
    )
    metric = found["spec"]["metric"]
    lines = [
        f"sweep {found['id']}: {found['name']}",
        f"status:   {found['status']}" + (f" ({found['error']})" if found["error"] else ""),
        f"method:   {found['method']}, {found['parallel']} trials at once, "
        f"ranked by {metric['name']}",
        f"trials:   {found['trials_created']} of {found['max_trials']} created"
        + (f": {counts}" if counts else ""),
    ]
    if found["best"] is not None:
        best = found["best"]
        lines.append(
            f"best:     trial {best['trial']} (job {best['job_id']}): {metric['name']} "
            f"{significant(best['value'])} at epoch {best['best_epoch']}"
        )
    if found["epochs_saved"]:
        lines.append(f"pruning saved {found['epochs_saved']} epochs")
    for failed in found["failed_trials"]:
        lines.append(
            f"failed:   trial {failed['trial']} (job {failed['job_id']}): {failed['error']}"
        )
    return "\n".join(lines) + "\n\n"


def trials_table(board: dict[str, Any], *, ranked: bool) -> str:
    """The leaderboard as a table: by rank, or (ranked=False, while following) by trial."""
    trials = board["trials"] if ranked else sorted(board["trials"], key=lambda t: t["trial"])
    labels = short_labels([trial["params"] for trial in trials])
    rows = [("RANK", "TRIAL", "JOB", "PARAMS", "EPOCH", board["metric"].upper(), "STATUS")]
    for trial, label in zip(trials, labels, strict=True):
        rows.append(
            (
                "-" if trial["rank"] is None else str(trial["rank"]),
                str(trial["trial"]),
                trial["job_id"],
                label if len(label) <= PARAMS_WIDTH else label[: PARAMS_WIDTH - 3] + "...",
                f"{trial['epoch']}/{trial['epochs']}",
                significant(trial["value"]),
                trial["status"],
            )
        )
    return table(rows)


def follow_sweep(api: Api, found: dict[str, Any], out: TextIO, *, interval: float) -> int:
    """Poll the sweep and its trials until it ends, showing the table again whenever it
    changes (drawn over the last one on a terminal); 0 if it succeeded, else 1."""
    shown = ""
    while True:
        found = api.json("GET", f"/v1/sweeps/{found['id']}")
        board = api.json("GET", f"/v1/sweeps/{found['id']}/trials")
        text = trials_table(board, ranked=False)
        if text != shown:
            if shown and out.isatty():
                out.write(f"\x1b[{shown.count(chr(10))}F\x1b[J")
            elif shown:
                out.write("\n")
            out.write(text)
            out.flush()
            shown = text
        if found["finished_at"] is not None:
            break
        time.sleep(interval)
    out.write("\n" + describe_sweep(found))
    return 0 if found["status"] == "succeeded" else SWEEP_FAILED


COMMAND_FUNCTIONS = {"sweep": sweep, "sweeps": sweeps}
