"""What every benchmark shares: the workloads, the timing, the machine line, the results table,
and the registry that names each architecture's peer benchmark.

Workloads are the same structures for equinnp and its peer: batches of 64
real rMD17 aspirin frames (21 atoms) and one 1,029-atom water cluster.
Timings are medians of repeated calls after a warm-up, the contenders
alternating so that load changes on a shared machine hit all of them alike.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Sequence

import numpy as np
import torch

# Peers' workers import this module in their own venvs: PyG and equinnp are imported only where needed.

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RMD17 = HERE.parents[1] / "shared" / "data" / "rmd17" / "rmd17_aspirin_train_01.npz"

#: Architecture → (benchmark script in this folder, its peer). Every entry of
#: ``equinnp.ARCHITECTURES`` has one (``tests/test_benchmarks.py``).
PEER_BENCHMARKS = {
    "schnet": ("schnet_inference.py", "torch_geometric SchNet 2.8.1 (same process)"),
    "painn": ("painn_inference.py", "SchNetPack 2.1.1 PaiNN (.peers/schnetpack)"),
    "mace": ("mace_inference.py", "mace-torch 0.3.16 (.peers/mace)"),
    "tensornet": ("tensornet_inference.py", "TorchMD-Net 3.1.0 TensorNet (.peers/torchmdnet)"),
    "sake": ("sake_inference.py", "sake-gnn 0.0.2.post1 DenseSAKEModel, JAX (.peers/sake)"),
    "ani2x": ("ani2x_inference.py", "TorchANI 2.9.0 ANI-2x, 1 network and the 8-member ensemble (.peers/torchani)"),
    "dimenetpp": ("dimenetpp_inference.py", "torch_geometric 2.8 DimeNetPlusPlus (same process, pure-torch drop-ins)"),
    "physnet": ("physnet_inference.py", "the authors' TF code, MMunibas/PhysNet e243e2c, tensorflow-cpu 2.21.0 tf.compat.v1 (.peers/physnet_tf)"),
    "aimnet2": ("aimnet2_inference.py", "the authors' aimnet 0.2.6 AIMNet2Calculator, packaged aimnet2.yaml (.peers/aimnet)"),
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


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls.

    ``clock``: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU time of
    this process, steadier on a shared machine for single-threaded code)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def alternating_medians(contenders: Dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                        self_timed: Collection[str] = ()) -> Dict[str, float]:
    """Median seconds per contender, timed one call each in turn (so load changes hit all alike).

    Contenders named in ``self_timed`` return their own seconds (a :class:`PeerWorker`
    timing its call inside its process, without the pipe's round trip).
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            result = fn()
            times[name].append(float(result) if name in self_timed else time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


class PeerWorker:
    """A peer's model in a long-lived process of the peer's own venv, driven call by call.

    ``argv`` runs a script whose worker side calls :func:`serve`; ``time(k)``
    asks it for one call of its k-th workload and returns the seconds it measured.
    """

    def __init__(self, python: Path, argv: Sequence[str], threads: int, env: Optional[dict] = None):
        if not Path(python).exists():
            raise FileNotFoundError(f"no peer venv at {python}: build it with benchmarks/peers/setup_envs.sh")
        environment = dict(os.environ, OMP_NUM_THREADS=str(threads), **(env or {}))
        self.process = subprocess.Popen([str(python), *map(str, argv)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=environment)
        for line in self.process.stdout:  # some peers print banners on stdout first
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"peer worker {' '.join(map(str, argv))} exited before it was ready")

    def time(self, k: int) -> float:
        self.process.stdin.write(f"{k}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        while line and not line.startswith("{"):  # skip anything else the peer prints
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("peer worker exited during a timing")
        return json.loads(line)["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=120)


def serve(calls: Sequence[Callable[[], object]]) -> None:
    """Worker side of :class:`PeerWorker`: warm up every call, print ``ready``, then answer each
    stdin line ``k`` with ``{"seconds": ...}`` of one call of ``calls[k]``."""
    for call in calls:
        call()
    print("ready", flush=True)
    for line in sys.stdin:
        call = calls[int(line)]
        start = time.perf_counter()
        call()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int) -> str:
    """One line naming the machine, torch, the thread count and the load."""
    load = f", load average {os.getloadavg()[0]:.1f} at the end (shared machine)" if hasattr(os, "getloadavg") else ""
    cpu = cpu_name()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, torch {torch.__version__}, {threads} threads{load}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_table(path: Path, title: str, notes: Sequence[str], header: Sequence[str], rows: Sequence[Sequence],
                footer: Sequence[str] = ()) -> str:
    """Write a Markdown results table (title, notes, table, footer) to ``path`` and return it."""
    lines = [f"# {title}", "", *notes, "", *markdown_table(header, rows)]
    if footer:
        lines += ["", *footer]
    text = "\n".join(lines) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
