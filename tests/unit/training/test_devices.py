from pathlib import Path

import pytest
import torch

from service.errors import ServiceError
from service.training.devices import (
    FALLBACK_CACHE_BYTES,
    fuse_activation_budget,
    last_level_cache_bytes,
    pick_device,
)


def test_cpu_and_auto() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_what_to_set() -> None:
    with pytest.raises(
        ServiceError, match="SERVICE_DEVICE is 'cuda' but torch sees no CUDA device"
    ):
        pick_device("cuda")


def cache(root: Path, index: int, *, level: int, kind: str, size: str) -> None:
    (root / f"index{index}").mkdir(parents=True)
    (root / f"index{index}" / "level").write_text(f"{level}\n")
    (root / f"index{index}" / "type").write_text(f"{kind}\n")
    (root / f"index{index}" / "size").write_text(f"{size}\n")


def test_the_last_level_cache_is_the_largest_data_or_unified_one(tmp_path: Path) -> None:
    cache(tmp_path, 0, level=1, kind="Data", size="32K")
    cache(tmp_path, 1, level=1, kind="Instruction", size="64M")  # never counted
    cache(tmp_path, 2, level=2, kind="Unified", size="1024K")
    cache(tmp_path, 3, level=3, kind="Unified", size="32768K")
    assert last_level_cache_bytes(tmp_path) == 32 * 1024 * 1024


def test_unreadable_caches_are_none(tmp_path: Path) -> None:
    assert last_level_cache_bytes(tmp_path / "missing") is None
    cache(tmp_path, 0, level=3, kind="Unified", size="lots")
    assert last_level_cache_bytes(tmp_path) is None


def test_the_fused_budget_is_the_setting_else_the_cpus_last_level_cache() -> None:
    cpu = torch.device("cpu")
    assert fuse_activation_budget(cpu, setting=5_000_000) == 5_000_000
    expected = last_level_cache_bytes() or FALLBACK_CACHE_BYTES
    assert fuse_activation_budget(cpu, setting=None) == expected
