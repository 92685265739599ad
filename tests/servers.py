"""Real servers for tests: uvicorn in a thread, or `service` subprocesses on free ports."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from service.api.app import create_app
from service.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(url: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become ready in {timeout} s")


@contextmanager
def serve_in_thread(settings: Settings, *, app: FastAPI | None = None) -> Iterator[str]:
    """The api for these settings (or `app`, built from them) on a free port; yields its URL."""
    port = free_port()
    app = app or create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a `service` subprocess use these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERVICE_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"SERVICE_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_service(
    settings: Settings, *args: str, log_path: str | None = None
) -> subprocess.Popen[bytes]:
    """`python -m service.cli ARGS` with these settings; output to log_path if given."""
    command = [sys.executable, "-m", "service.cli", *args]
    if log_path is None:
        return subprocess.Popen(command, env=service_env(settings), stdout=subprocess.DEVNULL)
    # The child gets its own descriptor for the log; the parent's copy can close at once.
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command, env=service_env(settings), stdout=log, stderr=subprocess.STDOUT
        )


@contextmanager
def service_up(settings: Settings, *, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`service up` with these settings, answering on its port; stopped on the way out (SIGTERM)
    if the test has not stopped it."""
    up = start_service(settings, "up", log_path=str(log_path))
    try:
        wait_until_ready(f"http://127.0.0.1:{settings.port}", timeout=120)
        yield up
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=120)


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid` and their command lines, read from /proc (Linux)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent's pid is the second field after the command name, which may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited while we looked
    return found


def service_children(pid: int, command: str) -> list[int]:
    """The pids of `pid`'s children running `service <command>` (api or worker)."""
    return sorted(
        child
        for child, line in children(pid).items()
        if line.split()[2:4] == ["service.cli", command]
    )
