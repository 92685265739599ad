"""The database's faults under a whole `service up` on PostgreSQL: two workers and two api
processes, while four jobs train. The network between them and the database is cut for 5 s by a
real TCP proxy, or the server kills every connection they hold mid-training. Either way every
job succeeds with its epochs 1..N stored once and the losses and weights of an uninterrupted
twin, no process exits (so the supervisor restarts nothing), and the api answers 503 with
Retry-After while the database is away and normally as soon as it is back."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import stochastic_spec, tiny_spec
from tests.jobs import history, queue_spec, read, wait_for
from tests.proxy import Proxy
from tests.servers import free_port, service_children, service_up

EPOCHS = 300
# Four jobs, two of each seed: a job stored under another's id would not match its twin.
SEEDS = (2024, 2025, 2024, 2025)
# Epochs each running job has stored before the fault: it strikes mid-training.
FAULT_AT_EPOCH = 20
ESTABLISHED = "01"  # a TCP state in /proc/net/tcp

History = tuple[list[tuple], str]  # tests.jobs.history: every epoch's numbers, final weights


def spec(seed: int) -> dict:
    return stochastic_spec(epochs=EPOCHS, checkpoint_every=20, seed=seed)


def twins(sessions: sessionmaker[Session], settings: Settings) -> dict[int, History]:
    """Each seed's job run once, uninterrupted, in this process: its epochs and final weights."""
    runs = {}
    for seed in sorted(set(SEEDS)):
        job_id = queue_spec(sessions, settings, spec(seed))
        assert Worker(settings=settings, sessions=sessions).run_once()
        runs[seed] = history(sessions, job_id)
    return runs


def up_settings(settings: Settings, *, database_url: str) -> Settings:
    return settings.model_copy(
        update={"database_url": database_url, "port": free_port(), "workers": 2, "api_processes": 2}
    )


@pytest.fixture
def postgres(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("a database across a network, whose server kills connections: PostgreSQL")


def client_for(settings: Settings, *, key: str) -> httpx.Client:
    """A client that opens a new connection for every request: the kernel spreads new
    connections over the api processes (SO_REUSEPORT), where one kept alive would reach one."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def submit(client: httpx.Client, body: dict) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def processes(up_pid: int) -> list[int]:
    """The api processes and workers `service up` runs."""
    return service_children(up_pid, "api") + service_children(up_pid, "worker")


def training(sessions: sessionmaker[Session], job_ids: list[str]) -> list[str]:
    """The jobs running with FAULT_AT_EPOCH epochs stored: one per worker once both train."""
    return [
        job_id
        for job_id in job_ids
        if (job := read(sessions, job_id)).status == "running" and job.epoch >= FAULT_AT_EPOCH
    ]


def assert_cost_nothing(
    sessions: sessionmaker[Session], job_ids: list[str], references: dict[int, History]
) -> None:
    for job_id, seed in zip(job_ids, SEEDS, strict=True):
        job = read(sessions, job_id)
        assert (job.status, job.error) == ("succeeded", None)
        resumed = history(sessions, job_id)
        assert [row[0] for row in resumed[0]] == list(range(1, EPOCHS + 1))
        assert resumed == references[seed]


def connections(pid: int) -> set[tuple[int, int]]:
    """The (local port, remote port) of each established TCP connection process `pid` holds,
    from /proc (Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except FileNotFoundError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            _, local, remote, state, *rest = line.split()
            if rest[5] in inodes and state == ESTABLISHED:
                found.add((int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)))
    return found


def ports_to(pid: int, port: int) -> set[int]:
    """The local ports of process `pid`'s connections to `port`."""
    return {local for local, remote in connections(pid) if remote == port}


def ask_every_api_process(
    client: httpx.Client, up_pid: int, *, job_id: str, database_port: int
) -> None:
    """Send requests until every api process holds a database connection in its pool."""

    def asked() -> bool:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return all(ports_to(pid, database_port) for pid in service_children(up_pid, "api"))

    wait_for(asked)


@pytest.fixture
def proxy(postgres: None, settings: Settings) -> Iterator[Proxy]:
    upstream = make_url(settings.database_url)
    with Proxy(upstream=(upstream.host or "127.0.0.1", upstream.port or 5432)) as running:
        yield running


def test_a_five_second_cut_between_service_up_and_postgres_costs_the_jobs_nothing(
    proxy: Proxy,
    settings: Settings,
    sessions: sessionmaker[Session],
    api_key: str,
    tmp_path: Path,
) -> None:
    references = twins(sessions, settings)
    behind = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    settings = up_settings(settings, database_url=behind.render_as_string(hide_password=False))
    log = tmp_path / "up.log"
    with service_up(settings, log_path=log) as up, client_for(settings, key=api_key) as client:
        before = processes(up.pid)
        assert len(before) == 4
        job_ids = [submit(client, spec(seed)) for seed in SEEDS]
        wait_for(lambda: len(training(sessions, job_ids)) == 2, timeout=120)
        ask_every_api_process(client, up.pid, job_id=job_ids[0], database_port=proxy.port)

        proxy.cut()
        try:
            cut_at = time.monotonic()
            # New connections each (client_for): both api processes are asked, most likely.
            during = [
                response
                for _ in range(4)
                for response in (
                    client.get(f"/v1/jobs/{job_ids[0]}"),
                    client.post("/v1/jobs", json=tiny_spec()),
                )
            ]
            time.sleep(max(0.0, cut_at + 5 - time.monotonic()))
        finally:
            proxy.restore()

        for response in during:
            assert (response.status_code, response.headers.get("retry-after")) == (503, "5")
            assert response.json()["error"] == "DatabaseUnavailable"
            assert response.json()["detail"].startswith("the database is unavailable (")
        # Every api process answers again, on a new connection through the proxy.
        ask_every_api_process(client, up.pid, job_id=job_ids[0], database_port=proxy.port)
        after = submit(client, tiny_spec())
        wait_for(
            lambda: all(read(sessions, j).status == "succeeded" for j in [*job_ids, after]),
            timeout=240,
        )
        assert processes(up.pid) == before, "a process of service up exited"
        # The submissions refused during the cut stored nothing.
        assert len(client.get("/v1/jobs", params={"limit": 100}).json()["jobs"]) == 5

    assert_cost_nothing(sessions, job_ids, references)
    output = log.read_text()
    assert output.count("paused at a database fault") >= 2
    assert "restarting" not in output
    assert "Traceback" not in output


# --- the server kills every connection the service holds ---------------------------------------


def terminate_backends(sessions: sessionmaker[Session], ports: set[int]) -> int:
    """pg_terminate_backend on every backend whose client is one of these local ports."""
    with transaction(sessions) as session:
        query = text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE client_port = ANY(:ports) AND pid <> pg_backend_pid()"
        )
        return int(session.execute(query, {"ports": sorted(ports)}).scalar() or 0)


