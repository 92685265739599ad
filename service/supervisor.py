"""The parent process of `service up` (and of `service api` with several api processes): it runs
nothing itself but its children, and restarts any child that exits without being asked to.

Why a parent of its own, rather than the api serving in it: the api and the workers are the
processes that import torch, hold networks and datasets in memory, and so can crash in native
code or be picked by the kernel's out-of-memory killer. The parent imports none of that; it runs
the loop below in its main thread, where the signals that stop it are handled.

A child that exits while the supervisor is not stopping is restarted: at once if it had run
HEALTHY_SECONDS or more, else after a delay that doubles with each quick exit in a row, from
FIRST_DELAY up to MAX_DELAY, so a child that cannot start (a bad setting, a database that
refuses it) does not spin. Each exit is logged with its exit code or the signal that ended it.

SIGTERM or SIGINT stops the supervisor: nothing is restarted any more, every child gets SIGTERM
once (a worker finishes its epoch and hands its job back; an api process finishes its requests)
and is waited for. The children run in process groups of their own, so a terminal's Ctrl-C
reaches only this parent and each child is asked exactly once. A second signal kills what is
left with SIGKILL; a worker killed so loses the epochs since its last checkpoint, which its
job's next attempt trains again.
"""

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

# The first restart of a child that keeps exiting quickly waits this long; each further quick
# exit in a row doubles the wait, up to MAX_DELAY.
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
# A child that ran this long was healthy: it is restarted at once and its quick exits forgotten.
HEALTHY_SECONDS = 30.0
# How often the loop looks at its children: a dead one is noticed within this.
TICK_SECONDS = 0.2


def restart_delay(*, ran_for: float, quick_exits: int) -> float:
    """Seconds to wait before restarting a child that ran `ran_for` seconds; `quick_exits` counts
    this exit and the quick ones right before it."""
    if ran_for >= HEALTHY_SECONDS:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (quick_exits - 1))


def describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


@dataclass(frozen=True)
class Program:
    """One child to keep running: a name for the log, its command line and environment."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]


@dataclass
class _Child:
    program: Program
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    restart_at: float = 0.0  # when a child that is not running is started again


class Supervisor:
    def __init__(
        self,
        programs: Sequence[Program],
        *,
        on_exit: Callable[[int], None] = lambda pid: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [_Child(program) for program in programs]
        self.on_exit = on_exit  # called with the pid of every child that has exited
        self.clock = clock
        self.stopping = threading.Event()
        self.forced = threading.Event()

    def run(self) -> None:
        """Start every child, keep them running until SIGTERM or SIGINT, then stop them all."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.check()
        while not self.stopping.wait(TICK_SECONDS):
            self.check()
        self.stop()

    def pids(self) -> list[int]:
        return [child.process.pid for child in self.children if child.process is not None]

    def check(self) -> None:
        """Note the children that have exited, and start those whose time has come."""
        now = self.clock()
        for child in self.children:
            if child.process is not None and (code := child.process.poll()) is not None:
                self._exited(child, code, now=now)
            if child.process is None and child.restart_at <= now and not self.stopping.is_set():
                self._start(child, now=now)

    def stop(self) -> None:
        """SIGTERM to every running child, then wait for all of them; after a second signal
        (`forced`), SIGKILL to those still running."""
        self.stopping.set()
        running = [child for child in self.children if child.process is not None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        killed = False
        while any(child.process.poll() is None for child in running if child.process):
            if self.forced.wait(TICK_SECONDS) and not killed:
                for child in running:
                    assert child.process is not None
                    child.process.kill()
                killed = True
        for child in running:
            assert child.process is not None
            code = child.process.returncode
            name, pid = child.program.name, child.process.pid
            log.info("%s (pid %d) stopped: %s", name, pid, describe_exit(code))
            self.on_exit(pid)
            child.process = None

    def _start(self, child: _Child, *, now: float) -> None:
        program = child.program
        child.process = subprocess.Popen(program.command, env=program.env, process_group=0)
        child.started_at = now
        log.info("%s started (pid %d)", program.name, child.process.pid)

    def _exited(self, child: _Child, code: int, *, now: float) -> None:
        assert child.process is not None
        ran_for = now - child.started_at
        child.quick_exits = 0 if ran_for >= HEALTHY_SECONDS else child.quick_exits + 1
        delay = restart_delay(ran_for=ran_for, quick_exits=child.quick_exits)
        child.restart_at = now + delay
        log.error(
            "%s (pid %d) %s after %.1f s; restarting it %s",
            child.program.name,
            child.process.pid,
            describe_exit(code),
            ran_for,
            f"in {delay:g} s (quick exits in a row: {child.quick_exits})" if delay else "now",
        )
        self.on_exit(child.process.pid)
        child.process = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopping.is_set():
            log.warning("got %s again: killing the children still running", name)
            self.forced.set()
        else:
            log.info("got %s: stopping every child (a second one kills them)", name)
            self.stopping.set()
