"""Training throughput: molecules per second of one full energy + force training step.

A step is: forward, forces by autograd with ``create_graph=True``, the loss
``mean(((E - E_ref)/N)^2) + 100 * mean((F - F_ref)^2)``, backward, and an AdamW
step. Compared, on the same batches of 32 rMD17 ethanol frames (bundled
train_01) in the same run:

- equinnp SchNet and PaiNN (``Potential`` in training mode, as ``equinnp.train`` runs it);
- ``torch_geometric.nn.models.SchNet`` with the force loss written by hand;
- SchNetPack 2.1.1 SchNet and PaiNN (``NeuralNetworkPotential`` with
  ``Forces``), when the peer env ``.peers/schnetpack`` exists, in a
  subprocess with that env's python.

Hyperparameters: SchNet 128 features, 128 filters, 6 interactions, 50 Gaussians;
PaiNN 128 features, 3 interactions, 20 Bessel functions; cutoff 5 Å; float32.
Neighbor lists are built once per batch outside the timed step for every
implementation, as a training data pipeline does (equinnp: ``edge_index`` in the
batch; PyG: injected through ``interaction_graph=``; SchNetPack: ``idx_i``/``idx_j``);
pair distances are computed from the positions inside the step. The
implementations are timed in alternation; each repeat times ``--steps`` steps;
the median over ``--repeats`` is reported.

    python benchmarks/training_throughput.py [--repeats 5] [--steps 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, machine, write_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "equinnp" / "data" / "bundled" / "rmd17_ethanol_train_01.npz"
SCHNETPACK_PYTHON = REPO / ".peers" / "schnetpack" / "bin" / "python"
KCAL_MOL = 0.0433641043  # eV per kcal/mol (ase.units.kcal / ase.units.mol)
CUTOFF = 5.0
FORCES_WEIGHT = 100.0
SCHNET = dict(hidden_channels=128, num_filters=128, num_interactions=6, num_gaussians=50)
PAINN = dict(hidden_channels=128, num_interactions=3, num_rbf=20)


def load_frames(n_batches: int, batch_size: int):
    """Numbers [9], positions [M, 9, 3] Å, energies [M] eV, forces [M, 9, 3] eV/Å."""
    raw = np.load(DATA)
    m = n_batches * batch_size
    return (raw["nuclear_charges"].astype(np.int64), raw["coords"][:m].astype(np.float32),
            raw["energies"][:m] * KCAL_MOL, (raw["forces"][:m] * KCAL_MOL).astype(np.float32))


def pair_list(pos: np.ndarray, offset: int):
    """All ordered pairs i != j within the cutoff of one molecule: (i, j) arrays."""
    d = np.linalg.norm(pos[None, :, :] - pos[:, None, :], axis=-1)
    i, j = np.nonzero((d < CUTOFF) & ~np.eye(len(pos), dtype=bool))
    return i + offset, j + offset


def loss_of(energy, forces, energy_ref, forces_ref, n_atoms):
    return ((energy.double() - energy_ref) / n_atoms).square().mean().float() + FORCES_WEIGHT * (forces - forces_ref).square().mean()


# ----------------------------------------------------------- equinnp and PyG
def main_process_models(n_batches: int, batch_size: int):
    """Step functions (one per implementation) and their batches."""
    from torch_geometric.data import Batch
    from torch_geometric.nn.models import SchNet as PygSchNet

    import equinnp
    from equinnp.data import from_arrays

    z, pos, energy, forces = load_frames(n_batches, batch_size)
    batches = []
    for b in range(n_batches):
        records = []
        for k in range(b * batch_size, (b + 1) * batch_size):
            data = from_arrays(z, pos[k], energy=float(energy[k]), forces=forces[k], dtype=torch.float32)
            data.energy = data.energy.double()
            i, j = pair_list(pos[k], 0)
            data.edge_index = torch.as_tensor(np.stack([j, i]))  # [2, E]: row 0 neighbor j, row 1 center i
            data.cell_shifts = torch.zeros(len(i), 3)
            # what RadiusGraph records, so that equinnp uses these edges (the pair list holds all pairs)
            data.neighbor_cutoff = torch.full((1,), CUTOFF, dtype=torch.float64)
            data.neighbor_pos = data.pos.clone()
            records.append(data)
        batches.append(Batch.from_data_list(records))

    steps = {}

    def equinnp_step(name, hyper):
        torch.manual_seed(0)
        potential = equinnp.build_potential(name, cutoff=CUTOFF, elements=[1, 6, 8], **hyper).train()
        optimizer = torch.optim.AdamW(potential.parameters(), lr=1e-4)

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            out = potential(batch)  # training mode: forces with create_graph=True
            n_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs)  # [B]
            loss = loss_of(out.energy, out.forces, batch.energy, batch.forces, n_atoms)
            loss.backward()
            optimizer.step()

        return step

    steps["equinnp SchNet"] = equinnp_step("schnet", SCHNET)
    steps["equinnp PaiNN"] = equinnp_step("painn", PAINN)

    torch.manual_seed(0)
    current = {}

    def injected_graph(pos, batch):
        edge_index = current["edge_index"]
        j, i = edge_index[0], edge_index[1]
        return edge_index, (pos[j] - pos[i]).norm(dim=-1)  # [E], differentiable in pos

    pyg = PygSchNet(cutoff=CUTOFF, interaction_graph=injected_graph, **SCHNET).train()
    pyg_optimizer = torch.optim.AdamW(pyg.parameters(), lr=1e-4)

    def pyg_step(batch):
        current["edge_index"] = batch.edge_index
        pyg_optimizer.zero_grad(set_to_none=True)
        pos = batch.pos.detach().requires_grad_(True)
        energy = pyg(batch.z, pos, batch.batch).reshape(-1)  # [B]
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        n_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs)
        loss = loss_of(energy, -grad, batch.energy, batch.forces, n_atoms)
        loss.backward()
        pyg_optimizer.step()

    steps["PyG SchNet"] = pyg_step
    return steps, batches


def time_steps(step, batches, n_steps: int):
    """(wall seconds, CPU seconds of this process) for ``n_steps`` steps."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for k in range(n_steps):
        step(batches[k % len(batches)])
    return time.perf_counter() - start, time.process_time() - cpu_start


