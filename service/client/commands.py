"""The client's subcommands. Each prints for a person (or `--json` for a program) and returns
the exit status: 0 done, 1 the job failed or was cancelled, 3 the server refused the request
or could not be reached (argparse uses 2 for a bad command line)."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from service.client import storage_commands, sweep_commands
from service.client.api import Api, ClientError, NotFound, read_json
from service.client.describe import describe_job, elapsed, stop_reason, table
from service.client.numbers import significant
from service.client.progress import Progress
from service.client.settings import DEFAULT_URL, ClientSettings
from service.client.sse import follow
from service.statuses import ACTIVE_STATUSES, FINAL_STATUSES, JobStatus

COMMANDS = (
    "submit",
    "jobs",
    "show",
    "metrics",
    "predict",
    "cancel",
    *storage_commands.COMMANDS,
    *sweep_commands.COMMANDS,
)
JOB_FAILED = 1
REFUSED = 3
INTERRUPTED = 130
NPY = "application/x-npy"


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", help=f"the server (default: SERVICE_URL, else {DEFAULT_URL})")
    connection.add_argument(
        "--key",
        help="the API key (default: SERVICE_API_KEY, else the file <SERVICE_DATA_DIR>/api-key, "
        "data/api-key by default, that `service up` writes on its first start)",
    )

    submit = commands.add_parser(
        "submit", parents=[connection], help="submit a job spec (JSON file, or - for stdin)"
    )
    submit.add_argument("spec", help="a JobSpec as JSON: a file, or - to read stdin")
    submit.add_argument(
        "--follow",
        action="store_true",
        help="show a progress bar until the job ends; exit 1 if it fails or is cancelled",
    )
    submit.add_argument("--idempotency-key", help="send again with the same key: the same job")

    listing = commands.add_parser("jobs", parents=[connection], help="list your jobs, newest first")
    listing.add_argument("--status", choices=[status.value for status in JobStatus])
    listing.add_argument("--name", help="only jobs whose name contains this, ignoring case")
    listing.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    listing.add_argument("--json", action="store_true", help="the API's JSON")

    show = commands.add_parser(
        "show",
        parents=[connection],
        help="one job: status, progress, why it stopped, error, configuration, times; or one "
        "sweep: its summary and leaderboard",
    )
    show.add_argument("job_id", metavar="ID", help="a job's id or a sweep's")
    show.add_argument("--json", action="store_true", help="the API's JSON")
    show.add_argument(
        "--follow", action="store_true", help="then follow it as submit --follow does"
    )

    metrics = commands.add_parser("metrics", parents=[connection], help="a job's epochs")
    metrics.add_argument("job_id")
    metrics.add_argument("--csv", action="store_true", help="CSV, as the API gives it")
    metrics.add_argument("--since", type=int, default=0, help="only epochs after this one")

    predict = commands.add_parser(
        "predict", parents=[connection], help="predictions from a job's checkpoint"
    )
    predict.add_argument("job_id")
    inputs = predict.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--inputs", help='samples as JSON, e.g. "[[0.1, -0.3], [0.5, 0.2]]"')
    inputs.add_argument("--npy", type=Path, help="samples as a .npy file (np.save)")
    predict.add_argument("--checkpoint", help="best, final, latest or an epoch (default best)")
    predict.add_argument("--top-k", type=int, help="also list each sample's k likeliest classes")

    cancel = commands.add_parser("cancel", parents=[connection], help="cancel a job")
    cancel.add_argument("job_id")
    storage_commands.add_commands(commands, parents=[connection])
    sweep_commands.add_commands(commands, parents=[connection])


def run(args: argparse.Namespace, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    settings = ClientSettings()
    try:
        api = Api(url=args.url or settings.url, key=_key(args, settings))
    except ClientError as error:
        err.write(f"error: {error}\n")
        return REFUSED
    try:
        return COMMAND_FUNCTIONS[args.command](api, args, out)
    except ClientError as error:
        err.write(f"error: {error}\n")
        return REFUSED
    except KeyboardInterrupt:
        err.write("\nstopped following; the job goes on (service show ID --follow)\n")
        return INTERRUPTED
    finally:
        api.close()


def _key(args: argparse.Namespace, settings: ClientSettings) -> str:
    if args.key:
        return str(args.key)
    if settings.api_key:
        return settings.api_key
    try:
        return settings.api_key_file.read_text().strip()
    except OSError:
        raise ClientError(
            f"no API key: pass --key, set SERVICE_API_KEY, or start the server once with "
            f"`service up` so it writes {settings.api_key_file}"
        ) from None


# --- the commands -------------------------------------------------------------------------------


def submit(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    spec = read_json(args.spec)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    job = api.json("POST", "/v1/jobs", json=spec, headers=headers)
    out.write(
        f"job {job['id']} {job['status']}: {job['name'] or '(unnamed)'}, {job['epochs']} epochs, "
        f"{job['parameters']:,} parameters\n"
    )
    out.flush()
    return _follow(api, job, out) if args.follow else 0


def show(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    try:
        job = api.json("GET", f"/v1/jobs/{args.job_id}")
    except NotFound as not_a_job:
        return _show_sweep(api, args, out, not_a_job=not_a_job)
    if args.json:
        out.write(json.dumps(job, indent=2) + "\n")
    else:
        out.write(describe_job(job))
    if not args.follow:
        return 0
    if job["status"] in ACTIVE_STATUSES:
        return _follow(api, job, out)
    return 0 if job["status"] == JobStatus.SUCCEEDED else JOB_FAILED


def _show_sweep(api: Api, args: argparse.Namespace, out: TextIO, *, not_a_job: NotFound) -> int:
    """`show` of an id that is no job's: a sweep's, else the error says it is neither."""
    try:
        found = sweep_commands.show_sweep(api, args.job_id, out, as_json=args.json)
    except NotFound:
        raise ClientError(f"{not_a_job}; no sweep has that id either") from None
    if not args.follow:
        return 0
    if found["finished_at"] is None:
        return sweep_commands.follow_sweep(api, found, out, interval=sweep_commands.POLL_SECONDS)
    return 0 if found["status"] == "succeeded" else JOB_FAILED


def jobs(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.name:
        params["name"] = args.name
    listing = api.json("GET", "/v1/jobs", params=params)
    if args.json:
        out.write(json.dumps(listing, indent=2) + "\n")
        return 0
    rows = [("ID", "NAME", "STATUS", "EPOCH", "LOSS", "ACCURACY", "CREATED")]
    for job in listing["jobs"]:
        latest = job["latest"] or {}
        rows.append(
            (
                job["id"],
                job["name"] or "-",
                job["status"],
                f"{job['epoch']}/{job['epochs']}",
                significant(latest.get("loss")),
                significant(latest.get("accuracy")),
                job["created_at"][:19].replace("T", " "),
            )
        )
    out.write(table(rows))
    return 0


def metrics(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    path = f"/v1/jobs/{args.job_id}/metrics"
    params = {"since": args.since}
    if args.csv:
        out.write(api.request("GET", path, params=params, headers={"Accept": "text/csv"}).text)
        return 0
    epochs = api.json("GET", path, params=params)["epochs"]
    rows = [("EPOCH", "LOSS", "ACCURACY", "VAL_LOSS", "VAL_ACCURACY", "LR", "SECONDS")]
    for metric in epochs:
        rows.append(
            (
                str(metric["epoch"]),
                significant(metric["loss"]),
                significant(metric["accuracy"]),
                significant(metric["val_loss"]),
                significant(metric["val_accuracy"]),
                significant(metric["lr"]),
                significant(metric["seconds"]),
            )
        )
    out.write(table(rows))
    return 0


def predict(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    path = f"/v1/jobs/{args.job_id}/predict"
    if args.npy is not None:
        params = {
            name: value
            for name, value in (("checkpoint", args.checkpoint), ("top_k", args.top_k))
            if value is not None
        }
        answer = api.json(
            "POST",
            path,
            content=args.npy.read_bytes(),
            params=params,
            headers={"Content-Type": NPY},
        )
    else:
        try:
            inputs = json.loads(args.inputs)
        except json.JSONDecodeError as error:
            raise ClientError(f"--inputs is not JSON: {error}") from error
        body: dict[str, Any] = {"inputs": inputs}
        if args.checkpoint is not None:
            body["checkpoint"] = (
                int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
            )
        if args.top_k is not None:
            body["top_k"] = args.top_k
        answer = api.json("POST", path, json=body)
    out.write(json.dumps(answer, indent=2) + "\n")
    return 0


def cancel(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    job = api.json("POST", f"/v1/jobs/{args.job_id}/cancel")
    note = " (it stops at its next epoch)" if job["status"] == JobStatus.RUNNING else ""
    out.write(f"job {job['id']} {job['status']}{note}\n")
    return 0


COMMAND_FUNCTIONS = {
    "submit": submit,
    "jobs": jobs,
    "show": show,
    "metrics": metrics,
    "predict": predict,
    "cancel": cancel,
    **storage_commands.COMMAND_FUNCTIONS,
    **sweep_commands.COMMAND_FUNCTIONS,
}


# --- following a job ----------------------------------------------------------------------------


def _follow(api: Api, job: dict[str, Any], out: TextIO) -> int:
    progress = Progress(total=job["epochs"], out=out)
    status = job["status"]
    for event in follow(api, job["id"]):
        if event.event == "epoch":
            progress.epoch(event.data)
        elif event.event == "status" and event.data["status"] != status:
            status = event.data["status"]
            if status not in FINAL_STATUSES:
                progress.message(f"job {job['id']} {status}")
    final = api.json("GET", f"/v1/jobs/{job['id']}")
    progress.finish()
    out.write(_outcome(final))
    return 0 if final["status"] == JobStatus.SUCCEEDED else JOB_FAILED


def _outcome(job: dict[str, Any]) -> str:
    latest = job["latest"] or {}
    line = f"job {job['id']} {job['status']} at epoch {job['epoch']}/{job['epochs']}"
    if latest:
        line += f": loss {significant(latest['loss'])}"
        if latest.get("accuracy") is not None:
            line += f", accuracy {significant(latest['accuracy'])}"
    if job.get("started_at") and job.get("finished_at"):
        line += f" (trained in {elapsed(job['started_at'], job['finished_at'])})"
    if stop_reason(job):
        line += f"\nstopped: {job['stop_reason']}"
    if job["error"]:
        line += f"\nerror: {job['error']}"
    return line + "\n"
