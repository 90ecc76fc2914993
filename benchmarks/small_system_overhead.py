"""Where an MD step of a small molecule spends its time: tensor operations, not arithmetic.

One ethanol (9 atoms, 72 pairs) with precomputed neighbors (as in an MD step
with the Verlet skin), PaiNN with 3 layers at several feature sizes, float32,
one thread, energy + forces through ``Potential``. For each size: the number
of tensor operations dispatched in the forward and in the force backward
(counted with a ``TorchDispatchMode``), and the time per call (median of
alternating repeats). If the time hardly changes from 4 to 64 features, the
cost is per operation (dispatch, autograd bookkeeping), not per number.

    python benchmarks/small_system_overhead.py [--repeats 9] [--features 4 16 64 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import RESULTS, machine, write_table  # noqa: E402


class _CountOps(TorchDispatchMode):
    """Counts the aten operations dispatched inside the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _ethanol():
    import ase.build
    from torch_geometric.data import Data

    from equinnp.neighbors import RadiusGraph

    atoms = ase.build.molecule("CH3CH2OH")
    data = Data(z=torch.tensor(atoms.numbers), pos=torch.tensor(atoms.positions, dtype=torch.float32))
    return RadiusGraph(6.0)(data)  # the calculator's skin: a 5 Å model with 1 Å skin


def _operations(pot, data) -> tuple[int, int]:
    """(forward, backward) aten operations of one energy + forces call."""
    with _CountOps() as forward:
        pot(data, compute_forces=False)
    with _CountOps() as both:
        pot(data)
    return forward.count, both.count - forward.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--features", type=int, nargs="+", default=[4, 16, 64, 128])
    parser.add_argument("--calls", type=int, default=100, help="calls per timed block")
    parser.add_argument("--out", type=Path, default=RESULTS / "small_system_overhead.md")
    args = parser.parse_args()

    import equinnp
    from equinnp.memory import reuse_freed_memory

    torch.set_num_threads(1)
    reuse_freed_memory()
    data = _ethanol()
    potentials = {}
    for features in args.features:
        torch.manual_seed(0)
        pot = equinnp.build_potential("painn", elements=[1, 6, 8], cutoff=5.0, hidden_channels=features,
                                      num_interactions=3, num_rbf=20).eval().requires_grad_(False)
        for _ in range(20):
            pot(data)
        potentials[features] = pot
    times = {features: [] for features in potentials}
    for _ in range(args.repeats):  # alternating: every size sees the same machine state
        for features, pot in potentials.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                pot(data)
            times[features].append((time.perf_counter() - start) / args.calls)
    largest = max(potentials)
    rows = []
    for features, pot in potentials.items():
        forward, backward = _operations(pot, data)
        median = statistics.median(times[features])
        rows.append([features, forward, backward, f"{median * 1e3:.2f}",
                     f"{median / statistics.median(times[largest]):.2f}"])
    text = write_table(
        args.out, "Small-system overhead: PaiNN energy + forces of one ethanol",
        [f"Machine: {machine(1)}.",
         "Ethanol (9 atoms, 72 pairs within 5 Å), neighbors precomputed with a 1 Å skin, PaiNN 3 layers, "
         "20 Bessel functions, float32, eval mode, weights frozen (as `EquinnpCalculator` loads a file).",
         f"Median of {args.repeats} alternating blocks of {args.calls} calls.",
         f"Command: `python benchmarks/small_system_overhead.py --repeats {args.repeats} "
         f"--features {' '.join(map(str, args.features))}`"],
        ["features", "aten operations, forward", "aten operations, force backward", "ms per call",
         f"time / time at {largest} features"], rows)
    print(text)


if __name__ == "__main__":
    main()
