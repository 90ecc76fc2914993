"""MD steps per second of the ASE calculator at 1 and 2 torch threads, by system size.

The measurement behind ``equinnp.threads.default_threads``: velocity-Verlet
steps (0.5 fs, the calculator's 1 Å skin) of ethanol (9 atoms) and periodic
water boxes of 81, 375 and 1,029 atoms (``md_systems.py``), with the model
trained by ``equinnp train --demo`` (PaiNN, 64 channels, 3 layers, cutoff 5 Å,
float32) or random weights of that architecture. The thread counts alternate
step by step (each with its own copy of the system), ``repeats`` blocks of
``steps`` steps each; medians of the per-block rates are reported.

    python benchmarks/inference_threads.py [MODEL] [--repeats 7] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import RESULTS, machine, write_table  # noqa: E402
from md_systems import ethanol, water_box  # noqa: E402


def demo_or_random(path):
    import torch

    import equinnp

    if path:
        from equinnp.train.checkpoint import load_model_file

        return load_model_file(path)[0]
    torch.manual_seed(0)
    return equinnp.build_potential("painn", cutoff=5.0, elements=[1, 6, 8], hidden_channels=64, num_interactions=3, num_rbf=20)


def main(argv=None) -> int:
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from equinnp.calculators import EquinnpCalculator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model file (default: random PaiNN of the demo's size)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--output", default=str(RESULTS / "inference_threads.md"))
    args = parser.parse_args(argv)
    potential = demo_or_random(args.model)
    systems = [("ethanol", ethanol()), ("water 81", water_box(3)), ("water 375", water_box(5)), ("water 1,029", water_box(7))]
    rows = []
    for label, atoms in systems:
        runs = {}
        for threads in (1, 2):
            copy = atoms.copy()
            copy.calc = EquinnpCalculator(potential, threads=threads)
            MaxwellBoltzmannDistribution(copy, temperature_K=300, rng=np.random.default_rng(0))
            runs[threads] = VelocityVerlet(copy, 0.5 * units.fs)
            runs[threads].run(2)  # warm-up
        rates = {t: [] for t in runs}
        for _ in range(args.repeats):
            for threads, dynamics in runs.items():
                start = time.perf_counter()
                dynamics.run(args.steps)
                rates[threads].append(args.steps / (time.perf_counter() - start))
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        rows.append([label, len(atoms), f"{one:.3g}", f"{two:.3g}", f"{two / one:.2f}"])
        print(rows[-1], flush=True)
    notes = [
        f"Machine: {machine(2)}; load average at the start {os.getloadavg()[0]:.1f}.",
        f"Model: {args.model or 'random PaiNN (64 channels, 3 layers, cutoff 5 Å)'}; float32, 1 Å skin, 0.5 fs velocity Verlet;",
        f"medians of {args.repeats} blocks of {args.steps} steps, the two thread counts alternating block by block.",
        "Command: `python benchmarks/inference_threads.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
    ]
    print(write_table(Path(args.output), "MD steps/s of the ASE calculator by thread count", notes,
                      ["system", "atoms", "1 thread", "2 threads", "2 / 1"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
