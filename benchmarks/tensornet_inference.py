"""Energy + forces inference: equinnp TensorNet against TorchMD-Net 3.1.0 TensorNet.

Same hyperparameters on both sides (128 channels, 2 interaction layers, 32
exponential-normal radial functions, cutoff 5 Å, O(3), SiLU), float32, eager,
random weights, the same thread count and the same structures: batches of 64
rMD17 aspirin frames (21 atoms) and one 1,029-atom water cluster
(``harness.workloads``). Each side computes its own neighbor list inside the
timed call (TorchMD-Net's model always does; equinnp's ``Potential`` does when
the batch carries no ``edge_index``).

TorchMD-Net runs in its own venv (``.peers/torchmdnet``), in two long-lived
worker processes: one with its Warp kernels (the default when ``warp-lang`` is
installed), one with its pure-PyTorch ops (``torchmdnet.models.tensornet.OPT =
False`` and the module's ops rebound to their PyTorch versions). The three
contenders are timed one call each, in turn, ``repeats`` times after a warm-up,
so that load changes on a shared machine hit all of them alike; medians are
reported.

    python benchmarks/tensornet_inference.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import PeerWorker, alternating_medians, machine, serve, workloads, write_table  # noqa: E402

REPO = HERE.parent
PEER_PYTHON = REPO / ".peers" / "torchmdnet" / "bin" / "python"
ELEMENTS = [1, 6, 7, 8]
HYPER = dict(hidden_channels=128, num_layers=2, num_rbf=32, cutoff=5.0)


# ------------------------------------------------------------------ TorchMD-Net worker (peer venv)


def peer_worker(inputs: str, mode: str) -> None:
    """Build TorchMD-Net's TensorNet; answer each stdin line ``k`` with the seconds of one call on workload k."""
    import torchmdnet.models.tensornet as tn

    if mode == "pure":
        tn.OPT = False
        tn.compose_tensor, tn.decompose_tensor = tn._compose_tensor, tn._decompose_tensor
        tn.tensor_matmul_o3, tn.tensor_matmul_so3 = tn._tensor_matmul_o3, tn._tensor_matmul_so3
    from torchmdnet.models.model import create_model

    job = torch.load(inputs, weights_only=True)
    torch.set_num_threads(job["threads"])
    args = dict(
        model="tensornet", embedding_dimension=HYPER["hidden_channels"], num_layers=HYPER["num_layers"],
        num_rbf=HYPER["num_rbf"], rbf_type="expnorm", trainable_rbf=False, activation="silu", cutoff_lower=0.0,
        cutoff_upper=HYPER["cutoff"], max_z=128, max_num_neighbors=128, static_shapes=False, output_model="Scalar",
        reduce_op="sum", prior_model=None, atom_filter=-1, derivative=True, precision=32,
        equivariance_invariance_group="O(3)",
    )
    torch.manual_seed(0)
    model = create_model(args).eval()
    assert model.representation_model.opt == (mode == "warp"), f"TorchMD-Net ops are not the {mode} ones"
    systems = [(w["z"], w["pos"].float(), w["batch"]) for w in job["workloads"]]
    serve([lambda system=system: model(*system) for system in systems])  # the warm-up compiles Warp's kernels


# ------------------------------------------------------------------ main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "tensornet_inference.md"))
    parser.add_argument("--peer-worker", nargs=2, metavar=("INPUTS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker(*args.peer_worker)

    import equinnp

    torch.set_num_threads(args.threads)
    loads = workloads()
    torch.manual_seed(0)
    pot = equinnp.build_potential("tensornet", elements=ELEMENTS, **HYPER).eval()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.pt"
        torch.save({"threads": args.threads,
                    "workloads": [{"z": b.z, "pos": b.pos, "batch": b.batch} for *_, b in loads]}, inputs)
        peers = {mode: PeerWorker(PEER_PYTHON, [__file__, "--peer-worker", inputs, mode], args.threads)
                 for mode in ("warp", "pure")}
        rows = []
        for k, (label, unit, count, batch) in enumerate(loads):
            contenders = {"equinnp": lambda: pot(batch), **{mode: (lambda p=peer: p.time(k)) for mode, peer in peers.items()}}
            med = alternating_medians(contenders, args.repeats, warmup=1, self_timed=peers)
            rows.append([label, f"{count / med['equinnp']:,.1f} {unit}", f"{count / med['warp']:,.1f} {unit}",
                         f"{count / med['pure']:,.1f} {unit}", f"{med['warp'] / med['equinnp']:.2f}",
                         f"{med['pure'] / med['equinnp']:.2f}"])
            print(f"{label}: " + ", ".join(f"{n} {count / t:,.1f} {unit}" for n, t in med.items()), flush=True)
        for peer in peers.values():
            peer.close()

    notes = [
        f"Machine: {machine(args.threads)}. Random weights; 128 channels, 2 layers, 32 radial functions, "
        "cutoff 5 Å, O(3). Each call computes its own neighbor list. The three contenders take turns call by call "
        f"({args.repeats} rounds after a warm-up); medians. TorchMD-Net runs in its own venv in long-lived worker "
        "processes, with its Warp kernels and with its pure-PyTorch ops (`OPT = False`).",
        "Command: `python benchmarks/tensornet_inference.py`",
    ]
    header = ["workload", "equinnp", "TorchMD-Net (Warp)", "TorchMD-Net (pure PyTorch)", "ratio vs Warp", "ratio vs pure PyTorch"]
    footer = ["Ratio: equinnp throughput / TorchMD-Net throughput (above 1: equinnp is faster)."]
    print(write_table(Path(args.out), "TensorNet inference: equinnp vs TorchMD-Net 3.1.0 (energy + forces, float32, eager)",
                      notes, header, rows, footer))


if __name__ == "__main__":
    main()
