"""The client's commands for what a key stores: `export` a checkpoint as ONNX, `delete` a job
or a dataset, `usage`. (`delete --key-name`, an admin's, goes to the database: see cli.py.)"""

import argparse
import json
from pathlib import Path
from typing import TextIO

from service.client.api import Api, ClientError

COMMANDS = ("export", "delete", "usage")


def add_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    *,
    parents: list[argparse.ArgumentParser],
) -> None:
    export = commands.add_parser(
        "export",
        parents=parents,
        help="a job's checkpoint as an ONNX model that takes the raw inputs predict takes",
    )
    export.add_argument("job_id")
    export.add_argument("--checkpoint", help="best, final, latest or an epoch (default best)")
    export.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")

    delete = commands.add_parser(
        "delete",
        parents=parents,
        help="delete a job (its metrics and checkpoints) or, with --dataset, a dataset",
    )
    delete.add_argument("id", nargs="?", help="the job's id (or the dataset's, with --dataset)")
    delete.add_argument("--dataset", action="store_true", help="the id is a dataset's")
    delete.add_argument(
        "--key-name",
        help="admin, on the database itself (SERVICE_DATABASE_URL): delete every job and "
        "dataset of the API key(s) of this name, revoked ones included",
    )

    usage = commands.add_parser(
        "usage", parents=parents, help="what your key stores, largest first, and its limit"
    )
    usage.add_argument("--json", action="store_true", help="the API's JSON")


def export(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    params = {"format": "onnx"}
    if args.checkpoint is not None:
        params["checkpoint"] = args.checkpoint
    response = api.request("GET", f"/v1/jobs/{args.job_id}/export", params=params)
    args.output.write_bytes(response.content)
    out.write(
        f"wrote {args.output} ({len(response.content):,} bytes): job {args.job_id}, "
        f"checkpoint epoch {response.headers['x-checkpoint-epoch']} "
        f"({response.headers['x-checkpoint-kind']})\n"
    )
    return 0


def delete(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    if args.id is None:
        raise ClientError("name what to delete: service delete ID (a job), or --dataset ID")
    kind = "dataset" if args.dataset else "job"
    api.request("DELETE", f"/v1/{kind}s/{args.id}")
    out.write(f"{kind} {args.id} deleted\n")
    return 0


def usage(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    found = api.json("GET", "/v1/usage")
    if args.json:
        out.write(json.dumps(found, indent=2) + "\n")
        return 0
    limit = found["limit_bytes"]
    out.write(
        f"{found['bytes']:,} bytes stored"
        + (f" of {limit:,} allowed\n" if limit is not None else " (no limit)\n")
    )
    for job in found["jobs"]:
        out.write(
            f"job {job['id']}  {job['bytes']:>14,} bytes  {job['checkpoints']} checkpoint(s)  "
            f"{job['status']}  {job['name'] or '-'}\n"
        )
    for dataset in found["datasets"]:
        out.write(
            f"dataset {dataset['id']}  {dataset['bytes']:>14,} bytes  {dataset['filename']}\n"
        )
    return 0


COMMAND_FUNCTIONS = {"export": export, "delete": delete, "usage": usage}
