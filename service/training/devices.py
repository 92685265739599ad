"""Which device a worker trains on (the SERVICE_DEVICE setting, resolved), and how much of it a
fused group may hold."""

from pathlib import Path
from typing import Literal

import torch

from service.errors import ServiceError


def pick_device(setting: Literal["auto", "cpu", "cuda"]) -> torch.device:
    """auto: the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ServiceError(
            "SERVICE_DEVICE is 'cuda' but torch sees no CUDA device (this torch build is "
            f"{torch.__version__}); set SERVICE_DEVICE to 'auto' or 'cpu', or install a CUDA build"
        )
    return torch.device("cuda", 0) if setting == "cuda" else torch.device("cpu")


# Where the CPU's caches cannot be read (not Linux, a container hiding sysfs): the last-level
# cache of a common server core complex.
FALLBACK_CACHE_BYTES = 32 * 1024 * 1024
CPU_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")
SIZE_SUFFIXES = {"K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024}


def last_level_cache_bytes(caches: Path = CPU_CACHES) -> int | None:
    """The largest data or unified cache CPU 0 reaches (Linux sysfs: "32768K"), or None."""
    sizes = []
    for index in caches.glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
            sizes.append(int(size[:-1]) * SIZE_SUFFIXES[size[-1]])
        except (OSError, ValueError, KeyError):
            continue
    return max(sizes, default=None)


def fuse_activation_budget(device: torch.device, *, setting: int | None) -> int:
    """The bytes of activations a fused group may hold (SERVICE_FUSE_MAX_ACTIVATION_BYTES, or
    automatic): on the CPU its last-level cache, past which a stacked step is bound by memory
    and costs as much per member as the solo steps it replaces; on a GPU an eighth of its
    memory, where the gain is fewer kernel launches and memory bounds the group."""
    if setting is not None:
        return setting
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 8
    return last_level_cache_bytes() or FALLBACK_CACHE_BYTES
