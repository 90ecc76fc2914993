"""What every benchmark shares: the workloads, the timing, the machine line, the results table,
and the registry that names each architecture's peer benchmark.

Workloads are the same structures for equinnp and its peer: batches of 64
real rMD17 aspirin frames (21 atoms) and one 1,029-atom water cluster.
Timings are medians of repeated calls after a warm-up, the contenders
alternating so that load changes on a shared machine hit all of them alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

# Peers' workers import this module in their own venvs: PyG and equinnp are imported only where needed.

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RMD17 = HERE.parents[1] / "shared" / "data" / "rmd17" / "rmd17_aspirin_train_01.npz"

#: Architecture → (benchmark script in this folder, its peer). Every entry of
#: ``equinnp.ARCHITECTURES`` has one (``tests/test_benchmarks.py``).
PEER_BENCHMARKS = {
    "schnet": ("inference_schnet.py", "torch_geometric SchNet 2.8.1 (same process)"),
    "painn": ("training_throughput.py", "SchNetPack 2.1.1 PaiNN (.peers/schnetpack)"),
    "mace": ("equivariant_inference.py", "mace-torch 0.3.16 (.peers/mace)"),
    "tensornet": ("tensornet_inference.py", "TorchMD-Net 3.1.0 TensorNet (.peers/torchmdnet)"),
    "dimenetpp": ("dimenetpp_inference.py", "torch_geometric 2.8 DimeNetPlusPlus (same process, pure-torch drop-ins)"),
}


def aspirin_batch(n: int = 64):
    from torch_geometric.data import Batch

    from equinnp.data import from_arrays

    data = np.load(RMD17)
    return Batch.from_data_list([from_arrays(data["nuclear_charges"], data["coords"][k]) for k in range(n)])


def water_cluster(per_side: int = 7, spacing: float = 3.1, seed: int = 0):
    """per_side³ water molecules on a jittered grid with random orientations (3·7³ = 1,029 atoms)."""
    from torch_geometric.data import Batch

    from equinnp.data import from_arrays

    rng = np.random.default_rng(seed)
    water = np.array([[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]])
    positions, numbers = [], []
    for a in range(per_side):
        for b in range(per_side):
            for c in range(per_side):
                q = rng.normal(size=4)
                q /= np.linalg.norm(q)
                w, x, y, z = q
                R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                              [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                              [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
                center = np.array([a, b, c]) * spacing + rng.uniform(-0.2, 0.2, 3)
                positions.append(water @ R.T + center)
                numbers += [8, 1, 1]
    return Batch.from_data_list([from_arrays(numbers, np.concatenate(positions))])


def workloads() -> List[tuple]:
    """``[(label, unit, count, batch)]``: the standard inference workloads."""
    return [
        ("64 x aspirin (21 atoms)", "molecules/s", 64, aspirin_batch(64)),
        ("water cluster (1,029 atoms)", "atoms/s", 1029, water_cluster()),
    ]


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternating_medians(contenders: Dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> Dict[str, float]:
    """Median seconds per contender, timed one call each in turn (so load changes hit all alike)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine(threads: int) -> str:
    """One line naming the machine, torch, the thread count and the load."""
    load = f", load average {os.getloadavg()[0]:.1f} at the end (shared machine)" if hasattr(os, "getloadavg") else ""
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, torch {torch.__version__}, {threads} threads{load}"


def write_table(path: Path, title: str, notes: Sequence[str], header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Write a Markdown results table (title, notes, table) to ``path`` and return it."""
    lines = [f"# {title}", "", *notes, "", "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
