"""What the service's own bookkeeping costs small jobs: `service up` beside train() in-process.

    .venv/bin/python bench/service_overhead.py [--repeats 3] [--latency-samples 20] [--threads 2]
    SERVICE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/service_overhead.py    # SQLite and PostgreSQL
    .venv/bin/python bench/service_overhead.py --databases postgresql    # PostgreSQL only

Two of the tutorials' jobs as examples/ ships them: spiral-relu-adam (1000 full-batch epochs of
about a millisecond each) and sum-bins-simplenn (100 epochs of 16 batches). Each runs

- through the service: `service up` as a subprocess (the real api and one real worker process,
  SERVICE_WORKERS=1, SERVICE_TORCH_THREADS=--threads) on a temporary SERVICE_DATA_DIR and a free
  port, the job submitted over HTTP with the key `service up` writes to <data dir>/api-key. Its
  time is the job's started_at -> finished_at as GET /v1/jobs/{id} reports them: the worker's
  claim to its final write, so what the bench's own polling costs the api does not count;
- in-process: service.training.loop.train() on the same planned spec with no-op hooks, in this
  process with the same torch threads, checkpoint pace (SERVICE_CHECKPOINT_SECONDS) and the
  worker's allocator settings
  (service/training/memory.py; bench/allocator.py measures what they gain on their own), timed
  around the call.

The two alternate (service, in-process, service, ...) so that a noisy machine slows both alike;
the table shows each one's median over --repeats, their ratio (service / in-process: 1.00x
would be free bookkeeping), the median of each repeat's own ratio, and the ratio of CPU times:
the worker process's (from /proc, Linux) over this process's. On a shared machine the CPU ratio
is the steadier one; the wall ratio is the one a user waits for. A warm-up job of one epoch runs
each way first, so neither side pays its first-use costs in the timed runs.

Then submit -> running with an idle worker: --latency-samples submissions of a one-epoch job,
one at a time, each after the previous one finished and a random pause of up to a second (so
submissions fall anywhere in an idle worker's poll cycle). Each is the time from just before
POST /v1/jobs is sent to the job's started_at; both are this machine's wall clock in UTC.

SQLite always (a file in the data dir); PostgreSQL too when SERVICE_TEST_POSTGRES_URL is set, in
a fresh schema of its own, dropped afterwards. The service sees this process's environment, so
other SERVICE_* settings (SERVICE_POLL_SECONDS, say) reach it; the bench sets the data dir,
database, port, workers, threads and device itself. Only HTTP and the job's timestamps are read,
so the bench measures any write path the worker takes.
"""

import argparse
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import torch
from sqlalchemy import create_engine, text

from service.settings import Settings
from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.devices import pick_device
from service.training.hooks import EpochResult, Snapshot, StopReason
from service.training.loop import train
from service.training.memory import keep_freed_memory
from service.training.plan import plan

ROOT = Path(__file__).resolve().parent.parent
JOBS = ("spiral-relu-adam", "sum-bins-simplenn")
DATABASES = ("sqlite", "postgresql")
POSTGRES_ENV = "SERVICE_TEST_POSTGRES_URL"
# How often the bench asks the api about a job; the timings come from the job's own timestamps.
# Seldom: on a machine of few cores each request's CPU is taken from the training it measures.
POLL_SECONDS = 0.5
JOB_TIMEOUT_SECONDS = 600.0

Device = Literal["cpu", "cuda"]


def example(name: str, **overrides: object) -> dict[str, Any]:
    spec: dict[str, Any] = orjson.loads((ROOT / "examples" / f"{name}.json").read_bytes())
    return spec | overrides


def timestamp(job: dict[str, Any], name: str) -> datetime:
    value = job[name]
    if value is None:
        raise RuntimeError(f"job {job['id']} has no {name}: {job}")
    return datetime.fromisoformat(value)


# --- the service ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped on the way out."""
    schema = f"bench_{secrets.token_hex(6)}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@contextmanager
def database(name: str, *, postgres_url: str | None) -> Iterator[str]:
    """The service's SERVICE_DATABASE_URL for a database name."""
    if name == "sqlite":
        yield ""  # the service's default: a SQLite file in its data dir
        return
    assert postgres_url is not None
    with postgres_schema(postgres_url) as url:
        yield url


@dataclass(frozen=True)
class Submitted:
    job_id: str
    sent: datetime  # UTC, just before the POST went out


