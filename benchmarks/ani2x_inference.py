"""Energy + forces inference: equinnp ANI-2x against TorchANI 2.9.0, one network and the 8-member ensemble.

Both sides load the published ANI-2x NeuroChem files (``../shared/data/ani2x``,
or ``--model``): equinnp through ``equinnp.load_pretrained("ani2x")``, TorchANI
through ``torchani.neurochem.modules_from_info`` (``model_index=0`` for
one network). float32, eager, the same thread count and structures: batches of
64 rMD17 aspirin frames (21 atoms) and one 1,029-atom water cluster
(``harness.workloads``). Each call computes its own neighbor list: equinnp's
radius graph, TorchANI's default ``all_pairs`` list (as ``torchani.models.ANI2x``).
Forces come from autograd on both sides. TorchANI's ensemble runs twice: as
loaded (one network after the other) and after ``to_infer_model()`` (its
``BmmEnsemble``, all members in batched matrix products).

TorchANI runs in its own venv (``.peers/torchani``, ``benchmarks/peers/setup_envs.sh
torchani``), one long-lived worker process per configuration. All contenders are
timed one call each, in turn, ``repeats`` times after a warm-up; medians are
reported. The energies of the two sides are compared too (float32 rounding only).

    python benchmarks/ani2x_inference.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_PYTHON = REPO / ".peers" / "torchani" / "bin" / "python"
DEFAULT_MODEL = REPO.parent / "shared" / "data" / "ani2x"
HARTREE_TO_EV = 27.211386024367243  # TorchANI's torchani.units.HARTREE_TO_EV


# ------------------------------------------------------------------ TorchANI worker (peer venv)


def peer_worker(inputs: str, mode: str) -> None:
    """Load TorchANI's ANI-2x; answer each stdin line ``k`` with the seconds and energies of one call on workload k."""
    import torchani

    job = torch.load(inputs, weights_only=True)
    torch.set_num_threads(job["threads"])
    from torchani.arch import ANI
    from torchani.neurochem import NeurochemInfo, modules_from_info

    folder = Path(job["model"])  # TorchANI's from_info_file resolves the paths in its own data folder: give them
    lines = (folder / "ani-2x_8x.info").read_text().split()
    info = NeurochemInfo(sae=folder / lines[1], const=folder / lines[0], ensemble_prefix=folder / lines[2],
                         ensemble_size=int(lines[3]))
    aev, networks, self_energies, symbols = modules_from_info(info, model_index=0 if mode == "1" else None)
    model = ANI(symbols, aev, networks, self_energies, periodic_table_index=True)
    if mode == "8-bmm":
        # BmmEnsemble marks NVTX ranges unless scripted, which a CPU build of torch refuses: make them no-ops
        torch.cuda.nvtx.range_push = torch.cuda.nvtx.range_pop = lambda *args: None
        model = model.to_infer_model(use_mnp=False)
    model = model.float().eval()
    systems = [(w["species"], w["coordinates"].float()) for w in job["workloads"]]

    def call(species, coordinates):
        coordinates = coordinates.detach().requires_grad_(True)
        energies = model((species, coordinates)).energies
        forces = -torch.autograd.grad(energies.sum(), coordinates)[0]
        return energies, forces

    # BmmEnsemble "only supports single-conformer inputs": that mode answers null for batches of molecules
    supported = [mode != "8-bmm" or species.shape[0] == 1 for species, _ in systems]
    for (species, coordinates), ok in zip(systems, supported):
        if ok:
            call(species, coordinates)
    print("ready", flush=True)
    for line in sys.stdin:
        species, coordinates = systems[int(line)]
        if not supported[int(line)]:
            print(json.dumps({"seconds": None, "energies": None}), flush=True)
            continue
        start = time.perf_counter()
        energies, _ = call(species, coordinates)
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "energies": (energies.double() * HARTREE_TO_EV).tolist()}), flush=True)


