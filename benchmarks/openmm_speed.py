"""MD speed through OpenMM: the equinnp ``PythonForce`` against the ASE calculator, same model, same process.

Contenders, each integrating its own copy of the same start (velocities at
300 K), 0.5 fs steps, one torch thread, the model's dtype:

- ASE: ``EquinnpCalculator`` (1 Å skin) driven by ASE's ``VelocityVerlet``;
- OpenMM CPU: ``MLPotential("equinnp", model=...)``'s system (one
  ``PythonForce``, no CMMotionRemover) with a ``VerletIntegrator`` on the CPU
  platform (``Threads`` = 1);
- OpenMM Reference: the same on the Reference platform.

They take turns, one block of steps each, ``repeats`` times after a warm-up
block; the medians of the blocks' rates are reported with the ratio to ASE.

    python benchmarks/openmm_speed.py MODEL [--repeats 9] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BLOCKS = {"ethanol": 20, "water box (375 atoms)": 4}  # steps per timed block


def ase_stepper(atoms, model):
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from equinnp.calculators import EquinnpCalculator

    atoms = atoms.copy()
    atoms.calc = EquinnpCalculator(model, threads=1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, 0.5 * units.fs)
    return dynamics.run, atoms.calc


def openmm_stepper(atoms, model, platform: str):
    import openmm
    from openmm import app, unit
    from openmmml import MLPotential

    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for z in atoms.numbers:
        topology.addAtom("X", app.Element.getByAtomicNumber(int(z)), residue)
    if atoms.pbc.any():
        topology.setPeriodicBoxVectors(atoms.cell.array * unit.angstrom)
    system = MLPotential("equinnp", model=model).createSystem(topology, removeCMMotion=False, threads=1, device="cpu")
    properties = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(system, openmm.VerletIntegrator(0.5 * unit.femtosecond),
                             openmm.Platform.getPlatformByName(platform), properties)
    if atoms.pbc.any():
        context.setPeriodicBoxVectors(*(atoms.cell.array * unit.angstrom))
    context.setPositions(atoms.positions * unit.angstrom)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)

    def step(steps: int) -> None:  # holds the context: an integrator outlives its context otherwise
        context.getIntegrator().step(steps)

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", choices=["ethanol", "water"])
    parser.add_argument("--output", help="results file (default benchmarks/results/openmm_speed.md)")
    args = parser.parse_args(argv)
    import openmm
    import torch

    from harness import RESULTS, machine, write_table
    from md_systems import ethanol, water_box

    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    systems = {"ethanol": ethanol(), "water box (375 atoms)": water_box(5)}
    if args.only:
        systems = {k: v for k, v in systems.items() if k.startswith(args.only)}
    rows = []
    for label, atoms in systems.items():
        ase_step, calculator = ase_stepper(atoms, args.model)
        contenders = {"ASE calculator + VelocityVerlet": ase_step,
                      "OpenMM PythonForce, CPU platform": openmm_stepper(atoms, args.model, "CPU"),
                      "OpenMM PythonForce, Reference platform": openmm_stepper(atoms, args.model, "Reference")}
        steps = BLOCKS[label]
        for step in contenders.values():
            step(steps)  # warm-up
        rates = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, step in contenders.items():
                start = time.perf_counter()
                step(steps)
                rates[name].append(steps / (time.perf_counter() - start))
        medians = {name: statistics.median(r) for name, r in rates.items()}
        reference = medians["ASE calculator + VelocityVerlet"]
        for name, rate in medians.items():
            rows.append([label, len(atoms), name, f"{rate:.3g}", f"{rate / reference:.2f}"])
            print(rows[-1], flush=True)
        rows.append([label, "", "ASE calculator's neighbor searches", calculator.neighbor_searches, ""])
    notes = [
        f"Machine: {machine(1)}; load average at the start {load_start:.1f}.",
        f"Model: `{args.model}` (as saved); OpenMM {openmm.__version__}; one torch thread, OpenMM CPU platform Threads=1; 0.5 fs.",
        f"Medians of {args.repeats} blocks ({', '.join(f'{k}: {v} steps' for k, v in BLOCKS.items())}), contenders taking turns.",
        "ratio: steps/s over the ASE calculator's (above 1: faster than the ASE path).",
        "Command: `python benchmarks/openmm_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
    ]
    print(write_table(Path(args.output) if args.output else RESULTS / "openmm_speed.md",
                      "MD steps per second: equinnp through OpenMM's PythonForce and through ASE", notes,
                      ["system", "atoms", "integrator", "steps/s", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
