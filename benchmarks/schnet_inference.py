"""Energy + forces inference: equinnp SchNet (eager and tabulated) against torch_geometric's SchNet.

Same hyperparameters (128 features, 128 filters, 6 interactions, 50 Gaussians,
cutoff 5 Å), same weights, float32, eager, same process. Both get the same
neighbor list (equinnp's, inside the timed region for both: PyG's own radius
graph needs torch-cluster, so it is injected through ``interaction_graph``).
"equinnp tabulated" evaluates the six filter networks by their table
(``Potential.tabulate_radial``, quintic Hermite, ``docs/tabulation.md``). The
three are timed in alternation, one call each in turn, and the median of the
repeats is reported, for each thread count in turn.

Workloads (``inference_workloads.py``): batches of 64 real rMD17 aspirin frames
(21 atoms), one 1,029-atom water cluster, and one ethanol (9 atoms, evaluated
20 times per call: the size of an MD step).

    python benchmarks/schnet_inference.py [--repeats 9] [--threads 1 2] [--out benchmarks/results/schnet_inference.md]
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import torch
from harness import alternating_medians, machine, write_table
from inference_workloads import inference_workloads

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


def run_equinnp(pot, batch, calls):
    for _ in range(calls):
        out = pot(batch)
    return out.energy, out.forces


def run_pyg(model, batch, calls):
    for _ in range(calls):
        pos = batch.pos.clone().requires_grad_(True)
        energy = model(batch.z, pos, batch.batch)
        forces = -torch.autograd.grad(energy.sum(), pos)[0]
    return energy, forces


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "schnet_inference.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], **HYPER).eval()
    tabulated = copy.deepcopy(pot).tabulate_radial()
    twin = pyg_schnet(pot)
    load_start = os.getloadavg()[0]

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for label, unit, count, batch, calls in inference_workloads():
            e_ours, f_ours = run_equinnp(pot, batch, 1)
            e_tab, f_tab = run_equinnp(tabulated, batch, 1)
            e_pyg, f_pyg = run_pyg(twin, batch, 1)
            deviation = (e_ours.float() - e_pyg.reshape(-1)).abs().max().item()
            table_error = ((f_tab - f_ours).abs().max() / f_ours.abs().max()).item()
            medians = alternating_medians({
                "equinnp": lambda: run_equinnp(pot, batch, calls),
                "tabulated": lambda: run_equinnp(tabulated, batch, calls),
                "pyg": lambda: run_pyg(twin, batch, calls),
            }, args.repeats)
            rate = {name: count / seconds for name, seconds in medians.items()}
            rows.append((threads, label, unit, rate, deviation, table_error))
            print(f"{threads} thread(s), {label}: " + ", ".join(f"{k} {v:.1f}" for k, v in rate.items()), flush=True)

    table = write_table(
        Path(args.out),
        "SchNet inference: equinnp (eager, tabulated) vs torch_geometric (energy + forces, float32)",
        [f"Machine: {machine(args.threads[-1])}; load average {load_start:.1f} at the start (shared machine: compare "
         f"ratios, taken from alternating timings in one run). Median of {args.repeats} alternating repeats, "
         "same process, same weights, same neighbor list (searched inside every timed call).",
         "tabulated: `Potential.tabulate_radial()` (quintic Hermite table of the filter networks, docs/tabulation.md).",
         f"Command: `python benchmarks/schnet_inference.py --repeats {args.repeats} --threads {' '.join(map(str, args.threads))}`"],
        ["threads", "workload", "equinnp eager", "equinnp tabulated", "PyG SchNet", "eager / PyG", "tabulated / PyG",
         "energy deviation eager vs PyG (eV)", "force error tabulated vs eager (relative)"],
        [(threads, label, f"{rate['equinnp']:,.1f} {unit}", f"{rate['tabulated']:,.1f} {unit}", f"{rate['pyg']:,.1f} {unit}",
          f"{rate['equinnp'] / rate['pyg']:.2f}", f"{rate['tabulated'] / rate['pyg']:.2f}", f"{deviation:.1e}", f"{table_error:.1e}")
         for threads, label, unit, rate, deviation, table_error in rows],
    )
    print(table)


if __name__ == "__main__":
    main()
