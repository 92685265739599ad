"""The supervisor with real child processes and a clock the test moves, so no test waits for a
backoff to pass."""

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from service.supervisor import (
    HEALTHY_SECONDS,
    MAX_DELAY,
    Program,
    Supervisor,
    describe_exit,
    restart_delay,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def python(code: str, *, name: str = "child") -> Program:
    return Program(name=name, command=[sys.executable, "-c", code], env=dict(os.environ))


SLEEPS = "import time; time.sleep(600)"


def wait_exited(supervisor: Supervisor) -> None:
    for child in supervisor.children:
        assert child.process is not None
        child.process.wait(timeout=30)


def test_quick_exits_back_off_doubling_to_the_cap_and_a_healthy_run_restarts_at_once() -> None:
    assert [restart_delay(ran_for=0.5, quick_exits=n) for n in (1, 2, 3, 4, 5, 6)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        MAX_DELAY,
    ]
    assert restart_delay(ran_for=0.5, quick_exits=50) == MAX_DELAY
    assert restart_delay(ran_for=HEALTHY_SECONDS, quick_exits=1) == 0.0


def test_exits_are_described_by_code_or_signal_name() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"


def test_a_child_that_keeps_failing_is_restarted_later_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    exited: list[int] = []
    supervisor = Supervisor(
        [python("import sys; sys.exit(3)", name="worker 1")], on_exit=exited.append, clock=clock
    )
    caplog.set_level(logging.INFO, logger="service.supervisor")
    supervisor.check()
    first = supervisor.pids()
    wait_exited(supervisor)

    clock.now = 0.5
    supervisor.check()
    assert supervisor.pids() == []
    assert exited == first
    assert f"worker 1 (pid {first[0]}) exited with code 3 after 0.5 s; restarting it in 1 s" in (
        caplog.text
    )
    clock.now = 1.4
    supervisor.check()
    assert supervisor.pids() == [], "restarted before its delay"
    clock.now = 1.5
    supervisor.check()
    second = supervisor.pids()
    assert len(second) == 1
    assert second != first
    wait_exited(supervisor)

    clock.now = 2.0  # the second quick exit in a row waits twice as long
    supervisor.check()
    assert "restarting it in 2 s (quick exits in a row: 2)" in caplog.text
    clock.now = 3.9
    supervisor.check()
    assert supervisor.pids() == []
    clock.now = 4.0
    supervisor.check()
    assert len(supervisor.pids()) == 1
    supervisor.stop()


def test_a_child_killed_after_running_a_good_while_is_restarted_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    supervisor = Supervisor([python(SLEEPS, name="worker 2")], clock=clock)
    caplog.set_level(logging.INFO, logger="service.supervisor")
    supervisor.check()
    (victim,) = supervisor.pids()
    os.kill(victim, signal.SIGKILL)
    wait_exited(supervisor)

    clock.now = HEALTHY_SECONDS + 1
    supervisor.check()
    (replacement,) = supervisor.pids()
    assert replacement != victim
    assert (
        f"worker 2 (pid {victim}) was killed by SIGKILL after {HEALTHY_SECONDS + 1:.1f} s; "
        "restarting it now"
    ) in caplog.text
    supervisor.stop()


def test_stop_sends_sigterm_to_every_child_waits_for_them_and_restarts_nothing(
    tmp_path: Path,
) -> None:
    # One child that, like a worker, finishes what it does on SIGTERM and exits 0.
    done = tmp_path / "done"
    graceful = (
        "import signal, sys, time, pathlib\n"
        "def stop(*_):\n"
        f"    time.sleep(0.5); pathlib.Path({str(done)!r}).touch(); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).touch()\n"
        "time.sleep(600)\n"
    )
    exited: list[int] = []
    supervisor = Supervisor(
        [python(graceful, name="worker"), python(SLEEPS, name="api")], on_exit=exited.append
    )
    supervisor.check()
    pids = supervisor.pids()
    while not (tmp_path / "ready").exists():
        time.sleep(0.05)
    processes = [child.process for child in supervisor.children]

    supervisor.stop()
    assert done.exists(), "stop() returned before the graceful child finished"
    assert [p.returncode for p in processes if p is not None] == [0, -signal.SIGTERM]
    assert sorted(exited) == sorted(pids)
    supervisor.check()
    assert supervisor.pids() == [], "a child was started while stopping"


def test_a_second_signal_kills_children_that_do_not_stop(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).touch()\n"
        "time.sleep(600)\n"
    )
    supervisor = Supervisor([python(stubborn)])
    supervisor.check()
    while not (tmp_path / "ready").exists():
        time.sleep(0.05)
    (child,) = supervisor.children
    process = child.process
    stopping = threading.Thread(target=supervisor.stop)
    stopping.start()
    stopping.join(timeout=1)
    assert stopping.is_alive(), "it ignores SIGTERM, so stop() waits"
    supervisor.forced.set()
    stopping.join(timeout=30)
    assert not stopping.is_alive()
    assert process is not None
    assert process.returncode == -signal.SIGKILL