# ------------------------------------------------------------- SchNetPack
def schnetpack_worker(n_batches: int, batch_size: int, threads: int) -> None:
    """Runs in the SchNetPack env: reads 'name steps' lines, answers with seconds."""
    import typing

    import torch.utils.data.dataloader as dataloader

    if not hasattr(dataloader, "T_co"):  # schnetpack 2.1.1 imports a name newer torch dropped
        dataloader.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack
    import schnetpack.properties as props
    from schnetpack.atomistic import Atomwise, Forces, PairwiseDistances
    from schnetpack.model import NeuralNetworkPotential
    from schnetpack.nn.cutoff import CosineCutoff
    from schnetpack.nn.radial import BesselRBF, GaussianRBF
    from schnetpack.representation import PaiNN, SchNet

    torch.set_num_threads(threads)
    z, pos, energy, forces = load_frames(n_batches, batch_size)
    n = len(z)
    batches = []
    for b in range(n_batches):
        frames = range(b * batch_size, (b + 1) * batch_size)
        pairs = [pair_list(pos[k], (k - b * batch_size) * n) for k in frames]
        idx_i = torch.as_tensor(np.concatenate([p[0] for p in pairs]))
        idx_j = torch.as_tensor(np.concatenate([p[1] for p in pairs]))
        batches.append({
            props.Z: torch.as_tensor(np.tile(z, batch_size)),
            props.R: torch.as_tensor(pos[list(frames)].reshape(-1, 3)),
            props.idx_i: idx_i,
            props.idx_j: idx_j,
            props.offsets: torch.zeros(len(idx_i), 3),
            props.idx_m: torch.arange(batch_size).repeat_interleave(n),
            props.n_atoms: torch.full((batch_size,), n),
            "energy_ref": torch.as_tensor(energy[list(frames)]),
            "forces_ref": torch.as_tensor(forces[list(frames)].reshape(-1, 3)),
        })

    def build(name):
        torch.manual_seed(0)
        if name == "SchNetPack SchNet":
            representation = SchNet(n_atom_basis=128, n_interactions=6, n_filters=128,
                                    radial_basis=GaussianRBF(n_rbf=50, cutoff=CUTOFF), cutoff_fn=CosineCutoff(CUTOFF))
        else:
            representation = PaiNN(n_atom_basis=128, n_interactions=3,
                                   radial_basis=BesselRBF(n_rbf=20, cutoff=CUTOFF), cutoff_fn=CosineCutoff(CUTOFF))
        model = NeuralNetworkPotential(
            representation=representation, input_modules=[PairwiseDistances()],
            output_modules=[Atomwise(n_in=128, output_key="energy"), Forces(energy_key="energy", force_key="forces")],
        ).train()  # Forces uses create_graph=self.training
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(batch):
            inputs = {k: v.clone() if k == props.R else v for k, v in batch.items()}
            optimizer.zero_grad(set_to_none=True)
            out = model(inputs)
            loss = loss_of(out["energy"], out["forces"], batch["energy_ref"], batch["forces_ref"], batch[props.n_atoms])
            loss.backward()
            optimizer.step()

        return step

    steps = {name: build(name) for name in ("SchNetPack SchNet", "SchNetPack PaiNN")}
    for name, step in steps.items():
        time_steps(step, batches, 2)  # warm-up
    print(json.dumps({"ready": True, "version": getattr(schnetpack, "__version__", "2.1.1")}), flush=True)
    for line in sys.stdin:
        name, n_steps = line.rsplit(" ", 1)
        wall, cpu = time_steps(steps[name], batches, int(n_steps))
        print(json.dumps({"name": name, "wall": wall, "cpu": cpu}), flush=True)


