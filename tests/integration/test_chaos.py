"""Chaos: worker processes killed with SIGKILL at random points across many jobs, and restarted.

Every job must reach a final state, every epoch's metrics must exist exactly once (and equal an
uninterrupted run's, bit for bit), and no job may be run by two workers at once.
"""

import random
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import stochastic_spec
from tests.jobs import history, queue_spec, read
from tests.servers import start_service

JOBS = 4
WORKERS = 2
KILLS = 5
LOG_LINE = re.compile(
    r"^(\S+ \S+) (?:INFO|WARNING) service\.worker\.loop: "
    r"job (\w+) (claimed|succeeded|handed back|abandoned)"
)


def parse_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.mark.parametrize("settings_overrides", [{"lease_seconds": 1.5, "max_attempts": 100}])
def test_random_sigkills_lose_nothing_and_never_double_run(
    sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    spec = stochastic_spec(epochs=120, checkpoint_every=10)
    reference_id = queue_spec(sessions, settings, spec)
    Worker(settings=settings, sessions=sessions).run_once()
    reference = history(sessions, reference_id)

    job_ids = [queue_spec(sessions, settings, spec) for _ in range(JOBS)]
    chaos = random.Random(7)
    started = 0
    kills: dict[int, float] = {}  # worker number -> when it was killed
    running: dict[int, subprocess.Popen[bytes]] = {}

    def start() -> None:
        nonlocal started
        running[started] = start_service(
            settings, "worker", log_path=str(tmp_path / f"worker-{started}.log")
        )
        started += 1

    for _ in range(WORKERS):
        start()
    deadline = time.monotonic() + 300
    try:
        while any(
            read(sessions, j).status not in ("succeeded", "failed", "cancelled") for j in job_ids
        ):
            assert time.monotonic() < deadline, "jobs did not finish"
            time.sleep(chaos.uniform(0.5, 2.5))
            if len(kills) < KILLS:
                victim = chaos.choice(sorted(running))
                running[victim].send_signal(signal.SIGKILL)
                running.pop(victim).wait()
                kills[victim] = time.time()
                start()
    finally:
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        for process in running.values():
            process.wait(timeout=60)

    assert len(kills) == KILLS
    for job_id in job_ids:
        assert read(sessions, job_id).status == "succeeded"
        assert history(sessions, job_id) == reference

    # Each job's claims, in time order: a new claim may only follow the previous holder's end
    # (it finished, handed the job back, or gave up) or its death.
    events: dict[str, list[tuple[float, int, str]]] = {}
    for number in range(started):
        for line in (tmp_path / f"worker-{number}.log").read_text().splitlines():
            if match := LOG_LINE.match(line):
                stamp, job_id, what = match.groups()
                events.setdefault(job_id, []).append((parse_time(stamp), number, what))
    assert sum(what == "claimed" for evs in events.values() for _, _, what in evs) >= JOBS
    for job_id, job_events in events.items():
        holder: int | None = None
        for moment, number, what in sorted(job_events):
            if what == "claimed":
                if holder is not None:
                    assert holder in kills, (
                        f"{job_id}: worker {number} claimed it while {holder} ran it"
                    )
                    assert kills[holder] <= moment, f"{job_id}: claimed before its holder died"
                holder = number
            elif number == holder:
                holder = None
