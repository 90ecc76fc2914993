"""Energy + forces inference of equinnp PhysNet alone (no runnable peer).

There is no maintained PyTorch PhysNet, and the authors' TensorFlow 1 code
(MMunibas/PhysNet) has no environment here, so this times equinnp only, on
the shared workloads (``harness.workloads``: 64 rMD17 aspirin frames, one
1,029-atom water cluster), float32, eager, random weights, paper
hyperparameters (F 128, K 64, cutoff 10 Å, 5 modules, 2/3/1 residual layers).
Two contenders alternate call by call: the network alone (``scale_shift``
only) and the paper's pipeline (``uniform_charges`` and the shielded Coulomb
term over all pairs, ``method: direct``), both computing their own neighbour
list inside the timed call; medians of ``repeats`` rounds after a warm-up.

    python benchmarks/physnet_inference.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import alternating_medians, machine, workloads, write_table  # noqa: E402

ELEMENTS = [1, 6, 7, 8]
HYPER = dict(cutoff=10.0, hidden_channels=128, num_rbf=64, num_modules=5, num_residual_atomic=2,
             num_residual_interaction=3, num_residual_output=1)
PAPER_PIPELINE = {"transforms": ["scale_shift", "uniform_charges"],
                  "energy_terms": [{"name": "coulomb", "shielding": "physnet", "switch_radius": 5.0}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "physnet_inference.md"))
    args = parser.parse_args()

    import equinnp

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = equinnp.build_potential("physnet", elements=ELEMENTS, **HYPER).eval()
    paper = equinnp.build_potential("physnet", elements=ELEMENTS, postprocessing=PAPER_PIPELINE, **HYPER).eval()
    paper.load_state_dict(network.state_dict(), strict=False)
    rows = []
    for label, unit, count, batch in workloads():
        batch.charge = torch.zeros(batch.num_graphs, dtype=torch.float64)
        med = alternating_medians({"network": lambda: network(batch), "paper": lambda: paper(batch)}, args.repeats, warmup=1)
        rows.append([label, f"{count / med['network']:,.1f} {unit}", f"{count / med['paper']:,.1f} {unit}", "missing"])
        print(f"{label}: " + ", ".join(f"{n} {count / t:,.1f} {unit}" for n, t in med.items()), flush=True)

    notes = [
        f"Machine: {machine(args.threads)}. Random weights; F 128, K 64, cutoff 10 Å, 5 modules, 2/3/1 residual "
        "layers, float32, eager. Each call computes its own neighbour list. The two equinnp contenders take turns "
        f"call by call ({args.repeats} rounds after a warm-up); medians. No peer: there is no maintained PyTorch "
        "PhysNet and the authors' TensorFlow 1 code has no environment here.",
        f"Command: `OMP_NUM_THREADS={args.threads} python benchmarks/physnet_inference.py --repeats {args.repeats} "
        f"--threads {args.threads}`",
    ]
    header = ["workload", "equinnp network (energy + forces)", "equinnp + uniform charges + shielded Coulomb", "peer"]
    print(write_table(Path(args.out), "PhysNet inference: equinnp alone (energy + forces, float32, eager)",
                      notes, header, rows, []))


if __name__ == "__main__":
    main()
