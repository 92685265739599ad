"""docker-compose.yml must start real CLI subcommands with real settings (no Docker engine here)."""

import argparse
import shlex
from pathlib import Path

import yaml

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def cli_subcommands() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(subparsers.choices)


def service_commands(command: list[str]) -> list[list[str]]:
    """The `service ...` invocations in a compose command, including inside `sh -c`."""
    words = shlex.split(command[2]) if command[:2] == ["sh", "-c"] else command
    invocations: list[list[str]] = []
    current: list[str] | None = None
    for word in words:
        if word == "service":
            current = []
            invocations.append(current)
        elif word in ("&&", ";"):
            current = None
        elif current is not None:
            current.append(word)
    return invocations


def test_compose_services_run_real_subcommands_with_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    subcommands = cli_subcommands()
    settings = {f"SERVICE_{name.upper()}" for name in Settings.model_fields}
    apps = {name: svc for name, svc in compose["services"].items() if name != "postgres"}

    assert set(apps) == {"api", "worker", "api-pg", "worker-pg"}
    for name, svc in apps.items():
        invocations = service_commands(svc["command"])
        assert invocations, f"{name} runs no `service` command"
        for invocation in invocations:
            assert invocation[0] in subcommands, (
                f"{name}: `service {invocation[0]}` is not a subcommand"
            )
        unknown = {key for key in svc["environment"] if key.startswith("SERVICE_")} - settings
        assert not unknown, f"{name} sets unknown settings {unknown}"

    assert apps["api"]["profiles"] == ["sqlite"]
    assert apps["api-pg"]["profiles"] == ["postgres"]
    assert compose["services"]["postgres"]["profiles"] == ["postgres"]
    assert apps["worker-pg"]["environment"]["SERVICE_DATABASE_URL"].startswith(
        "postgresql+psycopg://"
    )
    assert "SERVICE_DATABASE_URL" not in apps["worker"]["environment"]
    for worker in ("worker", "worker-pg"):
        devices = apps[worker]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia"
        assert "gpu" in devices[0]["capabilities"]


def test_compose_default_profile_is_sqlite() -> None:
    assert "COMPOSE_PROFILES=sqlite" in (ROOT / ".env").read_text().splitlines()
