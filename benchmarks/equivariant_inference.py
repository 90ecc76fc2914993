"""Energy + forces inference of the equivariant models against their peers.

MACE: equinnp's ``mace`` against mace-torch 0.3.16 (``.peers/mace``, run in a
subprocess with that venv's python), same hyperparameters (paper defaults:
l_max 3, correlation 3, 2 layers, 8 Bessel functions, radial MLP [64, 64, 64],
hidden irreps ``128x0e+128x1o`` and ``128x0e``), float32, eager, random
weights, same thread count, same molecules and the same neighbor list
(equinnp's, computed once and handed to both), mace-torch's default layout
(first interaction without residual) on both sides. Each side runs its workloads
as warm-up + ``repeats`` timed calls and keeps the median; the two sides
alternate ``rounds`` times per workload and each side's best median is reported
(the machines are shared: compare only figures from one run).

Workloads: batches of 64 real rMD17 aspirin frames (21 atoms) and one
1,029-atom water cluster.

    python benchmarks/equivariant_inference.py [--repeats 3] [--rounds 2] [--threads 2] [--only mace]

TensorNet: add ``bench_tensornet_*`` functions beside the ``bench_mace_*`` ones
and a branch in ``main``; results go to ``results/equivariant_inference_<model>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import median_time  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MACE_PEER_PYTHON = REPO / ".peers" / "mace" / "bin" / "python"
MACE_CONFIGS = {
    "128x0e+128x1o": dict(hidden_irreps="128x0e+128x1o", max_ell=3, correlation=3, num_interactions=2, num_bessel=8, cutoff=5.0, radial_mlp=[64, 64, 64]),
    "128x0e": dict(hidden_irreps="128x0e", max_ell=3, correlation=3, num_interactions=2, num_bessel=8, cutoff=5.0, radial_mlp=[64, 64, 64]),
}
ELEMENTS = [1, 6, 7, 8]
AVG_NUM_NEIGHBORS = 16.0


# ------------------------------------------------------------------ workloads


def workloads():
    """[(label, unit, count, Batch)] with equinnp's neighbor list attached by ``RadiusGraph``
    (which records its cutoff and positions, so that equinnp uses it; mace-torch gets its edge_index)."""
    sys.path.insert(0, str(HERE))
    from harness import aspirin_batch, water_cluster

    from equinnp.neighbors import RadiusGraph

    out = []
    for label, batch, unit, count in [
        ("64 x aspirin (21 atoms)", aspirin_batch(64), "molecules/s", 64),
        ("water cluster (1,029 atoms)", water_cluster(), "atoms/s", 1029),
    ]:
        batch = RadiusGraph(5.0)(batch)
        out.append((label, unit, count, batch))
    return out


# ------------------------------------------------------------------ MACE


def bench_mace_equinnp(config: dict, batch, repeats: int) -> float:
    """Median seconds of ``Potential(batch)`` (energy + forces) for equinnp's MACE."""
    import equinnp

    torch.manual_seed(0)
    pot = equinnp.build_potential("mace", elements=ELEMENTS, avg_num_neighbors=AVG_NUM_NEIGHBORS, **config).eval()
    return median_time(lambda: pot(batch), repeats)


