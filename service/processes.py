"""What `service up` and `service api` run as their children: the api processes, which share
one port, and the workers; the port, reserved by the parent; and the directory in which the api
processes' metrics meet. service/supervisor.py keeps the children running."""

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.settings import Settings
from service.supervisor import Program, Supervisor


def port_socket(settings: Settings) -> socket.socket:
    """SERVICE_HOST:SERVICE_PORT bound with SO_REUSEPORT, which lets every api process bind the
    port with a listening queue of its own; the kernel spreads new connections over them.

    Why not one socket bound by the parent and shared: each process's event loop accepts every
    connection waiting when it wakes, so one process took 55 to 64 of 64 clients connecting at
    once, and the others idled. Why not uvicorn's own workers: the same shared socket. The cost
    of SO_REUSEPORT: connections still waiting in a process's queue when it dies are reset, and
    a process of the same user could join the port (other users cannot)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    bound = socket.socket(family, socket.SOCK_STREAM)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    bound.bind((settings.host, settings.port))
    return bound


@contextmanager
def reserved_port(settings: Settings) -> Iterator[None]:
    """The port, bound by the parent but not listened on (only listening sockets are given
    connections): a port in use fails here, before any child starts, and no program without
    SO_REUSEPORT can take it while the children restart."""
    try:
        bound = port_socket(settings)
    except OSError as error:
        raise SystemExit(
            f"cannot serve on {settings.host}:{settings.port}: {error.strerror} "
            "(set SERVICE_HOST and SERVICE_PORT)"
        ) from error
    with bound:
        yield


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """A fresh directory for prometheus_client's multiprocess files, removed at the end (a
    directory left from an earlier run would add that run's counts to this one's)."""
    path = Path(tempfile.mkdtemp(prefix="service-metrics-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def api_programs(settings: Settings, *, metrics_dir: Path) -> list[Program]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    command = [sys.executable, "-m", "service.cli", "api", "--sibling"]
    return [
        Program(name=f"api {number}", command=command, env=env)
        for number in range(1, settings.api_processes + 1)
    ]


def worker_programs(settings: Settings) -> list[Program]:
    env = dict(os.environ)
    if settings.torch_threads == 0 and settings.workers:
        env["SERVICE_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.workers))
    command = [sys.executable, "-m", "service.cli", "worker"]
    return [
        Program(name=f"worker {number}", command=command, env=env)
        for number in range(1, settings.workers + 1)
    ]


def supervise(programs: list[Program], *, metrics_dir: Path) -> None:
    """Run the children until SIGTERM or SIGINT (see service/supervisor.py)."""
    from prometheus_client import multiprocess

    def forget(pid: int) -> None:
        # Its gauges (networks cached, streams open) no longer count; its counters still do.
        multiprocess.mark_process_dead(pid, str(metrics_dir))

    Supervisor(programs, on_exit=forget).run()
