"""Fused training through the real service: many configurations of a tutorial job submitted
at once to `service up` (api + one worker) with fusion on, against SERVICE_FUSE_MAX_JOBS=1.

    .venv/bin/python bench/fused_vs_sequential.py [--jobs 64] [--spiral-epochs 1000]
        [--simplenn-epochs 100] [--repeats 1] [--threads 2] [--device cpu] [--compile]
        [--inductor-cache DIR]

Two workloads of `--jobs` configurations each, learning rate x weight decay x seed:
seed 001's spiral network and data size (full batch, Adam) and seed 002's SimpleNN (batch 64).
Each runs in a fresh `service up` on SQLite (bench/service_overhead.py's Service), fused and
sequential alternately; the time is from the first submission to the last job's finished_at, as
GET /v1/jobs/{id} reports it. The table shows each one's median and the ratio.

`--compile` adds a third run, fused with SERVICE_FUSE_COMPILE=true and Inductor's cache in the
run's own folder, so it pays the whole compile a new worker machine pays; `--inductor-cache DIR`
keeps that cache in DIR instead, so a second run compiles as a machine that has compiled before.
"""

import argparse
import itertools
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service_overhead import Service, example, timestamp


def configurations(name: str, *, jobs: int, epochs: int) -> list[dict[str, Any]]:
    base = example(name, epochs=epochs)
    # Every learning rate x weight decay pair with seed 1, then with seed 2...: 64 jobs are the
    # 16 pairs x 4 seeds, each pair its own optimizer numbers.
    grid = itertools.product(range(1, 1000), (1e-3, 3e-3, 1e-2, 3e-2), (0.0, 1e-5, 1e-4, 1e-3))
    return [
        base
        | {
            "name": f"{name}-{n}",
            "optimizer": base["optimizer"] | {"lr": lr, "weight_decay": weight_decay},
            "seed": seed,
        }
        for n, (seed, lr, weight_decay) in enumerate(itertools.islice(grid, jobs))
    ]


def run(
    specs: list[dict[str, Any]],
    *,
    mode: str,
    threads: int,
    device: str,
    inductor_cache: Path | None = None,
) -> tuple[float, str]:
    """Seconds from the first submission to the last job's end, and the devices jobs reported.
    `mode`: fused, sequential or compiled; `inductor_cache`: where the compiled run keeps
    Inductor's cache (None: a new one, in the run's own folder)."""
    with tempfile.TemporaryDirectory(prefix="bench-fused-") as scratch:
        service = Service(
            data_dir=Path(scratch) / "data", database_url="", threads=threads, device=device
        )
        # Fused: the service's own group size (SERVICE_FUSE_MAX_JOBS from the environment, else
        # its default), as a user gets it.
        if mode == "sequential":
            service.env["SERVICE_FUSE_MAX_JOBS"] = "1"
        if mode == "compiled":
            # By default compiled from nothing, as a new worker machine compiles.
            service.env["SERVICE_FUSE_COMPILE"] = "true"
            service.env["TORCHINDUCTOR_CACHE_DIR"] = str(
                inductor_cache or Path(scratch) / "inductor"
            )
        service.env["SERVICE_MAX_ACTIVE_JOBS_PER_KEY"] = str(max(100, len(specs)))
        with service:
            first = datetime.now(UTC)
            submitted = [service.submit(spec).job_id for spec in specs]
            finished = [service.wait(job_id) for job_id in submitted]
        last = max(timestamp(job, "finished_at") for job in finished)
        devices = sorted({job["device"] for job in finished})
        return (last - first).total_seconds(), ", ".join(devices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--spiral-epochs", type=int, default=1000)
    parser.add_argument("--simplenn-epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=("spiral", "simplenn"))
    parser.add_argument("--compile", action="store_true", help="also SERVICE_FUSE_COMPILE=true")
    parser.add_argument(
        "--inductor-cache",
        type=Path,
        help="keep the compiled run's Inductor cache here (a second run with it compiles warm)",
    )
    args = parser.parse_args()
    modes = ("fused", "sequential", "compiled") if args.compile else ("fused", "sequential")
    workloads = {
        "spiral": ("spiral-relu-adam", args.spiral_epochs),
        "simplenn": ("sum-bins-simplenn", args.simplenn_epochs),
    }
    for label, (name, epochs) in workloads.items():
        if args.only not in (None, label):
            continue
        specs = configurations(name, jobs=args.jobs, epochs=epochs)
        walls: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                wall, devices = run(
                    specs,
                    mode=mode,
                    threads=args.threads,
                    device=args.device,
                    inductor_cache=args.inductor_cache,
                )
                walls[mode].append(wall)
                print(f"  {label} {mode}: {wall:.1f} s ({devices})", flush=True)
        median = {mode: statistics.median(walls[mode]) for mode in modes}
        sequential = median["sequential"]
        line = (
            f"{name}: {len(specs)} jobs of {epochs} epochs, {args.threads} threads: "
            f"sequential {sequential:.1f} s, fused {median['fused']:.1f} s, "
            f"{sequential / median['fused']:.2f}x"
        )
        if "compiled" in median:
            line += f"; compiled {median['compiled']:.1f} s, {sequential / median['compiled']:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
