"""The worker's allocator settings (memory.py): tensor blocks come from the heap and stay there
when freed, so a step's activations do not fault their pages in again every step."""

import subprocess
import sys

import pytest

# The bytes glibc holds in mmapped blocks after a 4 MiB tensor is made, with and without the
# settings, and after it is freed, the heap's size: reported from a fresh interpreter so this
# process keeps its own settings.
PROBE = """
import ctypes, sys, torch
from service.training.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "kept":
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd
tensor = torch.ones(1024, 1024)
mapped = libc.mallinfo2().hblkhd - before
del tensor
print(mapped, libc.mallinfo2().arena)
"""


def probe(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout
    mapped, arena = out.split()
    return int(mapped), int(arena)


@pytest.mark.skipif(sys.platform != "linux", reason="mallinfo2 and mallopt are glibc's")
def test_a_tensor_comes_from_the_heap_and_its_memory_stays_there_when_freed() -> None:
    mapped, _ = probe("default")
    assert mapped >= 4 * 1024 * 1024  # glibc's default: a block of its own, unmapped when freed
    mapped, arena = probe("kept")
    assert mapped == 0
    assert arena >= 4 * 1024 * 1024  # freed, and still the heap's