@dataclass(frozen=True)
class Timed:
    wall: float  # seconds
    cpu: float | None  # seconds of CPU time; None where it could not be read


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """A process's children, their children and so on, from /proc (Linux)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found += [child, *descendants(child)]
    return found


class Service:
    """A real `service up` (api + one worker) on a data dir and a free port, driven over HTTP."""

    def __init__(self, *, data_dir: Path, database_url: str, threads: int, device: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"{data_dir.name}-up.log"
        env = dict(os.environ)
        env.update(
            SERVICE_DATA_DIR=str(data_dir),
            SERVICE_DATABASE_URL=database_url,
            SERVICE_HOST="127.0.0.1",
            SERVICE_PORT=str(self.port),
            SERVICE_WORKERS="1",
            SERVICE_TORCH_THREADS=str(threads),
            SERVICE_DEVICE=device,
            # The repository first, then whatever path the caller set (bench/gpu.sh's packages).
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def __enter__(self) -> "Service":
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "up"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready(timeout=120)
            key = (self.data_dir / "api-key").read_text().strip()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.http.headers["Authorization"] = f"Bearer {key}"
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()
        if self.process is None:
            return
        # What Ctrl-C does: `up` stops its worker, then itself.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_until_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"`service up` exited: {self.tail()}")
            try:
                if self.http.get("/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"`service up` was not ready in {timeout:g} s: {self.tail()}")

    def worker_cpu(self) -> float | None:
        """CPU seconds the worker processes of `up` have used so far; None off Linux."""
        assert self.process is not None
        try:
            workers = [
                pid
                for pid in descendants(self.process.pid)
                if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ]
            return sum(cpu_seconds(pid) for pid in workers) if workers else None
        except OSError:
            return None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def submit(self, spec: dict[str, Any]) -> Submitted:
        sent = datetime.now(UTC)
        response = self.http.post("/v1/jobs", json=spec)
        if response.status_code != 202:
            raise RuntimeError(f"submit: HTTP {response.status_code} {response.text}")
        return Submitted(job_id=response.json()["id"], sent=sent)

    def wait(self, job_id: str) -> dict[str, Any]:
        """The job once it succeeded; raises if it ended otherwise or took too long."""
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            response = self.http.get(f"/v1/jobs/{job_id}")
            response.raise_for_status()
            job: dict[str, Any] = response.json()
            if job["status"] == "succeeded":
                return job
            if job["status"] not in ("queued", "running"):
                raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}\n{self.tail()}")
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"job {job_id} did not finish in {JOB_TIMEOUT_SECONDS:g} s")

    def run(self, spec: dict[str, Any]) -> Timed:
        """Seconds from the job's started_at to its finished_at, and the worker's CPU time from
        submit to the bench seeing it finished (its idle polls in between cost next to nothing)."""
        before = self.worker_cpu()
        job = self.wait(self.submit(spec).job_id)
        after = self.worker_cpu()
        wall = (timestamp(job, "finished_at") - timestamp(job, "started_at")).total_seconds()
        cpu = after - before if before is not None and after is not None else None
        return Timed(wall=wall, cpu=cpu)

    def submit_to_running(self, spec: dict[str, Any]) -> float:
        """Seconds from sending the job to its started_at; returns once it finished."""
        submitted = self.submit(spec)
        job = self.wait(submitted.job_id)
        return (timestamp(job, "started_at") - submitted.sent).total_seconds()


# --- in-process ---------------------------------------------------------------------------------


class NoHooks:
    def on_epoch(self, metrics: EpochResult) -> None:
        pass

    def on_checkpoint(self, snapshot: Snapshot) -> None:
        pass

    def should_stop(self, *, epoch: int) -> StopReason | None:
        return None


def in_process(spec: dict[str, Any], *, device: torch.device) -> Timed:
    """train() on the spec as the service would plan it, with no-op hooks and the worker's
    checkpoint pace (so both take the same checkpoints): wall and CPU time."""
    parsed = JobSpec.model_validate(spec)
    planned = plan(parsed, data=describe_dataset(parsed.dataset)).spec
    pace = Settings().checkpoint_seconds  # the worker reads the same environment
    wall, cpu = time.perf_counter(), time.process_time()
    train(planned, device=device, hooks=NoHooks(), checkpoint_seconds=pace)
    return Timed(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Measured:
    service: dict[str, list[Timed]] = field(default_factory=lambda: {job: [] for job in JOBS})
    in_process: dict[str, list[Timed]] = field(default_factory=lambda: {job: [] for job in JOBS})
    latencies: list[float] = field(default_factory=list)


def measure(
    database: str,
    *,
    database_url: str,
    data_dir: Path,
    repeats: int,
    latency_samples: int,
    threads: int,
    device: Device,
) -> Measured:
    specs = {job: example(job) for job in JOBS}
    tiny = example("spiral-relu-adam", epochs=1)
    measured = Measured()
    local = pick_device(device)
    with Service(
        data_dir=data_dir, database_url=database_url, threads=threads, device=device
    ) as service:
        for spec in (example(job, epochs=1) for job in JOBS):  # first-use costs, both sides
            service.run(spec)
            in_process(spec, device=local)
        for repeat in range(repeats):
            for job, spec in specs.items():
                remote = service.run(spec)
                here = in_process(spec, device=local)
                measured.service[job].append(remote)
                measured.in_process[job].append(here)
                print(
                    f"{database} {job} {repeat + 1}/{repeats}: service {remote.wall:.3f} s "
                    f"(cpu {seconds(remote.cpu)}), in-process {here.wall:.3f} s "
                    f"(cpu {seconds(here.cpu)})",
                    file=sys.stderr,
                )
        pauses = random.Random(13)
        for _ in range(latency_samples):
            time.sleep(pauses.uniform(0.0, 1.0))
            measured.latencies.append(service.submit_to_running(tiny))
    return measured


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def cpu_median(runs: list[Timed]) -> float | None:
    values = [run.cpu for run in runs if run.cpu is not None]
    return statistics.median(values) if len(values) == len(runs) else None


def report(results: dict[str, Measured], *, repeats: int, threads: int, device: str) -> None:
    print(
        f"\nmedians of {repeats} interleaved runs, {threads} torch threads, {device}. service: "
        "started_at -> finished_at in a real `service up` with one worker; ratio: service / "
        "in-process; paired: the median of each repeat's own ratio; cpu: the worker's CPU "
        "time over this process's\n"
    )
    print(
        f"{'database':<11} {'job':<18} {'service s':>9} {'in-process s':>12} {'ratio':>6} "
        f"{'paired':>6} {'cpu ratio':>9}"
    )
    for database, measured in results.items():
        for job in JOBS:
            remote, here = measured.service[job], measured.in_process[job]
            service = statistics.median(run.wall for run in remote)
            local = statistics.median(run.wall for run in here)
            # A run and the one beside it share the machine's mood, so their own ratio is
            # steadier than the ratio of medians when the load drifts.
            paired = statistics.median(r.wall / h.wall for r, h in zip(remote, here, strict=True))
            remote_cpu, here_cpu = cpu_median(remote), cpu_median(here)
            cpu = f"{remote_cpu / here_cpu:.2f}x" if remote_cpu and here_cpu else "-"
            print(
                f"{database:<11} {job:<18} {service:>9.3f} {local:>12.3f} "
                f"{service / local:>5.2f}x {paired:>5.2f}x {cpu:>9}"
            )
    print()
    for database, measured in results.items():
        latencies = measured.latencies
        if not latencies:
            continue
        print(
            f"{database:<11} submit -> running, idle worker, {len(latencies)} one-epoch jobs: "
            f"p50 {1000 * percentile(latencies, 50):.0f} ms, "
            f"p95 {1000 * percentile(latencies, 95):.0f} ms, "
            f"max {1000 * max(latencies):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each job (default 3)")
    parser.add_argument(
        "--latency-samples", type=int, default=20, help="submissions timed (default 20)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads, in-process and the worker's (default: torch's, here "
        f"{torch.get_num_threads()})",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--databases",
        help=f"comma-separated, of {', '.join(DATABASES)} (default: sqlite, and postgresql when "
        f"{POSTGRES_ENV} is set)",
    )
    args = parser.parse_args()
    postgres_url = os.environ.get(POSTGRES_ENV)
    if args.databases is None:
        databases = ["sqlite", "postgresql"] if postgres_url else ["sqlite"]
    else:
        databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    for name in databases:
        if name not in DATABASES:
            parser.error(f"unknown database {name!r}: choose from {', '.join(DATABASES)}")
        if name == "postgresql" and not postgres_url:
            parser.error(f"postgresql needs {POSTGRES_ENV} (a postgresql+psycopg:// URL)")
    if args.repeats < 1 or args.latency_samples < 0:
        parser.error("--repeats must be at least 1 and --latency-samples at least 0")
    torch.set_num_threads(args.threads)
    # As the worker process sets them: the ratio is the bookkeeping's alone.
    keep_freed_memory()

    results: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(prefix="service-overhead-") as tmp:
        for name in databases:
            with database(name, postgres_url=postgres_url) as url:
                results[name] = measure(
                    name,
                    database_url=url,
                    data_dir=Path(tmp) / name,
                    repeats=args.repeats,
                    latency_samples=args.latency_samples,
                    threads=args.threads,
                    device=args.device,
                )
    report(results, repeats=args.repeats, threads=args.threads, device=args.device)


if __name__ == "__main__":
    main()