def bench_mace_torch(config: dict, batch, repeats: int, threads: int) -> float:
    """Median seconds of mace-torch's ``ScaleShiftMACE`` (energy + forces), in its own venv."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        species = torch.tensor([ELEMENTS.index(int(z)) for z in batch.z])
        torch.save(
            {"config": config, "positions": batch.pos, "species": species, "batch": batch.batch,
             "edge_index": batch.edge_index, "num_graphs": int(batch.num_graphs), "repeats": repeats, "threads": threads},
            inputs,
        )
        env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_NUM_THREADS=str(threads))
        result = subprocess.run(
            [str(MACE_PEER_PYTHON), __file__, "--mace-torch-worker", str(inputs)], capture_output=True, text=True, env=env
        )
        if result.returncode != 0:
            raise RuntimeError(f"mace-torch worker failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def mace_torch_worker(path: str) -> None:
    """Runs inside the mace venv: build mace-torch's MACE like ``config`` and time it."""
    import numpy as np
    from e3nn import o3
    from mace import modules

    job = torch.load(path, weights_only=True)
    torch.set_num_threads(job["threads"])
    c = job["config"]
    torch.manual_seed(0)
    # mace-torch's default MACE layout (as `mace_run_train --model MACE` builds it), equinnp's default too:
    # a first interaction without residual, residual ones after it
    first = modules.interaction_classes["RealAgnosticInteractionBlock"]
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=c["cutoff"], num_bessel=c["num_bessel"], num_polynomial_cutoff=5, max_ell=c["max_ell"],
        interaction_cls=block, interaction_cls_first=first, num_interactions=c["num_interactions"],
        num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps(c["hidden_irreps"]), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(ELEMENTS)), avg_num_neighbors=AVG_NUM_NEIGHBORS, atomic_numbers=ELEMENTS,
        correlation=c["correlation"], gate=torch.nn.functional.silu, radial_MLP=c["radial_mlp"],
        atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    ).float().eval()
    n, E = job["positions"].shape[0], job["edge_index"].shape[1]
    counts = torch.bincount(job["batch"], minlength=job["num_graphs"])
    data = {
        "positions": job["positions"].float(),
        "node_attrs": torch.nn.functional.one_hot(job["species"], len(ELEMENTS)).float(),
        "edge_index": job["edge_index"],
        "shifts": torch.zeros(E, 3),
        "unit_shifts": torch.zeros(E, 3),
        "cell": torch.zeros(3 * job["num_graphs"], 3),
        "batch": job["batch"],
        "ptr": torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
    }
    assert n == int(counts.sum())
    seconds = median_time(lambda: model(dict(data), training=False, compute_force=True), job["repeats"])
    print(json.dumps({"seconds": seconds}))


def run_mace(repeats: int, rounds: int, threads: int, out: Path) -> None:
    rows = []
    for name, config in MACE_CONFIGS.items():
        for label, unit, count, batch in workloads():
            ours, theirs = [], []
            for _ in range(rounds):  # alternate the two sides; keep each side's best median
                ours.append(bench_mace_equinnp(config, batch, repeats))
                theirs.append(bench_mace_torch(config, batch, repeats, threads))
            ours, theirs = min(ours), min(theirs)
            rows.append((name, label, unit, count / ours, count / theirs, theirs / ours))
            print(f"{name} | {label}: equinnp {count / ours:.2f} {unit}, mace-torch {count / theirs:.2f} {unit}, ratio {theirs / ours:.2f}", flush=True)
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# MACE inference: equinnp vs mace-torch 0.3.16 (energy + forces, float32, eager)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads, "
        f"load average {load:.1f} at the end (the machine is shared). Best of {rounds} alternating rounds, each the median of {repeats} calls after a warm-up; random weights; "
        "l_max 3, correlation 3, 2 layers, 8 Bessel, radial MLP [64, 64, 64]; same neighbor list for both; "
        "mace-torch in its own venv (e3nn 0.4.4) in a subprocess.",
        "Command: `python benchmarks/equivariant_inference.py --only mace`",
        "",
        "| hidden irreps | workload | equinnp | mace-torch | ratio (equinnp / mace-torch throughput) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, label, unit, ours, theirs, ratio in rows:
        lines.append(f"| {name} | {label} | {ours:,.2f} {unit} | {theirs:,.2f} {unit} | {ratio:.2f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# ------------------------------------------------------------------ TensorNet (to be added: bench_tensornet_*)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["mace"], default="mace")
    parser.add_argument("--mace-torch-worker", metavar="INPUTS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mace_torch_worker:
        return mace_torch_worker(args.mace_torch_worker)
    torch.set_num_threads(args.threads)
    if args.only == "mace":
        run_mace(args.repeats, args.rounds, args.threads, HERE / "results" / "equivariant_inference_mace.md")


if __name__ == "__main__":
    main()
