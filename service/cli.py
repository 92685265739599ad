"""`service up | api | worker | migrate | keys create|list|revoke | delete --key-name`: the entry
points that build Settings and work on the database.
`service submit | jobs | show | metrics | predict | cancel | export | delete | usage`: a client of
any server's HTTP API."""

import argparse
import logging
import signal
import socket
import sys
from contextlib import suppress
from types import FrameType

from service import admin
from service.client import commands as client_commands
from service.db import make_engine, make_session_factory, transaction
from service.processes import (
    api_programs,
    metrics_directory,
    port_socket,
    reserved_port,
    supervise,
    worker_programs,
)
from service.settings import Settings

log = logging.getLogger("service")

# On SIGTERM an api process finishes the requests in flight for at most this long, then closes
# what is still open: event streams never end by themselves (their clients reconnect).
SHUTDOWN_GRACE_SECONDS = 10


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up",
        help="migrate, then run SERVICE_API_PROCESSES api processes and SERVICE_WORKERS workers, "
        "restarting any that dies, until Ctrl-C",
    )
    api = commands.add_parser(
        "api",
        help="run the HTTP api (uvicorn) on SERVICE_HOST:SERVICE_PORT in SERVICE_API_PROCESSES "
        "processes",
    )
    # An api process started by `service up` or `service api`, beside others on the same port.
    api.add_argument("--sibling", action="store_true", help=argparse.SUPPRESS)
    worker = commands.add_parser("worker", help="run one worker: claim and train queued jobs")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    commands.add_parser("migrate", help="upgrade the database schema to the newest revision")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create an API key and print it (shown only once)")
    create.add_argument("--name", required=True)
    keys.add_parser("list", help="every key: name, created, last used, revoked (never the key)")
    revoke = keys.add_parser(
        "revoke",
        help="revoke the key(s) of this name: refused within SERVICE_KEY_CACHE_SECONDS; "
        "their jobs keep running and stay stored",
    )
    revoke.add_argument("name")
    client_commands.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "delete" and args.key_name is not None:
        return admin.delete_key_resources(Settings(), name=args.key_name)
    if args.command in client_commands.COMMANDS:
        return client_commands.run(args)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    match args.command:
        case "up":
            return up(settings)
        case "api":
            return api(settings, sibling=args.sibling)
        case "worker":
            return run_worker(settings, once=args.once)
        case "migrate":
            migrate(settings)
            return 0
        case "keys" if args.keys_command == "create":
            return create_key(settings, name=args.name)
        case "keys" if args.keys_command == "list":
            return admin.list_keys(settings)
        case "keys" if args.keys_command == "revoke":
            return admin.revoke_key(settings, name=args.name)
    return 2


def migrate(settings: Settings) -> None:
    from service import migrations

    engine = make_engine(settings.database_url)
    migrations.upgrade(engine)
    engine.dispose()
    log.info(
        "database at %s migrated to %s",
        engine.url.render_as_string(hide_password=True),
        migrations.head_revision(),
    )


def create_key(settings: Settings, *, name: str) -> int:
    from service import keys

    engine = make_engine(settings.database_url)
    with transaction(make_session_factory(engine), immediate=True) as session:
        _, key = keys.create_key(session, name=name)
    engine.dispose()
    print(f"created API key {name!r}; it is shown only this once:")
    print(key)
    return 0


def ensure_first_key(settings: Settings) -> None:
    from service import keys

    engine = make_engine(settings.database_url)
    with transaction(make_session_factory(engine), immediate=True) as session:
        key = keys.ensure_first_key(session, key_file=settings.api_key_file)
    engine.dispose()
    if key is not None:
        print(f"first start: created an API key, written to {settings.api_key_file} (mode 0600):")
        print(key)


def api(settings: Settings, *, sibling: bool = False) -> int:
    """Serve the api: in this process, or in SERVICE_API_PROCESSES children on one port."""
    if sibling:
        return serve(settings, listener=port_socket(settings))
    if settings.api_processes == 1:
        ensure_first_key(settings)
        return serve(settings)
    with reserved_port(settings), metrics_directory() as metrics_dir:
        ensure_first_key(settings)
        log.info(
            "api on http://%s:%d in %d processes",
            settings.host,
            settings.port,
            settings.api_processes,
        )
        supervise(api_programs(settings, metrics_dir=metrics_dir), metrics_dir=metrics_dir)
    return 0


def serve(settings: Settings, *, listener: socket.socket | None = None) -> int:
    """Run uvicorn on the app until SIGTERM or SIGINT, on `listener` if given; 0 after a
    graceful stop, 3 (as uvicorn) if it failed to start."""
    import uvicorn

    from service.api.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = uvicorn.Server(config)
    # uvicorn raises the signal that stopped it again once it has shut down, to end the process
    # the default way; ignored, the process exits 0 after a graceful stop.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with suppress(KeyboardInterrupt):  # what SIGINT's default handler raises then
        server.run(sockets=None if listener is None else [listener])
    return 0 if server.started else 3


def run_worker(settings: Settings, *, once: bool) -> int:
    from service import wakeup
    from service.training.memory import keep_freed_memory
    from service.worker.loop import Worker

    # Every training step frees what the next allocates again: keep it (memory.py).
    keep_freed_memory()
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    doorbell = wakeup.open_doorbell(settings)
    # Jobs this worker hands back or requeues wake the other workers.
    wakeup.ring_on_commit(sessions, doorbell)
    worker = Worker(settings=settings, sessions=sessions, doorbell=doorbell)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker got %s: finishing the current epoch", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if once:
        worker.run_once()
    else:
        worker.run_forever()
    engine.dispose()
    return 0


def up(settings: Settings) -> int:
    """Migrate, make the first key if needed, then run the api processes and the workers as
    children of this process, restarting any that dies, until SIGTERM or Ctrl-C (see
    service/supervisor.py)."""
    with reserved_port(settings), metrics_directory() as metrics_dir:
        migrate(settings)
        ensure_first_key(settings)
        programs = api_programs(settings, metrics_dir=metrics_dir)
        print(
            f"api on http://{settings.host}:{settings.port} (docs at /docs) in "
            f"{settings.api_processes} process(es), {settings.workers} worker(s)"
        )
        print(f"API key in {settings.api_key_file.resolve()}; Ctrl-C stops everything")
        supervise([*programs, *worker_programs(settings)], metrics_dir=metrics_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
