"""Energy + forces inference: equinnp SchNet against torch_geometric's SchNet.

Same hyperparameters (128 features, 128 filters, 6 interactions, 50 Gaussians,
cutoff 5 Å), float32, eager, same thread count, same process. Both get the
same neighbor list (equinnp's, inside the timed region for both: PyG's own
radius graph needs torch-cluster, so it is injected through ``interaction_graph``).
The two are timed in alternation, and the median of the repeats is reported.

Workloads: batches of 64 real rMD17 aspirin frames (21 atoms) and one
1,029-atom water cluster.

    python benchmarks/schnet_inference.py [--repeats 7] [--threads 2] [--out benchmarks/results/schnet_inference.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import alternating_medians, machine, workloads, write_table

import equinnp
from equinnp.neighbors import radius_graph
from equinnp.testing.parity import pyg_schnet_twin

HYPER = dict(hidden_channels=128, num_filters=128, num_interactions=6, num_gaussians=50, cutoff=5.0)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "schnet_inference.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], **HYPER).eval()
    twin = pyg_schnet(pot)

    rows = []
    for label, unit, count, batch in workloads():
        e_ours, f_ours = run_equinnp(pot, batch)
        e_pyg, f_pyg = run_pyg(twin, batch)
        deviation = (e_ours.float() - e_pyg.reshape(-1)).abs().max().item()
        medians = alternating_medians({"equinnp": lambda: run_equinnp(pot, batch), "pyg": lambda: run_pyg(twin, batch)}, args.repeats)
        t_ours, t_pyg = medians["equinnp"], medians["pyg"]
        rows.append((label, unit, count / t_ours, count / t_pyg, t_pyg / t_ours, deviation))
        print(f"{label}: equinnp {count / t_ours:.1f} {unit}, PyG {count / t_pyg:.1f} {unit}, ratio {t_pyg / t_ours:.2f}")

    table = write_table(
        Path(args.out),
        "SchNet inference: equinnp vs torch_geometric (energy + forces, float32)",
        [f"Machine: {machine(args.threads)}. Median of {args.repeats} alternating repeats, same process, same weights, same neighbor list.",
         "Command: `python benchmarks/schnet_inference.py`"],
        ["workload", "equinnp", "PyG SchNet", "ratio (equinnp / PyG throughput)", "max energy deviation (eV)"],
        [(label, f"{ours:,.1f} {unit}", f"{theirs:,.1f} {unit}", f"{ratio:.2f}", f"{deviation:.1e}") for label, unit, ours, theirs, ratio, deviation in rows],
    )
    print(table)


if __name__ == "__main__":
    main()
