"""Compiled inference (``equinnp.compiled.compile_potential``) against eager, per architecture, on the CPU.

Energy + forces of MD-like inputs, float32, one thread: ethanol (9 atoms) and
a periodic box of 81 water atoms (``md_systems.py``), each call on positions
jittered anew (so that the edge count changes and dynamic shapes are
exercised), neighbor search inside the call for both. Models of the demo's
size with random weights: SchNet (64 features, 3 interactions), PaiNN (64,
3), TensorNet (64, 2 layers), MACE (64x0e, l_max 3, correlation 3, 2 layers);
PhysNet, AIMNet2, ANI-2x, DimeNet++ and SAKE at their class defaults; cutoff 5 Å. Parameters
initialised to zero are drawn from N(0, 0.1²) (``fill_zero_parameters``).
Reported: the compile time (first call), the largest relative deviation from
eager over the timed calls, the number of graphs compiled and of
recompilations, and the median call time of each, alternating. Architectures
that ``compile_potential`` refuses (``INDUCTOR_WRONG_FORCES``: SAKE) are
compiled directly, to show the deviation that makes it refuse them.

    python benchmarks/compiled_inference.py [--repeats 20] [--only schnet]
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

CONFIGS = {
    "schnet": dict(hidden_channels=64, num_interactions=3),
    "painn": dict(hidden_channels=64, num_interactions=3, num_rbf=20),
    "tensornet": dict(hidden_channels=64, num_layers=2),
    "mace": dict(hidden_irreps="64x0e", num_interactions=2, avg_num_neighbors=16.0),
    "physnet": {},  # the class defaults (the paper's size: 128 features, 5 modules)
    "aimnet2": {},  # the class defaults (AIMNet2's published size)
    "ani2x": {},  # the class defaults (one ANI-2x network)
    "dimenetpp": {},  # the class defaults (the paper's size)
    "sake": {},  # the class defaults
}


def fill_zero_parameters(model, generator) -> None:
    """Zero-initialised parameters (PhysNet's output layers, ...) drawn from N(0, 0.1²) instead,
    so that energies and forces are not identically zero and the deviation is a ratio of non-zeros."""
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() and not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))


def main(argv=None) -> int:
    import torch
    import torch._dynamo

    import equinnp
    from equinnp.compiled import INDUCTOR_WRONG_FORCES, compile_potential
    from equinnp.data import from_ase
    from harness import RESULTS, machine, write_table
    from md_systems import ethanol, water_box

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS))
    parser.add_argument("--output", help="results file (default benchmarks/results/compiled_inference.md)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    rows = []
    for name, config in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        torch.manual_seed(0)
        eager = equinnp.build_potential(name, cutoff=5.0, elements=[1, 6, 8], **config).eval()
        fill_zero_parameters(eager, torch.Generator().manual_seed(0))
        needs_charge = equinnp.ARCHITECTURES[name].requires_charge
        compiled = equinnp.build_potential(name, cutoff=5.0, elements=[1, 6, 8], **config).eval()
        compiled.load_state_dict(eager.state_dict())
        if name in INDUCTOR_WRONG_FORCES:  # refused by compile_potential: compiled directly, to measure how wrong
            compiled.model.compile(dynamic=True)
        else:
            compile_potential(compiled)
        torch._dynamo.utils.counters.clear()
        for label, atoms in (("ethanol", ethanol()), ("water box (81 atoms)", water_box(3))):
            def frame():
                moved = atoms.copy()
                moved.positions += rng.normal(scale=0.05, size=moved.positions.shape)
                if needs_charge:
                    moved.info["charge"] = 0.0
                return from_ase(moved, dtype=torch.float32)

            start = time.perf_counter()
            compiled(frame())
            compile_seconds = time.perf_counter() - start
            compiles_before = torch._dynamo.utils.counters["frames"]["total"]  # frames compiled (first or re-)
            times = {"eager": [], "compiled": []}
            worst = 0.0
            for _ in range(args.repeats):
                data = frame()
                outputs = {}
                for key, pot in (("eager", eager), ("compiled", compiled)):
                    start = time.perf_counter()
                    outputs[key] = pot(data, compute_stress=False)
                    times[key].append(time.perf_counter() - start)
                e, c = outputs["eager"], outputs["compiled"]
                worst = max(worst, float((e.energy - c.energy).abs().max() / e.energy.abs().max()),
                            float((e.forces - c.forces).abs().max() / e.forces.abs().max()))
            eager_ms, compiled_ms = (1e3 * statistics.median(times[k]) for k in ("eager", "compiled"))
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            recompiles = torch._dynamo.utils.counters["frames"]["total"] - compiles_before  # during the timed frames
            rows.append([name, label, f"{compile_seconds:.0f}", f"{eager_ms:.2f}", f"{compiled_ms:.2f}",
                         f"{eager_ms / compiled_ms:.2f}", f"{worst:.1e}", graphs, recompiles])
            print(rows[-1], flush=True)
    notes = [f"Machine: {machine(1)}; load average at the start {load_start:.1f}.",
             "float32, one thread, inductor (CPU), `dynamic=True`; random weights, demo-sized models (see the script).",
             f"Median ms per energy + forces call over {args.repeats} jittered frames, eager and compiled alternating;",
             "deviation: largest relative difference of energy or forces from eager; graphs: dynamo graphs compiled so far for the model;",
             "recompiles: frames dynamo compiled during the timed calls, after the first call (0: no recompilation as the edge count changes).",
             "Command: `python benchmarks/compiled_inference.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`"]
    print(write_table(Path(args.output) if args.output else RESULTS / "compiled_inference.md", "Compiled inference on the CPU against eager", notes,
                      ["architecture", "system", "compile (s)", "eager (ms)", "compiled (ms)", "speedup", "deviation", "graphs", "recompiles"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
