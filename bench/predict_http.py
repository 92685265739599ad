"""Predict over HTTP: the service's /predict beside the same endpoint as an ordinary FastAPI
route, a textbook FastAPI endpoint and a constant one.

    .venv/bin/python bench/predict_http.py [--rounds 5] [--seconds 3]

Trains seed 002's SimpleNN (Linear(784, 128), ReLU, Linear(128, 10)) as a real job on SQLite in
a temporary directory, then starts two uvicorn processes serving the real app: one with request
batching on (the default), one with it off (SERVICE_PREDICT_BATCHING=false). The first also
serves three baselines:

- ordinary: the service's predict written as an ordinary FastAPI route, the one thing that
  `PredictRoute` (service/api/routes/predictions.py) does differently: the key checked by the
  `Caller` dependency, the predictor and telemetry from `Depends`, `checkpoint` and `top_k`
  validated as query parameters, the body read as bytes from the Request, the same Predictor
  call (orjson decoding, batching) and the same timing for /metrics. Registered first, like
  predict, so both are matched after the same number of routes.
- plain: a textbook endpoint; pydantic validates `inputs: list[list[float]]`, the network runs
  per request under torch.no_grad(), the response is a pydantic model.
- constant: returns a constant; the ceiling of FastAPI + uvicorn on this machine.

A raw asyncio HTTP/1.1 client (keep-alive, one connection per simulated client) runs in this
process, apart from the servers, so it does not compete with their event loops. Every
scenario and endpoint runs once per round, interleaved, and the table shows each one's median
over the rounds, because a shared machine is noisy. It prints ratios against the baselines.
"""

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JSON, NPY = "application/json", "application/x-npy"
PLAIN, CONSTANT = "plain FastAPI", "constant"
ORDINARY = "predict (ordinary)"

# Seed 002's SimpleNN as examples/ ships it, trained for 2 epochs: the weights do not matter.
SIMPLE_NN = {**json.loads((ROOT / "examples" / "sum-bins-simplenn.json").read_text()), "epochs": 2}


# --- the servers ------------------------------------------------------------------------------


