"""Energy + forces + charges inference: equinnp AIMNet2 against the authors' ``aimnet`` 0.2.6.

The packaged ``aimnet2.yaml`` architecture on both sides (16 x 16 features, three
passes, AEV cutoff 5 Å, LR Coulomb with the 4.6 Å short-range envelope) with the
**same random weights**: the aimnet worker builds the model, draws its weights
(``export_aimnet2_golden.randomize``) and hands its state dict to equinnp
(``equinnp.pretrained.aimnet2.potential_from_aimnet_state``, with aimnet's form of
the charge correction so that both compute the same numbers; the script checks
the energies agree). float32, eager, the same thread count and the same
structures: batches of 64 rMD17 aspirin frames (21 atoms, neutral) and one
1,029-atom water cluster (``harness.workloads``). Each side computes its own
neighbour list inside the timed call (aimnet: ``AIMNet2Calculator``, its
packed CPU layout; equinnp: ``Potential`` on a batch without ``edge_index``).

aimnet runs in its own venv (``.peers/aimnet``), in a long-lived worker process;
the contenders are timed one call each, in turn, ``repeats`` times after a
warm-up, so that load changes on a shared machine hit both alike; medians.

    python benchmarks/aimnet2_inference.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import PeerWorker, alternating_medians, machine, serve, workloads, write_table  # noqa: E402

REPO = HERE.parent
PEER_PYTHON = REPO / ".peers" / "aimnet" / "bin" / "python"
ELEMENTS = [1, 6, 7, 8]
SEED = 0


# ------------------------------------------------------------------ aimnet worker (peer venv)


def peer_worker(inputs: str, weights: str) -> None:
    """Build aimnet's AIMNet2 with random weights, save them to ``weights``, then serve timed calls."""
    sys.path.insert(0, str(HERE / "peers"))
    import aimnet.models
    from aimnet.calculators import AIMNet2Calculator
    from aimnet.config import build_module
    from export_aimnet2_golden import randomize

    job = torch.load(inputs, weights_only=True)
    torch.set_num_threads(job["threads"])
    torch.manual_seed(SEED)
    model = build_module(os.path.join(os.path.dirname(aimnet.models.__file__), "aimnet2.yaml"))
    randomize(model, torch.Generator().manual_seed(SEED))
    with torch.no_grad():  # row 0 is the padding atom of aimnet's packed layout: zero, as in a trained model
        model.afv.weight[0].zero_()
        model.outputs.atomic_shift.shifts.weight[0].zero_()
    torch.save(model.state_dict(), weights)
    calc = AIMNet2Calculator(model=model.eval(), device="cpu")
    calls, energies = [], []
    for w in job["workloads"]:
        if w["num_graphs"] > 1:  # equal-size molecules: aimnet's [B, N, 3] input
            b = w["num_graphs"]
            data = {"coord": w["pos"].float().view(b, -1, 3), "numbers": w["z"].view(b, -1), "charge": torch.zeros(b)}
        else:
            data = {"coord": w["pos"].float(), "numbers": w["z"], "charge": torch.zeros(1)}
        calls.append(lambda data=data: calc(data, forces=True))
        energies.append(calc(data, forces=True)["energy"].detach().double().reshape(-1))
    torch.save(energies, weights + ".energies")
    serve(calls)


# ------------------------------------------------------------------ main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "aimnet2_inference.md"))
    parser.add_argument("--peer-worker", nargs=2, metavar=("INPUTS", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker(*args.peer_worker)

    from equinnp.pretrained.aimnet2 import potential_from_aimnet_state

    torch.set_num_threads(args.threads)
    loads = workloads()
    for *_, batch in loads:
        batch.charge = torch.zeros(batch.num_graphs, dtype=torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, weights = Path(tmp) / "inputs.pt", str(Path(tmp) / "weights.pt")
        torch.save({"threads": args.threads, "workloads": [{"z": b.z, "pos": b.pos, "num_graphs": int(b.num_graphs)}
                                                           for *_, b in loads]}, inputs)
        peer = PeerWorker(PEER_PYTHON, [__file__, "--peer-worker", inputs, weights], args.threads)
        pot = potential_from_aimnet_state(torch.load(weights, weights_only=True), ELEMENTS, dtype="float32",
                                          exact_charge_conservation=False)
        peer_energies = torch.load(weights + ".energies", weights_only=True)
        rows, agreement = [], []
        for k, (label, unit, count, batch) in enumerate(loads):
            out = pot(batch)
            agreement.append(float((out.energy.detach() - peer_energies[k]).abs().max() / peer_energies[k].abs().max()))
            contenders = {"equinnp": lambda: pot(batch), "aimnet": lambda: peer.time(k)}
            med = alternating_medians(contenders, args.repeats, warmup=1, self_timed={"aimnet"})
            rows.append([label, f"{count / med['equinnp']:,.1f} {unit}", f"{count / med['aimnet']:,.1f} {unit}",
                         f"{med['aimnet'] / med['equinnp']:.2f}", f"{agreement[-1]:.1e}"])
            print(f"{label}: " + ", ".join(f"{n} {count / t:,.1f} {unit}" for n, t in med.items()), flush=True)
        peer.close()

    notes = [
        f"Machine: {machine(args.threads)}. The packaged aimnet2.yaml architecture with the same random weights "
        "on both sides; energy, forces (autograd) and charges; LR Coulomb on. Each call computes its own neighbour "
        f"list. The contenders take turns call by call ({args.repeats} rounds after a warm-up); medians. aimnet "
        "0.2.6 runs in its own venv in a long-lived worker process (`AIMNet2Calculator`, device cpu).",
        "Command: `python benchmarks/aimnet2_inference.py`",
    ]
    header = ["workload", "equinnp", "aimnet 0.2.6", "ratio", "max relative energy difference"]
    footer = ["Ratio: equinnp throughput / aimnet throughput (above 1: equinnp is faster). The last column compares the "
              "two float32 energies of the workload (same weights)."]
    print(write_table(Path(args.out), "AIMNet2 inference: equinnp vs aimnet 0.2.6 (energy + forces + charges, float32, eager)",
                      notes, header, rows, footer))


if __name__ == "__main__":
    main()
