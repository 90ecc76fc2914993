"""Energy + forces inference: equinnp MACE against mace-torch 0.3.16.

Same hyperparameters (l_max 3, correlation 3, 2 layers, 8 Bessel functions,
radial MLP [64, 64, 64], hidden irreps ``128x0e+128x1o`` and ``128x0e``),
mace-torch's default layout (first interaction without residual) on both
sides, float32, eager, random weights, the same thread count, the same
structures (``harness.workloads``: 64 rMD17 aspirin frames, one 1,029-atom
water cluster) and the same neighbor list: equinnp's, computed once by
``RadiusGraph`` (which records its cutoff and positions, so that equinnp uses
it) and handed to mace-torch as its ``edge_index``.

mace-torch runs in its own venv (``.peers/mace``) in one long-lived worker
process holding both models (``harness.PeerWorker``). The two sides are timed
one call each, in turn, ``repeats`` times after a warm-up; medians.

    python benchmarks/mace_inference.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import PeerWorker, alternating_medians, machine, serve, workloads, write_table  # noqa: E402

REPO = HERE.parent
MACE_PEER_PYTHON = REPO / ".peers" / "mace" / "bin" / "python"
MACE_CONFIGS = {
    "128x0e+128x1o": dict(hidden_irreps="128x0e+128x1o", max_ell=3, correlation=3, num_interactions=2, num_bessel=8, cutoff=5.0, radial_mlp=[64, 64, 64]),
    "128x0e": dict(hidden_irreps="128x0e", max_ell=3, correlation=3, num_interactions=2, num_bessel=8, cutoff=5.0, radial_mlp=[64, 64, 64]),
}
ELEMENTS = [1, 6, 7, 8]
AVG_NUM_NEIGHBORS = 16.0


# ------------------------------------------------------------------ MACE


def equinnp_mace(config: dict):
    import equinnp

    torch.manual_seed(0)
    return equinnp.build_potential("mace", elements=ELEMENTS, avg_num_neighbors=AVG_NUM_NEIGHBORS, **config).eval()


def mace_torch_worker(path: str) -> None:
    """Runs inside the mace venv: mace-torch's MACE for each config, served call by call (config-major order)."""
    import numpy as np
    from e3nn import o3
    from mace import modules

    job = torch.load(path, weights_only=True)
    torch.set_num_threads(job["threads"])
    # mace-torch's default MACE layout (as `mace_run_train --model MACE` builds it), equinnp's default too:
    # a first interaction without residual, residual ones after it
    first = modules.interaction_classes["RealAgnosticInteractionBlock"]
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    calls = []
    for c in job["configs"]:
        torch.manual_seed(0)
        model = modules.ScaleShiftMACE(
            r_max=c["cutoff"], num_bessel=c["num_bessel"], num_polynomial_cutoff=5, max_ell=c["max_ell"],
            interaction_cls=block, interaction_cls_first=first, num_interactions=c["num_interactions"],
            num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps(c["hidden_irreps"]), MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.zeros(len(ELEMENTS)), avg_num_neighbors=AVG_NUM_NEIGHBORS, atomic_numbers=ELEMENTS,
            correlation=c["correlation"], gate=torch.nn.functional.silu, radial_MLP=c["radial_mlp"],
            atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        ).float().eval()
        for w in job["workloads"]:
            E = w["edge_index"].shape[1]
            counts = torch.bincount(w["batch"], minlength=w["num_graphs"])
            data = {
                "positions": w["positions"].float(),
                "node_attrs": torch.nn.functional.one_hot(w["species"], len(ELEMENTS)).float(),
                "edge_index": w["edge_index"],
                "shifts": torch.zeros(E, 3),
                "unit_shifts": torch.zeros(E, 3),
                "cell": torch.zeros(3 * w["num_graphs"], 3),
                "batch": w["batch"],
                "ptr": torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
            }
            calls.append(lambda model=model, data=data: model(dict(data), training=False, compute_force=True))
    serve(calls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "mace_inference.md"))
    parser.add_argument("--mace-torch-worker", metavar="INPUTS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mace_torch_worker:
        return mace_torch_worker(args.mace_torch_worker)

    from equinnp.neighbors import RadiusGraph

    torch.set_num_threads(args.threads)
    loads = [(label, unit, count, RadiusGraph(5.0)(batch)) for label, unit, count, batch in workloads()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        torch.save({
            "threads": args.threads,
            "configs": list(MACE_CONFIGS.values()),
            "workloads": [{"positions": b.pos, "species": torch.tensor([ELEMENTS.index(int(z)) for z in b.z]),
                           "batch": b.batch, "edge_index": b.edge_index, "num_graphs": int(b.num_graphs)}
                          for *_, b in loads],
        }, inputs)
        peer = PeerWorker(MACE_PEER_PYTHON, [__file__, "--mace-torch-worker", inputs], args.threads,
                          env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
        for c, (name, config) in enumerate(MACE_CONFIGS.items()):
            pot = equinnp_mace(config)
            for k, (label, unit, count, batch) in enumerate(loads):
                call = c * len(loads) + k
                med = alternating_medians({"equinnp": lambda: pot(batch), "mace-torch": lambda: peer.time(call)},
                                          args.repeats, warmup=1, self_timed={"mace-torch"})
                ours, theirs = med["equinnp"], med["mace-torch"]
                rows.append([name, label, f"{count / ours:,.2f} {unit}", f"{count / theirs:,.2f} {unit}", f"{theirs / ours:.2f}"])
                print(f"{name} | {label}: equinnp {count / ours:.2f} {unit}, mace-torch {count / theirs:.2f} {unit}, "
                      f"ratio {theirs / ours:.2f}", flush=True)
        peer.close()
    notes = [
        f"Machine: {machine(args.threads)}. Random weights; l_max 3, correlation 3, 2 layers, 8 Bessel, radial MLP "
        "[64, 64, 64]; mace-torch's default layout on both sides; same neighbor list for both; mace-torch in its own "
        f"venv (e3nn 0.4.4) in a long-lived worker process. The two take turns call by call ({args.repeats} rounds "
        "after a warm-up); medians.",
        "Command: `python benchmarks/mace_inference.py`",
    ]
    header = ["hidden irreps", "workload", "equinnp", "mace-torch", "ratio (equinnp / mace-torch throughput)"]
    print(write_table(Path(args.out), "MACE inference: equinnp vs mace-torch 0.3.16 (energy + forces, float32, eager)",
                      notes, header, rows))


if __name__ == "__main__":
    main()
