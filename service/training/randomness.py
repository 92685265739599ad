"""Seeding, and the dedicated random streams a job draws from besides torch's global one.

The global stream serves what the tutorials draw from it, in their order: data, initial weights,
then Dropout. Shuffling and the validation split use their own generators, so turning either on
does not change the initial weights, and a resumed run can restore each stream on its own.
"""

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), Python's `random` and NumPy, as the tutorials do."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seed must fit in 32 bits.


def derived_seed(seed: int, *, stream: str) -> int:
    """A seed for the named stream, independent of the others and fixed by the job's seed."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: a valid torch seed


def generator(seed: int, *, stream: str) -> torch.Generator:
    """A CPU generator for the named stream (CPU so a job draws the same numbers on any device)."""
    return torch.Generator().manual_seed(derived_seed(seed, stream=stream))


def global_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The global generator states a resume restores: CPU, plus the CUDA device's when training
    there (Dropout on a CUDA tensor draws from the CUDA generator)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_global_states(states: dict[str, torch.Tensor], *, device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    # A job resumed on another kind of device cannot replay the same draws anyway; skip.
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
