"""schemathesis against the service's own OpenAPI document: every phase (examples, coverage,
fuzzing, stateful) and every check, as `st run` does it, with the per-operation rules in
schemathesis.toml. What it found before is pinned by tests/api/test_contract.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import create_api_key

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Per operation and phase; the whole run takes about a minute on two shared cores.
EXAMPLES_PER_OPERATION = 25
SEED = 1


def test_api_holds_its_contract_in_every_phase_under_every_check(
    server: str, backend: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    if backend != "sqlite":
        pytest.skip("fuzzed once, on SQLite: the routes are the same on PostgreSQL")
    peers = {name: create_api_key(sessions, name=name) for name in ("alice", "bob")}
    wfc = tmp_path / "wfc-auth.json"
    wfc.write_text(
        json.dumps(
            {
                "auth": [
                    {
                        "name": name,
                        "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}],
                    }
                    for name, key in peers.items()
                ]
            }
        )
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        f"--config-file={CONFIG}",
        "run",
        f"{server}/openapi.json",
        "--phases=examples,coverage,fuzzing,stateful",
        "--checks=all",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        f"--seed={SEED}",
        "--workers=1",
    ]
    # In tmp_path: the run leaves Hypothesis' example database where it runs.
    env = {**os.environ, "FUZZ_WFC_AUTH": str(wfc)}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]


def test_the_document_declares_bearer_auth_on_every_v1_route(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            expected = [{"HTTPBearer": []}] if path.startswith("/v1/") else None
            assert operation.get("security") == expected, f"{method} {path}"
