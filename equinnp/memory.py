"""Keep freed memory in the process for inference loops (glibc ``malloc`` options).

glibc serves every block above its mmap threshold (128 kB at first, raised
as blocks are freed, to 32 MB at most) by a fresh ``mmap`` and unmaps it on
``free``. An inference loop allocates and frees the same large tensors at
every call ([E, F] edge features: 73 MB for SchNet's filters on 64 aspirin
molecules), so each call pays again for the page faults of every page it
touches: on the 2-core machines of ``docs/speed.md`` writing a new 73 MB
tensor took 65 ms, ten times as long as writing one whose pages were mapped.

:func:`reuse_freed_memory` sets ``M_MMAP_MAX = 0`` (every block from the heap)
and a 1 GB ``M_TRIM_THRESHOLD`` (freed memory is kept for the next
allocation), as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824`` in
the environment would. The price: the process keeps its peak memory until it
exits. ``EquinnpCalculator`` calls it (``reuse_memory=True``); elsewhere call
it yourself. It changes the whole process (every library in it) and cannot be
undone; other C libraries than glibc are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["reuse_freed_memory", "TRIM_THRESHOLD"]

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Freed memory at the top of the heap up to this many bytes is kept (1 GB).
TRIM_THRESHOLD = 1 << 30


def reuse_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse; returns whether it could (False off glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
