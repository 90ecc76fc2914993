"""MD throughput of many systems: one batched TorchSim simulation against one ASE calculator per system.

Same model (float32), same systems, same integrator (velocity Verlet, 0.5 fs,
velocities at 300 K with the same seed per system), same number of steps:

- TorchSim: every system in one ``SimState``, ``torch_sim.nve`` stepping all
  of them with ``EquinnpTorchSimModel`` (one batched force call per step, one
  neighbor search for all systems, 1 Å Verlet skin, ``compute_stress=False``);
- ASE: one ``EquinnpCalculator`` (1 Å skin) and one ``VelocityVerlet`` per
  system, run one after the other in the same process.

Systems: rMD17 ethanol frames (9 atoms, open boundaries) and periodic boxes of
81 water atoms (``md_systems.water_box(3)``, different seeds). A timed block
runs the same number of steps on every system for both contenders; the number
of steps is sized from a warm-up so that the ASE block takes a few seconds.
The contenders take turns block by block, ``repeats`` times; medians of the
blocks are reported as system-steps per second (systems x steps / seconds).
Both run in this process with the same torch thread count (1, then 2).

    python benchmarks/torchsim_throughput.py [MODEL] [--repeats 5] [--threads 1 2]

MODEL: a saved equinnp potential (``equinnp train --demo`` writes
``runs/demo/model.pt``); without it an untrained PaiNN of the demo's size
(64 channels, 3 layers, 20 radial functions, cutoff 5 Å) with small random
weights is used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import RESULTS, alternating_medians, machine, write_table  # noqa: E402

TIMESTEP_FS = 0.5
TEMPERATURE = 300.0
BLOCK_SECONDS = 4.0  # the ASE block's length the step count is sized for


def demo_sized_potential():
    import equinnp

    torch.manual_seed(0)
    return equinnp.build_potential("painn", cutoff=5.0, elements=[1, 6, 8], hidden_channels=64, num_interactions=3,
                                   num_rbf=20, dtype="float32", scale=0.05).eval()


def ethanols(n: int):
    from equinnp.data.bundled import ethanol_atoms

    return [ethanol_atoms(frame=k) for k in range(n)]


def water_boxes(n: int):
    from md_systems import water_box

    return [water_box(3, seed=k) for k in range(n)]


def _velocities(atoms_list):
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    for k, atoms in enumerate(atoms_list):
        MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE, rng=np.random.default_rng(k))


class AsePerSystem:
    """One ``EquinnpCalculator`` and one ASE ``VelocityVerlet`` per system."""

    def __init__(self, potential, atoms_list, threads: int):
        from ase import units
        from ase.md.verlet import VelocityVerlet

        from equinnp.calculators import EquinnpCalculator

        self.dynamics = []
        for atoms in atoms_list:
            atoms = atoms.copy()
            atoms.calc = EquinnpCalculator(potential, threads=threads)
            self.dynamics.append(VelocityVerlet(atoms, TIMESTEP_FS * units.fs))

    def energies(self):
        return np.array([d.atoms.get_potential_energy() for d in self.dynamics])

    def block(self, steps: int) -> None:
        for dynamics in self.dynamics:
            dynamics.run(steps)

    @property
    def searches(self) -> int:
        return sum(d.atoms.calc.neighbor_searches for d in self.dynamics)


class TorchSimBatched:
    """Every system in one TorchSim state, stepped by ``torch_sim.nve``."""

    def __init__(self, potential, atoms_list, threads: int):
        import torch_sim as ts
        from ase import units

        from equinnp.calculators import EquinnpTorchSimModel

        # NVE needs no stress (ASE's VelocityVerlet asks for forces only)
        self.model = EquinnpTorchSimModel(potential, device="cpu", threads=threads, compute_stress=False)
        dtype = self.model.dtype
        init, self.update = ts.nve(model=self.model, dt=torch.tensor(TIMESTEP_FS * units.fs, dtype=dtype),
                                   kT=torch.tensor(0.0, dtype=dtype))
        self.state = init(ts.io.atoms_to_state(atoms_list, torch.device("cpu"), dtype))
        self.state.momenta = torch.tensor(np.concatenate([a.get_momenta() for a in atoms_list]), dtype=dtype)

    def energies(self):
        return self.state.energy.double().numpy()

    def block(self, steps: int) -> None:
        for _ in range(steps):
            self.state = self.update(self.state)

    @property
    def searches(self) -> int:
        return self.model.neighbor_searches


def measure(potential, label: str, atoms_list, threads: int, repeats: int) -> dict:
    _velocities(atoms_list)
    ase_md = AsePerSystem(potential, atoms_list, threads)
    batched = TorchSimBatched(potential, atoms_list, threads)
    start_energies = ase_md.energies()
    deviation = float(np.max(np.abs(batched.energies() - start_energies) / np.abs(start_energies).clip(1e-12)))
    for contender in (ase_md, batched):
        contender.block(2)  # warm-up
    began = time.perf_counter()
    ase_md.block(2)
    per_step = (time.perf_counter() - began) / 2
    steps = int(min(400, max(2, BLOCK_SECONDS / per_step)))
    seconds = alternating_medians({"ase": lambda: ase_md.block(steps), "torchsim": lambda: batched.block(steps)},
                                  repeats=repeats, warmup=0)
    n = len(atoms_list)
    row = dict(workload=label, atoms=len(atoms_list[0]), systems=n, threads=threads, steps=steps,
               ase=n * steps / seconds["ase"], torchsim=n * steps / seconds["torchsim"],
               ase_searches=ase_md.searches, torchsim_searches=batched.searches, deviation=deviation)
    print(row, flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="saved equinnp potential (default: untrained demo-sized PaiNN)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ethanol", type=int, nargs="+", default=[1, 8, 32, 64], help="numbers of ethanol systems")
    parser.add_argument("--water", type=int, nargs="+", default=[1, 4, 16], help="numbers of 81-atom water boxes")
    parser.add_argument("--output", default=str(RESULTS / "torchsim_throughput.md"))
    args = parser.parse_args(argv)

    import importlib.metadata

    import equinnp

    potential = equinnp.load_potential(args.model) if args.model else demo_sized_potential()
    potential = potential.to(torch.float32).eval()
    load_start = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        for n in args.ethanol:
            rows.append(measure(potential, "ethanol", ethanols(n), threads, args.repeats))
        for n in args.water:
            rows.append(measure(potential, "water box", water_boxes(n), threads, args.repeats))
    versions = f"torch-sim-atomistic {importlib.metadata.version('torch-sim-atomistic')}, ase {importlib.metadata.version('ase')}"
    command = "python benchmarks/torchsim_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = [
        f"Machine: {machine(max(args.threads))}; load average at the start {load_start:.1f}. "
        "Threads: the count in each row, set for both contenders.",
        f"Model: {args.model or 'untrained PaiNN of the demo size (64 channels, 3 layers, cutoff 5 Å)'}, float32; {versions}.",
        f"Velocity Verlet, {TIMESTEP_FS} fs, from {TEMPERATURE:g} K; 1 Å Verlet skin for both. "
        "ASE: one EquinnpCalculator + VelocityVerlet per system, run one after the other; "
        "TorchSim: all systems in one SimState, torch_sim.nve with EquinnpTorchSimModel(compute_stress=False).",
        f"Rates in system-steps per second (systems x steps / s): medians of {args.repeats} blocks per contender, "
        "the contenders taking turns; a block runs `steps` steps on every system.",
        "ratio: TorchSim over ASE (above 1: the batched run is faster). "
        "energy check: largest relative difference of the starting energies, TorchSim against ASE (float32).",
        f"Command: `{command}`",
    ]
    header = ["systems", "atoms each", "threads", "steps per block", "ASE, one calculator per system",
              "TorchSim, batched", "ratio", "neighbor searches ASE / TorchSim", "energy check"]
    table = [[f"{r['systems']} x {r['workload']}", r["atoms"], r["threads"], r["steps"], f"{r['ase']:.1f}",
              f"{r['torchsim']:.1f}", f"{r['torchsim'] / r['ase']:.2f}", f"{r['ase_searches']} / {r['torchsim_searches']}",
              f"{r['deviation']:.1e}"] for r in rows]
    print(write_table(Path(args.output), "MD throughput: batched TorchSim against one ASE calculator per system",
                      notes, header, table))


if __name__ == "__main__":
    main()
