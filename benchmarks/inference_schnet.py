"""Energy + forces inference: equinnp SchNet against torch_geometric's SchNet.

Same hyperparameters (128 features, 128 filters, 6 interactions, 50 Gaussians,
cutoff 5 Å), float32, eager, same thread count, same process. Both get the
same neighbor list (equinnp's, inside the timed region for both: PyG's own
radius graph needs torch-cluster, so it is injected through ``interaction_graph``).
The two are timed in alternation, and the median of the repeats is reported.

Workloads: batches of 64 real rMD17 aspirin frames (21 atoms) and one
1,029-atom water cluster.

    python benchmarks/inference_schnet.py [--repeats 7] [--threads 2] [--out benchmarks/results/inference_schnet.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.data import from_arrays
from equinnp.neighbors import radius_graph
from equinnp.testing.parity import pyg_schnet_twin

HYPER = dict(hidden_channels=128, num_filters=128, num_interactions=6, num_gaussians=50, cutoff=5.0)
RMD17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "rmd17" / "rmd17_aspirin_train_01.npz"


def aspirin_batch(n: int = 64) -> Batch:
    data = np.load(RMD17)
    return Batch.from_data_list([from_arrays(data["nuclear_charges"], data["coords"][k]) for k in range(n)])


def water_cluster(per_side: int = 7, spacing: float = 3.1, seed: int = 0) -> Batch:
    """per_side³ water molecules on a jittered grid with random orientations (3·7³ = 1,029 atoms)."""
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


def pyg_schnet(pot):
    """PyG SchNet carrying the weights of equinnp's SchNet, with equinnp's neighbor list injected."""

    def interaction_graph(pos, batch):
        edge_index = radius_graph(pos.detach(), HYPER["cutoff"], batch=batch).edge_index
        j, i = edge_index
        return edge_index, (pos[j] - pos[i]).norm(dim=-1)

    return pyg_schnet_twin(pot.model, interaction_graph)


def run_equinnp(pot, batch):
    out = pot(batch)
    return out.energy, out.forces


def run_pyg(model, batch):
    pos = batch.pos.clone().requires_grad_(True)
    energy = model(batch.z, pos, batch.batch)
    forces = -torch.autograd.grad(energy.sum(), pos)[0]
    return energy, forces


def time_call(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def benchmark(pot, twin, batch, repeats: int):
    for _ in range(2):  # warm-up
        run_equinnp(pot, batch)
        run_pyg(twin, batch)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(time_call(run_equinnp, pot, batch))
        theirs.append(time_call(run_pyg, twin, batch))
    return statistics.median(ours), statistics.median(theirs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference_schnet.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], **HYPER).eval()
    twin = pyg_schnet(pot)

    rows = []
    for label, batch, unit, count in [
        ("64 x aspirin (21 atoms)", aspirin_batch(64), "molecules/s", 64),
        ("water cluster (1,029 atoms)", water_cluster(), "atoms/s", 1029),
    ]:
        e_ours, f_ours = run_equinnp(pot, batch)
        e_pyg, f_pyg = run_pyg(twin, batch)
        deviation = (e_ours.float() - e_pyg.reshape(-1)).abs().max().item()
        t_ours, t_pyg = benchmark(pot, twin, batch, args.repeats)
        rows.append((label, unit, count / t_ours, count / t_pyg, t_pyg / t_ours, deviation))
        print(f"{label}: equinnp {count / t_ours:.1f} {unit}, PyG {count / t_pyg:.1f} {unit}, ratio {t_pyg / t_ours:.2f}")

    load = ", load average %.1f during the run" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads{load}"
    lines = [
        "# SchNet inference: equinnp vs torch_geometric (energy + forces, float32)",
        "",
        f"Machine: {machine}. Median of {args.repeats} alternating repeats, same process, same weights, same neighbor list.",
        "Command: `python benchmarks/inference_schnet.py`",
        "",
        "| workload | equinnp | PyG SchNet | ratio (equinnp / PyG throughput) | max energy deviation (eV) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, unit, ours, theirs, ratio, deviation in rows:
        lines.append(f"| {label} | {ours:,.1f} {unit} | {theirs:,.1f} {unit} | {ratio:.2f} | {deviation:.1e} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
