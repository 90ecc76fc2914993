"""Energy + forces inference: equinnp DimeNet++ against torch_geometric 2.8 DimeNetPlusPlus, same weights.

The paper's hyperparameters on both sides (128 / 256 / 64 / 8 channels, 4
blocks, 7 spherical and 6 radial functions, cutoff 5 Å), float32, eager, random
weights copied from equinnp's model into PyG's (``pyg_dimenetpp_twin``), the
same thread count and the same structures: batches of 64 rMD17 aspirin frames
(21 atoms) and one 1,029-atom water cluster (``harness.py``).

PyG's ``forward`` calls a compiled radius search (pyg-lib) and a torch-sparse
triplet function, neither installable here; this script replaces those two
module-level functions with pure-PyTorch ones: a brute-force radius graph that
ignores PyG's ``max_num_neighbors = 32`` (the water cluster has ~43 neighbors
per atom: PyG would silently drop some, and do less work than asked), and an
O(T) triplet enumeration with PyG's rule (k ≠ i by atom index). Each side
computes its own neighbor list and triplets inside the timed call. The two
contenders take turns call by call, ``repeats`` times after a warm-up; medians.

Peak memory: each side runs the water cluster once (energy + forces) in a fresh
process, which reports its resident-set high-water mark (``VmHWM`` of
``/proc/self/status``: that process's own; ``getrusage``'s max RSS would carry
the parent's over ``fork``) before and after the call, and the number of
triplets. ``--memory-only`` measures memory alone and rewrites that line of an
existing results file.

    python benchmarks/dimenetpp_inference.py [--repeats 5] [--threads 2] [--memory-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402

ELEMENTS = [1, 6, 7, 8]
HYPER = dict(hidden_channels=128, out_emb_channels=256, int_emb_size=64, basis_emb_size=8, num_blocks=4,
             num_spherical=7, num_radial=6, cutoff=5.0)


def find_rmd17() -> None:
    """The shared data folder sits beside the repository (``harness.RMD17``) or beside its parent (worktrees)."""
    if not harness.RMD17.exists():
        candidate = HERE.parents[2] / "shared" / "data" / "rmd17" / harness.RMD17.name
        if candidate.exists():
            harness.RMD17 = candidate


def uncapped_radius_graph(x, r, batch=None, loop=False, max_num_neighbors=32, flow="source_to_target", **_):
    """Every pair within ``r`` in the same system ([0] = source j, [1] = target i), PyG's cap ignored."""
    batch = torch.zeros(x.shape[0], dtype=torch.long) if batch is None else batch
    close = (torch.cdist(x, x) <= r) & (batch[:, None] == batch[None, :])
    close.fill_diagonal_(loop)
    target, source = close.nonzero(as_tuple=True)
    return torch.stack([source, target])


def pyg_rule_triplets(edge_index, num_nodes):
    """PyG's ``triplets`` output (k -> j -> i with k != i by atom index), enumerated in O(T)."""
    row, col = edge_index  # j -> i
    E = row.numel()
    order = torch.argsort(col, stable=True)
    in_degree = torch.bincount(col, minlength=num_nodes)
    first = torch.cumsum(in_degree, 0) - in_degree
    count = in_degree[row]
    idx_ji = torch.repeat_interleave(torch.arange(E), count)
    offset = torch.arange(idx_ji.numel()) - (torch.cumsum(count, 0) - count)[idx_ji]
    idx_kj = order[first[row[idx_ji]] + offset]
    keep = row[idx_kj] != col[idx_ji]
    idx_kj, idx_ji = idx_kj[keep], idx_ji[keep]
    return col, row, col[idx_ji], row[idx_ji], row[idx_kj], idx_kj, idx_ji


def contenders(only=None):
    """``{name: fn(batch) -> forces}`` for equinnp and PyG (or only the one named), same weights."""
    import torch_geometric.nn.models.dimenet as pyg_dimenet

    import equinnp
    from equinnp.testing.parity import pyg_dimenetpp_twin

    pyg_dimenet.radius_graph = uncapped_radius_graph
    pyg_dimenet.triplets = pyg_rule_triplets
    torch.manual_seed(0)
    pot = equinnp.build_potential("dimenetpp", elements=ELEMENTS, **HYPER).eval()
    with torch.no_grad():
        for block in pot.model.output_blocks:  # zero at initialisation: give the energy something to say
            block.lin.weight.normal_(0.0, 0.05)
    twin = pyg_dimenetpp_twin(pot.model) if only in (None, "PyG") else None  # sympy: ~30 s to build

    def ours(batch):
        return pot(batch).forces

    def pyg(batch):
        pos = batch.pos.float().clone().requires_grad_(True)
        energy = twin(batch.z, pos, batch.batch)
        return -torch.autograd.grad(energy.sum(), pos)[0]

    runs = {"equinnp": ours, "PyG": pyg}
    return runs if only is None else {only: runs[only]}