class Peer:
    def __init__(self, mode: str, inputs: Path, threads: int):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.mode = mode
        self.process = subprocess.Popen(
            [str(PEER_PYTHON), __file__, "--peer-worker", str(inputs), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,  # its errors go to our stderr
        )
        for line in self.process.stdout:
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"TorchANI worker {mode} exited before it was ready")
        self.energies = {}

    def time(self, k: int) -> float:
        self.process.stdin.write(f"{k}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        while not line.startswith("{"):
            line = self.process.stdout.readline()
        answer = json.loads(line)
        self.energies[k] = answer["energies"]
        return answer["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


# ------------------------------------------------------------------ main


def torchani_inputs(batch, elements):
    """Species [B, n] (atomic numbers, -1 padding) and coordinates [B, n, 3] of a PyG batch of equal-size systems."""
    sizes = torch.bincount(batch.batch)
    if not bool((sizes == sizes[0]).all()):
        raise ValueError("the workloads are batches of equal-size systems")
    B, n = sizes.numel(), int(sizes[0])
    return batch.z.reshape(B, n), batch.pos.reshape(B, n, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="folder holding ani-2x_8x.info")
    parser.add_argument("--aspirin", default=None, help="rMD17 aspirin npz (default: harness.RMD17)")
    parser.add_argument("--out", default=str(HERE / "results" / "ani2x_inference.md"))
    parser.add_argument("--peer-worker", nargs=2, metavar=("INPUTS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker(*args.peer_worker)

    sys.path.insert(0, str(HERE))
    import harness

    import equinnp

    if args.aspirin:
        harness.RMD17 = Path(args.aspirin)
    torch.set_num_threads(args.threads)
    loads = harness.workloads()
    ours = {
        "1": equinnp.load_pretrained("ani2x", args.model, members=[0], download=False),
        "8": equinnp.load_pretrained("ani2x", args.model, download=False),
    }
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        workloads = []
        for *_, batch in loads:
            species, coordinates = torchani_inputs(batch, ours["8"].elements)
            workloads.append({"species": species, "coordinates": coordinates})
        torch.save({"threads": args.threads, "model": args.model, "workloads": workloads}, inputs)
        peers = {mode: Peer(mode, inputs, args.threads) for mode in ("1", "8", "8-bmm")}
        rows = []
        for k, (label, unit, count, batch) in enumerate(loads):
            contenders = {f"equinnp {m}": (lambda pot=pot: pot(batch)) for m, pot in ours.items()}
            for fn in contenders.values():
                fn()  # warm-up
            times = {name: [] for name in list(contenders) + [f"TorchANI {m}" for m in peers]}
            energies = {}
            for _ in range(args.repeats):
                for name, fn in contenders.items():
                    start = time.perf_counter()
                    out = fn()
                    times[name].append(time.perf_counter() - start)
                    energies[name] = out.energy.tolist()
                for mode, peer in peers.items():
                    times[f"TorchANI {mode}"].append(peer.time(k))
            for mode, peer in peers.items():
                energies[f"TorchANI {mode}"] = peer.energies[k]
            med = {name: statistics.median(t) if None not in t else None for name, t in times.items()}
            gap = {m: max(abs(a - b) for a, b in zip(energies[f"equinnp {m}"], energies[f"TorchANI {m}"])) for m in ("1", "8")}
            rows.append((label, unit, count, med, gap))
            print(f"{label}: " + ", ".join(f"{n} {count / s:,.1f} {unit}" for n, s in med.items() if s)
                  + f"; max |ΔE| 1 net {gap['1']:.2e} eV, 8 nets {gap['8']:.2e} eV", flush=True)
        for peer in peers.values():
            peer.close()

    load = os.getloadavg()[0]
    lines = [
        "# ANI-2x inference: equinnp vs TorchANI 2.9.0 (energy + forces, float32, eager)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, torch {torch.__version__}, "
        f"{args.threads} thread(s), load average {load:.1f} at the end (shared machine: compare only the ratios of "
        "one run). The published ANI-2x weights on both sides; each call computes its own neighbor list (equinnp: "
        "radius graph at 5.1 Å; TorchANI: its default all-pairs list). The contenders take turns call by call "
        f"({args.repeats} rounds after a warm-up); medians. TorchANI runs in its own venv in long-lived worker "
        "processes: one network (`model_index=0`), the ensemble as loaded, and the ensemble after "
        "`to_infer_model()` (its batched `BmmEnsemble`, which takes one conformer per call: the water cluster only). "
        "equinnp leaves out the AEV values of elements absent from the batch, which are exactly zero (aspirin, H C O: "
        "240 of 1008 remain; water, H O: 128), and the matching first-layer weights; TorchANI multiplies them. "
        "The energy differences are float32 rounding: TorchANI sums the atomic energies in float32 (on the 1,029-atom "
        "cluster, |E| is about 7e5 eV, where a float32 step is 0.06 eV), equinnp in float64.",
        "Command: `" + " ".join(["python", "benchmarks/ani2x_inference.py", *sys.argv[1:]]) + "`",
        "",
        "| workload | networks | equinnp | TorchANI | TorchANI `to_infer_model()` | ratio vs TorchANI | ratio vs `to_infer_model()` | max abs. energy difference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, unit, count, med, gap in rows:
        lines.append(f"| {label} | 1 | {count / med['equinnp 1']:,.1f} {unit} | {count / med['TorchANI 1']:,.1f} {unit} | – | "
                     f"{med['TorchANI 1'] / med['equinnp 1']:.2f} | – | {gap['1']:.1e} eV |")
        bmm = med["TorchANI 8-bmm"]
        lines.append(f"| {label} | 8 | {count / med['equinnp 8']:,.1f} {unit} | {count / med['TorchANI 8']:,.1f} {unit} | "
                     + (f"{count / bmm:,.1f} {unit}" if bmm else "single conformers only") + f" | "
                     f"{med['TorchANI 8'] / med['equinnp 8']:.2f} | " + (f"{bmm / med['equinnp 8']:.2f}" if bmm else "–")
                     + f" | {gap['8']:.1e} eV |")
    lines.append("")
    lines.append("Ratio: equinnp throughput / TorchANI throughput (above 1: equinnp is faster).")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
