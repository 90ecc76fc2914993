"""MD speed: velocity-Verlet steps per second through ASE calculators, equinnp against mace-torch and TorchANI.

Same structures, same integrator (ASE's ``VelocityVerlet``, 0.5 fs, velocities
at 300 K, seed 0), one torch thread each, float32, in one run:

- equinnp: ``EquinnpCalculator`` with the model ``equinnp train --demo``
  trains (PaiNN, 64 channels, 3 layers, cutoff 5 Å), its 1 Å Verlet skin
  included (the neighbor list is searched only when an atom moved 0.5 Å);
- mace-torch 0.3.16 ``MACECalculator`` (``.peers/mace``): a MACE of
  comparable size with random weights (64x0e hidden irreps, l_max 3,
  correlation 3, 2 layers, cutoff 5 Å), which searches its neighbors
  (matscipy) at every step;
- TorchANI 2.9.0 ``model.ase()`` (``.peers/torchani``): the published ANI-2x,
  first network of the ensemble (``../shared/data/ani2x``), cutoff 5.2 Å.

Systems (``md_systems.py``): ethanol (9 atoms) and a periodic box of 1,029
water atoms. The peers run in their own venvs in long-lived worker processes;
the contenders take turns, one block of steps each, ``repeats`` times after a
warm-up; medians of the blocks' rates are reported.

With ``--tabulate`` equinnp's calculator evaluates the radial network by its
table (``EquinnpCalculator(tabulate=True)``, SchNet and PaiNN); the calculator
keeps freed memory for the next step (``reuse_memory``, its default) either way.

``--peer-glibc-reuse`` gives the peers the same glibc options; ``--compile``
runs equinnp's calculator with ``compile=True`` (inductor, dynamic shapes; the
compilation happens in the warm-up, outside the timed blocks).

    python benchmarks/md_speed.py MODEL [--repeats 5] [--only ethanol] [--tabulate] [--compile] [--peer-glibc-reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

PEERS = {
    "mace-torch 0.3.16": REPO / ".peers" / "mace" / "bin" / "python",
    "TorchANI 2.9.0 (ANI-2x, 1 network)": REPO / ".peers" / "torchani" / "bin" / "python",
}
ANI2X = REPO.parent / "shared" / "data" / "ani2x"
BLOCKS = {"ethanol": 20, "water box (1,029 atoms)": 2}  # steps per timed block


# ------------------------------------------------------------------ workers (any venv)
def _stepper(atoms, calculator):
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms.calc = calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, 0.5 * units.fs)
    dynamics.run(3)  # warm-up

    def block(steps: int) -> float:
        start = time.perf_counter()
        dynamics.run(steps)
        return time.perf_counter() - start

    return block


def mace_calculator(elements):
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules
    from mace.calculators import MACECalculator

    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"], num_interactions=2,
        num_elements=len(elements), hidden_irreps=o3.Irreps("64x0e"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(elements)), avg_num_neighbors=16.0, atomic_numbers=elements, correlation=3,
        gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64], atomic_inter_scale=0.1, atomic_inter_shift=0.0,
    ).float().eval()
    path = Path(tempfile.mkdtemp()) / "mace_random.model"
    torch.save(model, path)
    return MACECalculator(model_paths=str(path), device="cpu", default_dtype="float32")


def ani_calculator():
    from torchani.arch import ANI
    from torchani.neurochem import NeurochemInfo, modules_from_info

    lines = (ANI2X / "ani-2x_8x.info").read_text().split()
    info = NeurochemInfo(sae=ANI2X / lines[1], const=ANI2X / lines[0], ensemble_prefix=ANI2X / lines[2], ensemble_size=int(lines[3]))
    aev, networks, self_energies, symbols = modules_from_info(info, model_index=0)
    return ANI(symbols, aev, networks, self_energies, periodic_table_index=True).float().eval().ase()


def worker(peer: str, structure: str) -> None:
    """Answer each stdin line ``steps`` with the seconds of that many MD steps (in a peer venv)."""
    import ase.io
    import torch

    torch.set_num_threads(1)
    atoms = ase.io.read(structure)
    calculator = mace_calculator([1, 6, 8]) if peer.startswith("mace") else ani_calculator()
    block = _stepper(atoms, calculator)
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps({"seconds": block(int(line))}), flush=True)


# ------------------------------------------------------------------ main
#: glibc malloc options equal to ``equinnp.memory.reuse_freed_memory`` (which the equinnp calculator sets).
GLIBC_REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


class PeerProcess:
    def __init__(self, peer: str, structure: str, glibc_reuse: bool = False):
        env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", TORCHANI_NO_WARN_EXTENSIONS="1",
                   **(GLIBC_REUSE if glibc_reuse else {}))
        self.process = subprocess.Popen([str(PEERS[peer]), __file__, "--worker", peer, structure], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        line = "start"
        while line and line.strip() != "ready":  # skip what the peer prints while it loads
            line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{peer} worker ended before it was ready")

    def __call__(self, steps: int) -> float:
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        while line and not line.startswith("{"):
            line = self.process.stdout.readline()
        return json.loads(line)["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["ethanol", "water"])
    parser.add_argument("--output", help="results file (default benchmarks/results/md_speed.md)")
    parser.add_argument("--tabulate", action="store_true", help="equinnp with its radial network tabulated")
    parser.add_argument("--compile", action="store_true", help="equinnp's calculator with compile=True (inductor)")
    parser.add_argument("--peer-glibc-reuse", action="store_true",
                        help="run the peers with the glibc malloc options the equinnp calculator sets")
    parser.add_argument("--worker", nargs=2, metavar=("PEER", "STRUCTURE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    import ase.io
    import torch

    from equinnp.calculators import EquinnpCalculator
    from harness import RESULTS, machine, write_table
    from md_systems import ethanol, water_box

    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    systems = {"ethanol": ethanol(), "water box (1,029 atoms)": water_box(7)}
    if args.only:
        systems = {k: v for k, v in systems.items() if k.startswith(args.only)}
    rows = []
    for label, atoms in systems.items():
        structure = Path(tempfile.mkdtemp()) / "start.xyz"
        ase.io.write(structure, atoms, format="extxyz")
        calculator = EquinnpCalculator(args.model, threads=1, tabulate=args.tabulate, compile=args.compile)
        contenders = {"equinnp": _stepper(atoms.copy(), calculator)}
        peers = {}
        for peer in PEERS:
            try:
                peers[peer] = contenders[peer] = PeerProcess(peer, str(structure), args.peer_glibc_reuse)
            except (RuntimeError, OSError, json.JSONDecodeError) as error:
                print(f"{peer}: {error}", file=sys.stderr)
        rates = {name: [] for name in contenders}
        steps = BLOCKS[label]
        for _ in range(args.repeats):
            for name, block in contenders.items():
                rates[name].append(steps / block(steps))
        for process in peers.values():
            process.close()
        medians = {name: statistics.median(r) for name, r in rates.items()}
        for name, rate in medians.items():
            ratio = "1.00" if name == "equinnp" else f"{medians['equinnp'] / rate:.2f}"
            rows.append([label, len(atoms), name, f"{rate:.3g}", ratio])
            print(rows[-1], flush=True)
        rows.append([label, "", "equinnp neighbor searches", calculator.neighbor_searches, ""])
    notes = [
        f"Machine: {machine(1)}; load average at the start {load_start:.1f}.",
        f"equinnp model: `{args.model}`{' (radial network tabulated)' if args.tabulate else ''}"
        f"{' (compiled: compile=True, inductor)' if args.compile else ''}; float32 everywhere; "
        "one torch thread per contender; ASE VelocityVerlet, 0.5 fs.",
        f"Medians of {args.repeats} blocks ({', '.join(f'{k}: {v} steps' for k, v in BLOCKS.items())}), contenders taking turns.",
        "ratio: equinnp's steps/s over the peer's (above 1: equinnp faster).",
        "The equinnp calculator keeps freed memory for the next step (glibc malloc options, `reuse_memory=True`); "
        + ("the peers ran with the same options in their environment (`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824`)."
           if args.peer_glibc_reuse else "the peers ran as installed (glibc defaults)."),
        "Command: `python benchmarks/md_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
    ]
    print(write_table(Path(args.output) if args.output else RESULTS / "md_speed.md", "MD steps per second: equinnp, mace-torch and TorchANI ASE calculators", notes,
                      ["system", "atoms", "calculator", "steps/s", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
