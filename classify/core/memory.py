"""Keep freed memory inside the process during CPU training (glibc's malloc).

Every training step allocates and frees the same few hundred tensors. glibc hands a freed block
above its thresholds back to the kernel (an unmapped chunk, or a trimmed heap top), so the next
step asks for it again and the kernel maps fresh pages, each zeroed on first touch: at 32²
(batch 16, docs/BENCHMARKS.md "fifth round") that was 4,600-5,900 minor page faults and
8-11 ms of kernel time per ~400 ms step, every step. Raising the two thresholds keeps those
blocks in the heap for the next step: no faults, ~0 ms of kernel time, and the resident size
stays at the step's peak (+23 MiB at 32², which the step reaches anyway).

`mallopt` is glibc's documented interface for this (malloc.h; the same knobs as the
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ environment variables, which only work at
process start). Elsewhere (musl, macOS) it is absent and nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt's parameter numbers, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap (glibc's own ceiling for its adaptive threshold is
# 32 MiB; a 64² step's largest tensor, [32, 64, 65, 65] float32, is 33 MiB). Larger blocks are
# still mapped and returned.
MMAP_THRESHOLD = 256 << 20
# Free memory at the heap's top is returned to the kernel only beyond this much.
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse. True when it accepted both settings;
    False where there is no glibc `mallopt` (nothing changed). Process-wide and not undone:
    call it only in a process that trains."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 on a value it refuses.
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
