"""How many CPU threads inference runs with (``equinnp evaluate``, ``predict``, ``md``, the ASE calculator).

Torch's default (one thread per core) costs more than it gains for the small
systems of molecular dynamics: the threads of one force call wait for each
other, and on a machine shared with other jobs far longer. ``default_threads``
chooses by system size from measurements (``benchmarks/inference_threads.py``,
``benchmarks/results/inference_threads.md``); ``threads=`` options override it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

__all__ = ["default_threads", "using_threads", "check_threads", "SMALL_SYSTEM_ATOMS"]

#: Below this many atoms one thread is used. Measured (demo PaiNN, float32, MD steps/s of the
#: calculator, 2 threads / 1 thread, 2-core machine shared with other jobs, load ~9):
#: 0.04 for ethanol (9 atoms), 0.09 for 81, 0.22 for 375, 0.67 for 1,029 atoms of water;
#: at load 2-4: 0.13, 0.44, 0.51, 0.66 (``benchmarks/results/inference_threads*.md``).
#: The ratio grows with the system: two threads should pay off from a few thousand
#: atoms (not measured beyond 1,029, where one thread still wins).
SMALL_SYSTEM_ATOMS = 2000


def check_threads(threads) -> Optional[int]:
    """``threads`` as a positive int, or None (choose by size); anything else is refused."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None (chosen by system size), got {threads!r}")
    return threads


def default_threads(num_atoms: int) -> int:
    """One thread below ``SMALL_SYSTEM_ATOMS`` atoms per force call; torch's default (all cores) above."""
    if num_atoms < SMALL_SYSTEM_ATOMS:
        return 1
    return os.cpu_count() or 1


@contextlib.contextmanager
def using_threads(threads: Optional[int], num_atoms: int) -> Iterator[int]:
    """Run the body with ``threads`` torch threads (None: :func:`default_threads`), restoring the previous count after."""
    import torch

    wanted = check_threads(threads) or default_threads(num_atoms)
    previous = torch.get_num_threads()
    if wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