def serve(port: int, job_id: str, *, loop: str, http: str) -> None:
    """A server process: the real app, plus the three baselines on the same event loop."""
    import torch
    import uvicorn
    from fastapi import Query, Request
    from fastapi.responses import Response
    from pydantic import BaseModel

    from service import repository, repository_checkpoints
    from service.api.app import create_app
    from service.api.deps import Caller, PredictorDep, TelemetryDep
    from service.db import transaction
    from service.schemas import PredictOut
    from service.settings import Settings
    from service.specs import JobSpec
    from service.training.checkpoints import load_weights
    from service.training.networks import build_network

    settings = Settings()
    app = create_app(settings)
    with transaction(app.state.sessions) as session:
        job = repository.get_job(session, job_id=job_id)
        row = repository_checkpoints.find_checkpoint(session, job_id=job_id, ref="best")
        assert job is not None
        assert row is not None
        network = build_network(
            JobSpec.model_validate(job.spec).model.layers, device=torch.device("cpu")
        )
        load_weights(network, row.weights)
    network.eval()

    class PlainIn(BaseModel):
        inputs: list[list[float]]

    class PlainOut(BaseModel):
        predictions: list[int]
        probabilities: list[list[float]]

    @app.post("/bench/plain")
    def plain(body: PlainIn) -> PlainOut:
        with torch.no_grad():
            probabilities = torch.softmax(network(torch.tensor(body.inputs)), dim=1)
        return PlainOut(
            predictions=probabilities.argmax(dim=1).tolist(),
            probabilities=probabilities.tolist(),
        )

    constant: dict[str, object] = {"predictions": [3], "checkpoint": {"epoch": 2, "kind": "best"}}

    @app.post("/bench/constant")
    async def constant_answer() -> dict[str, object]:
        return constant

    @app.post("/bench/ordinary/{job_id}/predict", response_model=PredictOut)
    async def ordinary(
        job_id: str,
        request: Request,
        caller: Caller,
        predictor: PredictorDep,
        telemetry: TelemetryDep,
        checkpoint: Annotated[str | None, Query(max_length=20)] = None,
        top_k: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        started = time.perf_counter()
        try:
            answer = await predictor.predict(
                job_id=job_id,
                owner_id=caller.id,
                body=await request.body(),
                content_type=request.headers.get("content-type"),
                checkpoint=checkpoint,
                top_k=None if top_k is None else str(top_k),
            )
            return Response(answer, media_type=JSON)
        finally:
            telemetry.prediction_seconds.observe(time.perf_counter() - started)

    # First in line, like the service's predict (app.py registers it ahead of the routers).
    app.router.routes.insert(0, app.router.routes.pop())

    @app.get("/bench/batching")
    async def batching() -> dict[str, int]:
        batcher = app.state.predictor.batcher
        return {"requests": batcher.requests, "passes": batcher.passes} if batcher else {}

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=loop,
        http=http,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    env: dict[str, str], *, job_id: str, log: Path, loop: str = "auto", http: str = "auto"
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", str(port), "--job", job_id]
    process = subprocess.Popen(
        [*command, "--loop", loop, "--http", http],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


# --- the job ----------------------------------------------------------------------------------


def train_job(data_dir: Path) -> tuple[dict[str, str], str, str]:
    """Train SimpleNN for real; returns the servers' environment, the API key and the job id."""
    from service import jobs, keys, migrations
    from service.db import make_engine, make_session_factory, transaction
    from service.settings import Settings
    from service.specs import JobSpec
    from service.worker.loop import Worker

    settings = Settings(data_dir=data_dir, device="cpu")
    engine = make_engine(settings.database_url)
    migrations.upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions, immediate=True) as session:
        owner, key = keys.create_key(session, name="bench")
        spec = JobSpec.model_validate(SIMPLE_NN)
        job = jobs.submit(session, spec=spec, owner_id=owner.id, settings=settings)
    Worker(settings=settings, sessions=sessions).run_once()
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    env.update(
        SERVICE_DATA_DIR=str(data_dir),
        SERVICE_DEVICE="cpu",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env, key, job.id


# --- the load generator -----------------------------------------------------------------------


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    completed: int = 0  # requests answered, the warm-up's included
    cpu_seconds: float = 0.0  # the serving process's CPU time over the whole run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def request_bytes(*, port: int, path: str, key: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    port: int, payload: bytes, *, start: float, stop: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    completed = 0
    try:
        while True:
            sent = time.perf_counter()
            if sent >= stop:
                return completed
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"HTTP {status.decode()}: {head.decode()[:200]}")
            done = time.perf_counter()
            completed += 1
            if sent >= start:
                latencies.append(done - sent)
    finally:
        writer.close()


async def _load(port: int, payload: bytes, *, clients: int, seconds: float) -> Result:
    warmup = 0.5
    start = time.perf_counter() + warmup
    stop = start + seconds
    latencies: list[float] = []
    completed = await asyncio.gather(
        *(
            _client(port, payload, start=start, stop=stop, latencies=latencies)
            for _ in range(clients)
        )
    )
    return Result(
        requests=len(latencies), seconds=seconds, latencies=latencies, completed=sum(completed)
    )


def load(port: int, payload: bytes, *, clients: int, seconds: float) -> Result:
    return asyncio.run(_load(port, payload, clients=clients, seconds=seconds))


# --- the run ----------------------------------------------------------------------------------


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    body: bytes
    content_type: str
    endpoints: tuple[str, ...]


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--loop", default="auto", help="uvicorn's loop: auto, asyncio, uvloop")
    parser.add_argument("--http", default="auto", help="uvicorn's http: auto, h11, httptools")
    parser.add_argument(
        "--api-processes",
        help="instead: compare `service api` with these SERVICE_API_PROCESSES, e.g. 1,2",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.job, loop=args.loop, http=args.http)
        return
    if args.api_processes:
        counts = [int(count) for count in args.api_processes.split(",")]
        compare_api_processes(counts, rounds=args.rounds, seconds=args.seconds)
        return

    rng = np.random.default_rng(2)
    one_row = rng.standard_normal((1, 784)).astype(np.float32)
    batch = rng.standard_normal((64, 784)).astype(np.float32)
    json_one = orjson.dumps({"inputs": one_row}, option=orjson.OPT_SERIALIZE_NUMPY)
    json_batch = orjson.dumps({"inputs": batch}, option=orjson.OPT_SERIALIZE_NUMPY)
    ours = ("predict (batching)", "predict (no batching)")
    scenarios = [
        Scenario(f"1 row JSON, {c} clients", c, json_one, JSON, (*ours, ORDINARY, PLAIN, CONSTANT))
        for c in (1, 16, 64)
    ] + [
        Scenario("64 rows JSON, 4 clients", 4, json_batch, JSON, (*ours, PLAIN)),
        Scenario("64 rows .npy, 4 clients", 4, npy(batch), NPY, ours),
    ]

    with tempfile.TemporaryDirectory() as tmp:
        env, key, job_id = train_job(Path(tmp) / "data")
        servers = [
            start_server(
                env, job_id=job_id, log=Path(tmp) / "batching.log", loop=args.loop, http=args.http
            ),
            start_server(
                {**env, "SERVICE_PREDICT_BATCHING": "false"},
                job_id=job_id,
                log=Path(tmp) / "no-batching.log",
                loop=args.loop,
                http=args.http,
            ),
        ]
        (batching, batching_port), (_, no_batching_port) = servers
        predict = f"/v1/jobs/{job_id}/predict"
        endpoints = {
            ours[0]: (batching, batching_port, predict),
            ours[1]: (servers[1][0], no_batching_port, predict),
            ORDINARY: (batching, batching_port, f"/bench/ordinary/{job_id}/predict"),
            PLAIN: (batching, batching_port, "/bench/plain"),
            CONSTANT: (batching, batching_port, "/bench/constant"),
        }
        results: dict[tuple[str, str], list[Result]] = {}
        merged: dict[str, list[float]] = {}
        try:
            for _process, port, path in endpoints.values():  # load every network, warm each path
                payload = request_bytes(
                    port=port, path=path, key=key, body=json_one, content_type=JSON
                )
                load(port, payload, clients=4, seconds=0.5)
            for round_number in range(args.rounds):
                for scenario in scenarios:
                    for name in scenario.endpoints:
                        process, port, path = endpoints[name]
                        payload = request_bytes(
                            port=port,
                            path=path,
                            key=key,
                            body=scenario.body,
                            content_type=scenario.content_type,
                        )
                        before = batcher_totals(batching_port)
                        cpu = server_cpu_seconds(process.pid)
                        result = load(port, payload, clients=scenario.clients, seconds=args.seconds)
                        result.cpu_seconds = server_cpu_seconds(process.pid) - cpu
                        results.setdefault((scenario.name, name), []).append(result)
                        if name == ours[0]:
                            after = batcher_totals(batching_port)
                            passes = after[1] - before[1]
                            merged.setdefault(scenario.name, []).append(
                                (after[0] - before[0]) / max(passes, 1)
                            )
                print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            for process, _port in servers:
                process.terminate()
                process.wait(timeout=30)
    report(results, scenarios, merged)


def batcher_totals(port: int) -> tuple[int, int]:
    totals = httpx.get(f"http://127.0.0.1:{port}/bench/batching").json()
    return totals["requests"], totals["passes"]


def report(
    results: dict[tuple[str, str], list[Result]],
    scenarios: list[Scenario],
    merged: dict[str, list[float]],
) -> None:
    print(
        f"\n{'scenario':<25} {'endpoint':<22} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu us/req':>10} {'req/pass':>8}"
    )
    medians: dict[tuple[str, str], tuple[float, float, float]] = {}
    for scenario in scenarios:
        for name in scenario.endpoints:
            runs = results[scenario.name, name]
            rps, p50, p99 = medians[scenario.name, name] = (
                statistics.median(r.rps for r in runs),
                statistics.median(r.percentile(0.5) for r in runs),
                statistics.median(r.percentile(0.99) for r in runs),
            )
            cpu = statistics.median(1e6 * r.cpu_seconds / max(r.completed, 1) for r in runs)
            per_pass = (
                f"{statistics.median(merged[scenario.name]):8.1f}"
                if name == "predict (batching)"
                else ""
            )
            print(
                f"{scenario.name:<25} {name:<22} {rps:>7.0f} {p50:>8.2f} {p99:>8.2f} "
                f"{cpu:>10.0f} {per_pass}"
            )
    print(
        "\nmedians over the rounds; cpu us/req: the serving process's CPU time per request "
        "(the 1-row JSON endpoints share a process but run one at a time)\n"
    )
    for clients in (1, 16, 64):
        row = f"1 row JSON, {clients} clients"
        plain, constant = medians[row, PLAIN], medians[row, CONSTANT]
        for name in ("predict (batching)", "predict (no batching)"):
            ours = medians[row, name]
            print(
                f"{row}, {name}: {ours[0] / plain[0]:.2f}x plain and "
                f"{ours[0] / constant[0]:.2f}x constant req/s; p99 {ours[2]:.1f} ms "
                f"(plain {plain[2]:.1f})"
            )
    for clients in (1, 16, 64):
        row = f"1 row JSON, {clients} clients"
        route, ordinary = medians[row, "predict (batching)"], medians[row, ORDINARY]
        print(
            f"{row}: the ordinary route serves {ordinary[0] / route[0]:.2f}x PredictRoute's "
            f"req/s ({ordinary[0]:.0f} against {route[0]:.0f}); p99 {ordinary[2]:.1f} ms "
            f"against {route[2]:.1f}"
        )
    plain_batch = medians["64 rows JSON, 4 clients", PLAIN][0]
    for name in ("predict (batching)", "predict (no batching)"):
        print(
            f"64 rows, 4 clients, {name}: .npy "
            f"{medians['64 rows .npy, 4 clients', name][0] / plain_batch:.2f}x and JSON "
            f"{medians['64 rows JSON, 4 clients', name][0] / plain_batch:.2f}x plain JSON req/s"
        )


# --- SERVICE_API_PROCESSES --------------------------------------------------------------------


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process and its children (the api processes `service api` starts)."""
    total = server_cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                total += server_cpu_seconds(int(entry.name))
        except FileNotFoundError:
            continue
    return total


def compare_api_processes(counts: list[int], *, rounds: int, seconds: float) -> None:
    """The real `service api` with each SERVICE_API_PROCESSES in `counts`, all started at once
    on ports of their own. Every round loads each in turn (interleaved, the order reversed every
    other round) with one-row and 64-row predict requests; the table shows medians over the
    rounds, and each count's ratio to the first as the median of the rounds' own ratios, which
    drifts less with the load other work puts on the machine."""
    rng = np.random.default_rng(2)
    scenarios = {
        "1 row JSON, 64 clients": (64, rng.standard_normal((1, 784)).astype(np.float32)),
        "64 rows JSON, 16 clients": (16, rng.standard_normal((64, 784)).astype(np.float32)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        env, key, job_id = train_job(Path(tmp) / "data")
        servers: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for count in counts:
                port = free_port()
                servers[count] = (
                    subprocess.Popen(
                        [sys.executable, "-m", "service.cli", "api"],
                        env={**env, "SERVICE_PORT": str(port), "SERVICE_API_PROCESSES": str(count)},
                        stdout=(Path(tmp) / f"api-{count}.log").open("wb"),
                        stderr=subprocess.STDOUT,
                    ),
                    port,
                )
            for _process, port in servers.values():
                wait_healthy(port)
            payloads = {
                (name, count): request_bytes(
                    port=port,
                    path=f"/v1/jobs/{job_id}/predict",
                    key=key,
                    body=orjson.dumps({"inputs": inputs}, option=orjson.OPT_SERIALIZE_NUMPY),
                    content_type=JSON,
                )
                for name, (_clients, inputs) in scenarios.items()
                for count, (_process, port) in servers.items()
            }
            for (name, count), payload in payloads.items():  # every process loads the network
                load(servers[count][1], payload, clients=scenarios[name][0], seconds=0.5)
            results: dict[tuple[str, int], list[Result]] = {}
            client_cpu: dict[tuple[str, int], list[float]] = {}
            for round_number in range(rounds):
                order = counts if round_number % 2 == 0 else counts[::-1]
                for name, (clients, _inputs) in scenarios.items():
                    for count in order:
                        process, port = servers[count]
                        cpu, own = process_tree_cpu_seconds(process.pid), time.process_time()
                        result = load(port, payloads[name, count], clients=clients, seconds=seconds)
                        result.cpu_seconds = process_tree_cpu_seconds(process.pid) - cpu
                        results.setdefault((name, count), []).append(result)
                        client_cpu.setdefault((name, count), []).append(
                            (time.process_time() - own) / max(result.completed, 1)
                        )
                print(f"round {round_number + 1} of {rounds} done", file=sys.stderr)
        finally:
            for process, _port in servers.values():
                process.terminate()
                process.wait(timeout=60)

    print(
        f"\n{'scenario':<25} {'api processes':>13} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu us/req':>10} {'client us':>9} {'ratio':>6}"
    )
    for name in scenarios:
        first = results[name, counts[0]]
        for count in counts:
            runs = results[name, count]
            ratio = statistics.median(r.rps / f.rps for r, f in zip(runs, first, strict=True))
            cpu = statistics.median(1e6 * r.cpu_seconds / max(r.completed, 1) for r in runs)
            print(
                f"{name:<25} {count:>13} {statistics.median(r.rps for r in runs):>7.0f} "
                f"{statistics.median(r.percentile(0.5) for r in runs):>8.2f} "
                f"{statistics.median(r.percentile(0.99) for r in runs):>8.2f} "
                f"{cpu:>10.0f} "
                f"{1e6 * statistics.median(client_cpu[name, count]):>9.0f} "
                f"{ratio:>5.2f}x"
            )
    print(
        f"\nmedians over {rounds} rounds on {os.cpu_count()} cores; ratio: req/s against "
        f"{counts[0]} api process(es), the median of each round's; cpu us/req: the api "
        "processes' CPU time per request; client us: the load generator's, which shares the cores"
    )


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the api on port {port} did not start")


if __name__ == "__main__":
    main()