def waiting_on_a_lock(sessions: sessionmaker[Session], pids: list[int], port: int) -> set[int]:
    """Which of these processes have a connection waiting on a lock in the database. Counted by
    process, not by connection: a worker whose metrics writer waits may store a checkpoint from
    its training thread as well, a second waiting connection while the other worker has none."""
    owner = {local: pid for pid in pids for local in ports_to(pid, port)}
    with transaction(sessions) as session:
        query = text(
            "SELECT client_port FROM pg_stat_activity "
            "WHERE client_port = ANY(:ports) AND wait_event_type = 'Lock'"
        )
        waiting = session.execute(query, {"ports": sorted(owner)}).scalars()
        return {owner[local] for local in waiting}


def test_every_connection_of_service_up_killed_mid_training_costs_the_jobs_nothing(
    postgres: None,
    settings: Settings,
    sessions: sessionmaker[Session],
    api_key: str,
    tmp_path: Path,
) -> None:
    references = twins(sessions, settings)
    settings = up_settings(settings, database_url=settings.database_url)
    log = tmp_path / "up.log"
    with service_up(settings, log_path=log) as up, client_for(settings, key=api_key) as client:
        before = processes(up.pid)
        apis = service_children(up.pid, "api")
        assert len(before) == 4
        job_ids = [submit(client, spec(seed)) for seed in SEEDS]
        wait_for(lambda: len(training(sessions, job_ids)) == 2, timeout=120)

        database_port = make_url(settings.database_url).port or 5432
        ask_every_api_process(client, up.pid, job_id=job_ids[0], database_port=database_port)

        # Hold the training jobs' rows, so that each worker's next flush waits on them: its
        # connection dies mid-transaction, not idle in the pool (where the pool's pre-ping
        # would replace it unnoticed).
        with transaction(sessions) as session:
            session.execute(
                text("SELECT id FROM jobs WHERE id = ANY(:ids) FOR UPDATE"),
                {"ids": training(sessions, job_ids)},
            )
            workers = service_children(up.pid, "worker")
            wait_for(lambda: waiting_on_a_lock(sessions, workers, database_port) == set(workers))
            held = {pid: ports_to(pid, database_port) for pid in before}
            # Each api process holds its pool's; each worker its pool's and the connection it
            # LISTENs on for queued jobs.
            assert all(len(ports) >= (1 if pid in apis else 2) for pid, ports in held.items())
            every = set().union(*held.values())
            assert terminate_backends(sessions, every) == len(every)
        wait_for(lambda: not any(ports_to(pid, database_port) & every for pid in before))

        # Every api process answers again, on a new connection (pre-ping found its old ones dead).
        ask_every_api_process(client, up.pid, job_id=job_ids[0], database_port=database_port)
        after = submit(client, tiny_spec())
        wait_for(
            lambda: all(read(sessions, j).status == "succeeded" for j in [*job_ids, after]),
            timeout=240,
        )
        assert processes(up.pid) == before, "a process of service up exited"

    assert_cost_nothing(sessions, job_ids, references)
    output = log.read_text()
    assert output.count("paused at a database fault") == 2
    assert "restarting" not in output
    assert "Traceback" not in output