class SchNetPackPeer:
    """The SchNetPack worker process, driven one timing at a time."""

    def __init__(self, args):
        self.process = subprocess.Popen(
            [str(SCHNETPACK_PYTHON), __file__, "--schnetpack-worker", "--batches", str(args.batches),
             "--batch-size", str(args.batch_size), "--threads", str(args.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO),
        )
        hello = json.loads(self.process.stdout.readline())
        self.version = hello["version"]

    def time(self, name: str, n_steps: int):
        self.process.stdin.write(f"{name} {n_steps}\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer["wall"], answer["cpu"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


# ------------------------------------------------------------------ report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="training steps per timing")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "training_throughput.md")
    parser.add_argument("--schnetpack-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.schnetpack_worker:
        schnetpack_worker(args.batches, args.batch_size, args.threads)
        return

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    steps, batches = main_process_models(args.batches, args.batch_size)
    for step in steps.values():
        time_steps(step, batches, 2)  # warm-up
    peer = SchNetPackPeer(args) if SCHNETPACK_PYTHON.exists() else None
    names = list(steps) + (["SchNetPack SchNet", "SchNetPack PaiNN"] if peer else [])
    seconds = {name: [] for name in names}  # (wall, cpu) per repeat
    for repeat in range(args.repeats):
        for name in names:
            t = peer.time(name, args.steps) if name.startswith("SchNetPack") else time_steps(steps[name], batches, args.steps)
            seconds[name].append(t)
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{n} {args.steps * args.batch_size / seconds[n][-1][0]:.1f}/s" for n in names), flush=True)
    if peer:
        peer.close()
    load_after = os.getloadavg()

    molecules = args.steps * args.batch_size
    rate = {n: [molecules / wall for wall, _ in seconds[n]] for n in names}
    cpu_rate = {n: [molecules / cpu for _, cpu in seconds[n]] for n in names}
    median = {n: statistics.median(r) for n, r in rate.items()}
    cpu_median = {n: statistics.median(r) for n, r in cpu_rate.items()}
    reference = {"equinnp SchNet": ["PyG SchNet", "SchNetPack SchNet"], "equinnp PaiNN": ["SchNetPack PaiNN"]}
    rows = []
    for name in names:
        ratio = cpu_ratio = ""
        for ours, peers in reference.items():
            if name in peers:
                ratio = f"{median[ours] / median[name]:.2f}"
                cpu_ratio = f"{cpu_median[ours] / cpu_median[name]:.2f}"
        rows.append([name, f"{median[name]:.1f}", f"{min(rate[name]):.1f}-{max(rate[name]):.1f}",
                     f"{cpu_median[name]:.1f}", ratio, cpu_ratio])
    notes = [
        f"Machine: {machine(args.threads)} per process; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (the machine is shared: absolute numbers are pessimistic, ratios come from "
        "alternating timings in one run).",
        "",
        f"One step = forward + forces (autograd, create_graph) + energy/force MSE loss + backward + AdamW, "
        f"batches of {args.batch_size} rMD17 ethanol frames (9 atoms), float32; neighbor lists precomputed for all. "
        f"Median of {args.repeats} repeats of {args.steps} steps.",
        "",
        "Two rates: molecules per wall-clock second, and per CPU second of the timed process "
        "(CPU time excludes the time other jobs held the cores, so it is the steadier comparison on a shared machine).",
    ]
    footer = ([f"SchNetPack {peer.version} ran in its own env (`.peers/schnetpack`), in a subprocess driven in "
               "alternation with the others."] if peer else [f"SchNetPack rows missing: no peer env at {SCHNETPACK_PYTHON}."])
    footer += ["", f"Command: `python benchmarks/training_throughput.py --repeats {args.repeats} --steps {args.steps} "
                   f"--threads {args.threads}`"]
    header = ["implementation", "molecules/s, wall (median)", "wall min-max", "molecules/CPU-s (median)",
              "equinnp / this (wall)", "equinnp / this (CPU)"]
    print(write_table(args.out, "Training throughput: equinnp vs PyG and SchNetPack", notes, header, rows, footer))


if __name__ == "__main__":
    main()
