"""Tabulated radial networks against the networks: energy + forces, every tabulatable architecture.

For SchNet, PaiNN, MACE and TensorNet at their default sizes (random weights,
elements H C N O; MACE with ``avg_num_neighbors`` 16), the same potential is
timed eager and with ``pot.tabulate_radial()`` (docs/tabulation.md), one call
each in turn, float32, on the standard workloads (``inference_workloads.py``:
64 rMD17 aspirin frames, a 1,029-atom water cluster, one ethanol evaluated 20
times per call). The process keeps freed memory (``equinnp.memory.reuse_freed_memory``,
as the ASE calculator does). The force error is the tabulated potential's
against the network's, relative to the largest force.

    python benchmarks/tabulation_speed.py [--repeats 5] [--threads 1] [--models schnet painn]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import RESULTS, alternating_medians, machine, write_table  # noqa: E402

MODELS = {"schnet": {}, "painn": {}, "mace": {"avg_num_neighbors": 16.0}, "tensornet": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=RESULTS / "tabulation_speed.md")
    args = parser.parse_args()

    import equinnp
    from equinnp.memory import reuse_freed_memory
    from inference_workloads import inference_workloads

    reuse_freed_memory()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    loads = inference_workloads()
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        network = equinnp.build_potential(name, elements=[1, 6, 7, 8], **MODELS[name]).eval()
        table = copy.deepcopy(network).tabulate_radial()
        for label, unit, count, batch, calls in loads:
            exact = network(batch).forces
            error = float((table(batch).forces - exact).abs().max() / exact.abs().max())

            def run(potential, batch=batch, calls=calls):
                for _ in range(calls):
                    potential(batch)

            med = alternating_medians({"network": lambda: run(network), "table": lambda: run(table)}, args.repeats)
            rows.append([name, label, f"{count / med['network']:,.1f} {unit}", f"{count / med['table']:,.1f} {unit}",
                         f"{med['network'] / med['table']:.2f}", f"{error:.1e}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    notes = [f"Machine: {machine(args.threads)}; load average {load_start:.1f} at the start. Default sizes, random "
             f"weights, float32; medians of {args.repeats} alternating repeats.",
             f"Command: `python benchmarks/tabulation_speed.py --repeats {args.repeats} --threads {args.threads}"
             f"{' --models ' + ' '.join(args.models) if args.models != list(MODELS) else ''}`"]
    print(write_table(args.out, "Tabulated radial networks against the networks (energy + forces, float32)", notes,
                      ["model", "workload", "network", "tabulated", "speedup", "force error (relative)"], rows))


if __name__ == "__main__":
    main()
