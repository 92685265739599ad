"""The C allocator's settings for a process that trains: freed tensor memory kept for reuse.

A training step allocates its activations and their gradients and frees them again, every step.
glibc's malloc serves each block of 128 KiB and more (a threshold it raises as such blocks are
freed, to 32 MiB at most) with a fresh mmap and gives it back with munmap when freed, and it
hands the heap's free top back to the system past 128 KiB: so the process faults the same pages
in again every step. Seed 001's spiral network (3000 x 100 activations, 1.2 MB each) spent about
a fifth of its time in the kernel doing that (bench/allocator.py measures it; README,
Measurements). These settings serve every block up to glibc's largest threshold from the heap
and keep up to TRIM_THRESHOLD_BYTES freed there: the worker's memory stays at its high-water
mark plus that much, which a process that trains the same shapes over and over reuses.
"""

import ctypes
import ctypes.util

# mallopt's parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# Freed memory at the top of the heap kept before it goes back to the system.
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's malloc as described above; False where the C library has no mallopt (not
    glibc: macOS, say) or refused a setting."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