def high_water_mb() -> float:
    """This process's peak resident memory so far (MB), from ``VmHWM``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def memory_worker(side: str, threads: int) -> None:
    """One energy + forces call on the water cluster; prints the peak RSS before/after (MB) and the triplet count."""
    torch.set_num_threads(threads)
    run = contenders(side)[side]
    cluster = harness.water_cluster()
    before = high_water_mb()
    forces = run(cluster)
    after = high_water_mb()
    from equinnp.neighbors import radius_graph
    from equinnp.neighbors.reverse import reverse_edges
    from equinnp.neighbors.triplets import triplets

    nl = radius_graph(cluster.pos.float(), HYPER["cutoff"])
    reverse = reverse_edges(nl.edge_index, nl.cell_shifts, cluster.num_nodes)
    count = triplets(nl.edge_index, reverse, cluster.num_nodes).num_triplets
    print(json.dumps({"before_mb": before, "peak_mb": after, "edges": int(nl.edge_index.shape[1]),
                      "triplets": count, "max_force": float(forces.abs().max())}))


def memory(side: str, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--memory-worker", side, "--threads", str(threads)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_note(threads: int) -> str:
    mem = {side: memory(side, threads) for side in ("equinnp", "PyG")}
    e, p = mem["equinnp"], mem["PyG"]
    return (f"Water cluster: {e['edges']:,} edges, {e['triplets']:,} triplets (back-tracking excluded). Peak resident "
            f"memory of one energy + forces call in a fresh process (VmHWM; before the call in brackets): equinnp "
            f"{e['peak_mb'] / 1024:.2f} GB ({e['before_mb'] / 1024:.2f} GB), PyG {p['peak_mb'] / 1024:.2f} GB "
            f"({p['before_mb'] / 1024:.2f} GB).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "dimenetpp_inference.md"))
    parser.add_argument("--memory-worker", choices=["equinnp", "PyG"], help=argparse.SUPPRESS)
    parser.add_argument("--skip-memory", action="store_true", help="speed only")
    parser.add_argument("--memory-only", action="store_true", help="memory only; rewrites that line of --out")
    args = parser.parse_args()
    find_rmd17()
    if args.memory_worker:
        return memory_worker(args.memory_worker, args.threads)

    if args.memory_only:
        line = memory_note(args.threads)
        path = Path(args.out)
        lines = [line if old.startswith("Water cluster:") else old for old in path.read_text().splitlines()]
        path.write_text("\n".join(lines) + "\n")
        return print(line)
    torch.set_num_threads(args.threads)
    runs = contenders()
    rows = []
    for label, unit, count, batch in harness.workloads():
        repeats = args.repeats if count < 1000 else max(2, args.repeats // 2)
        med = harness.alternating_medians({name: (lambda f=f, b=batch: f(b)) for name, f in runs.items()},
                                          repeats=repeats, warmup=1)
        rows.append((label, f"{count / med['equinnp']:,.1f} {unit}", f"{count / med['PyG']:,.1f} {unit}",
                     f"{med['PyG'] / med['equinnp']:.2f}"))
        print(rows[-1], flush=True)
    notes = [
        f"Machine: {harness.machine(args.threads)}.",
        "Paper hyperparameters (128/256/64/8, 4 blocks, 7 spherical, 6 radial, 5 Å), float32, eager, random weights "
        "(equinnp's, copied into PyG's model). PyG's compiled radius search and torch-sparse triplets are replaced by "
        "pure-PyTorch functions (its 32-neighbor cap ignored, so both sides see every pair). Each call computes its own "
        f"neighbor list and triplets. Contenders alternate call by call ({args.repeats} rounds on aspirin, "
        f"{max(2, args.repeats // 2)} on the cluster, after a warm-up); medians.",
        "Command: `" + " ".join(["python benchmarks/dimenetpp_inference.py", *sys.argv[1:]]) + "`",
        "Ratio: equinnp throughput / PyG throughput (above 1: equinnp is faster).",
    ]
    if not args.skip_memory:
        notes += ["", memory_note(args.threads)]
    text = harness.write_table(Path(args.out), "DimeNet++ inference: equinnp vs torch_geometric 2.8 (energy + forces, float32)",
                               notes, ["workload", "equinnp", "PyG DimeNetPlusPlus", "ratio"], rows)
    print(text)


if __name__ == "__main__":
    main()
