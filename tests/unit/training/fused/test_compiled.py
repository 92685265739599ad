"""The compiled fused step (SERVICE_FUSE_COMPILE): its members follow their solo runs to the
tolerance where training damps rounding, and where nothing compiles the run trains eagerly
(the thin Linear form it compiles: test_linear.py)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.training.fused.compiled import works
from tests.unit.training.fused.test_equal_to_solo import assert_like_solo, fused, spec
from tests.unit.training.runs import CPU

SPIRAL_LIKE: dict[str, Any] = {
    "dataset": {"kind": "spiral", "classes": 3, "points_per_class": 40, "noise": 0.2},
    "model": {
        "layers": [
            {"type": "Linear", "out_features": 16},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 3},
        ]
    },
    "batch_size": None,
    "epochs": 12,
}


def test_compiled_members_follow_their_solo_runs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="service.training.fused")
    optimizers = [{"name": "adam", "lr": lr} for lr in (0.01, 0.003)]
    specs = [spec(**SPIRAL_LIKE, optimizer=o, seed=s) for o in optimizers for s in (1, 2)]
    # One leaves after 6 epochs: the same compiled step goes on with a stack of 4.
    specs.append(spec(**(SPIRAL_LIKE | {"epochs": 6}), seed=3))
    assert_like_solo(specs, compiled=True)
    assert "training 5 members fused on cpu, compiled" in caplog.text


def test_compiled_mini_batches_follow_their_solo_runs() -> None:
    """SMALL's batches of 16 end with one of 12, a second shape for the compiled step."""
    specs = [spec(seed=s, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9}) for s in (1, 2)]
    assert_like_solo(specs, compiled=True)


# Trains SPIRAL_LIKE fused and compiled in a process with no working C++ compiler (which
# Inductor needs on the CPU) and prints each member's losses.
WITHOUT_A_COMPILER = """
import json, sys
import torch
torch.set_num_threads(1)
from tests.unit.training.fused.test_compiled import SPIRAL_LIKE
from tests.unit.training.fused.test_equal_to_solo import fused, spec
from service.training.fused.compiled import works
assert not works(torch.device("cpu"))
specs = [spec(**SPIRAL_LIKE, seed=s) for s in (1, 2)]
results, hooks = fused(specs, compiled=True)
assert all(r.error is None for r in results)
print(json.dumps([h.losses for h in hooks]))
"""


def test_a_worker_machine_with_a_compiler_compiles() -> None:
    assert works(CPU)


def test_where_nothing_compiles_the_run_trains_eagerly(tmp_path: Path) -> None:
    environment = os.environ | {
        "CXX": str(tmp_path / "no-such-compiler"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
    }
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_A_COMPILER],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "torch.compile does not work here; fused steps run eagerly" in done.stderr
    assert "the fused step does not compile here; it runs eagerly" in done.stderr
    _, hooks = fused([spec(**SPIRAL_LIKE, seed=s) for s in (1, 2)])
    assert json.loads(done.stdout) == [h.losses for h in hooks]
