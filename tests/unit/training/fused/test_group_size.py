"""How many jobs of a kind a worker fuses: the count setting, and the activations the budget
holds (devices.fuse_activation_budget)."""

import json
from pathlib import Path

from service.worker.fused import activation_bytes, group_size
from tests.unit.training.runs import normalised

SPIRAL = json.loads((Path(__file__).parents[4] / "examples" / "spiral-relu-adam.json").read_text())


def test_a_spiral_member_holds_every_layers_outputs_for_its_full_batch() -> None:
    # 3000 points, full batch; Linear(100), ReLU(100), Linear(3): 203 floats a sample.
    assert activation_bytes(normalised(SPIRAL)) == 4 * 203 * 3000


def test_the_group_is_what_the_budget_holds_capped_by_the_count() -> None:
    spiral = normalised(SPIRAL)
    assert group_size(spiral, max_jobs=64, activation_budget=32 * 1024 * 1024) == 13
    assert group_size(spiral, max_jobs=8, activation_budget=32 * 1024 * 1024) == 8
    # A mini-batch holds less: 64 samples of the same network.
    batched = normalised(SPIRAL | {"batch_size": 64})
    assert group_size(batched, max_jobs=64, activation_budget=32 * 1024 * 1024) == 64
    # A budget smaller than one member still trains it (alone).
    assert group_size(spiral, max_jobs=64, activation_budget=1000) == 1
