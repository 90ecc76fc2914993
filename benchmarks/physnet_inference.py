"""Energy + forces inference: equinnp PhysNet against the authors' TensorFlow code (MMunibas/PhysNet).

Same hyperparameters on both sides (the paper's: F 128, K 64, cutoff 10 Å,
5 modules, 2/3/1 residual layers), float32, freshly initialised weights
(each side its own; the cost does not depend on the values), the same
structures (``harness.workloads``: 64 rMD17 aspirin frames, one 1,029-atom
water cluster), energy and forces with the uniform charge correction and the
shielded Coulomb term over all pairs of each system, dispersion off.

The TF code (a source checkout given by ``--physnet-src``; not committed) runs
in the ``.peers/physnet_tf`` venv under ``tf.compat.v1`` in graph mode, in a
long-lived worker process (one ``Session.run`` per call). It takes its pair
lists as inputs (its own data pipeline builds them outside the network), so
they are computed once beforehand (all pairs for the electrostatics, pairs
within the cutoff for the network); equinnp computes its neighbour list
inside the timed call. Three contenders alternate call by call: equinnp's
network alone, equinnp with the charges and Coulomb term, and the TF code;
medians of ``repeats`` rounds after a warm-up.

    python benchmarks/physnet_inference.py --physnet-src /path/to/PhysNet [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import PeerWorker, alternating_medians, machine, serve, workloads, write_table  # noqa: E402

REPO = HERE.parent
PEER_PYTHON = REPO / ".peers" / "physnet_tf" / "bin" / "python"
ELEMENTS = [1, 6, 7, 8]
HYPER = dict(cutoff=10.0, hidden_channels=128, num_rbf=64, num_modules=5, num_residual_atomic=2,
             num_residual_interaction=3, num_residual_output=1)
PAPER_PIPELINE = {"transforms": ["scale_shift", "uniform_charges"],
                  "energy_terms": [{"name": "coulomb", "shielding": "physnet", "switch_radius": 5.0}]}


def pair_lists(batch, cutoff: float) -> dict:
    """All ordered pairs of each system (sorted by i) and those within ``cutoff``, as the TF code takes them."""
    pos, owner = batch.pos.double().numpy(), batch.batch.numpy()
    all_i, all_j, sr_i, sr_j = [], [], [], []
    for b in range(batch.num_graphs):
        atoms = np.nonzero(owner == b)[0]
        d = np.linalg.norm(pos[atoms, None] - pos[None, atoms], axis=-1)
        off = ~np.eye(len(atoms), dtype=bool)
        i, j = np.nonzero(off)
        all_i.append(atoms[i]), all_j.append(atoms[j])
        i, j = np.nonzero(off & (d < cutoff))
        sr_i.append(atoms[i]), sr_j.append(atoms[j])
    cat = lambda parts: np.concatenate(parts).astype(np.int32)  # noqa: E731
    return {"idx_i": cat(all_i), "idx_j": cat(all_j), "sr_idx_i": cat(sr_i), "sr_idx_j": cat(sr_j)}


# ------------------------------------------------------------------ TF worker (peer venv)
def peer_worker(inputs: str, src: str, threads: int) -> None:
    """Build the TF PhysNet; answer each stdin line ``k`` with the seconds of one energy + forces run on workload k."""
    sys.path.insert(0, str(HERE / "peers"))
    from export_physnet_golden import import_physnet

    job = np.load(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        tf, NeuralNetwork = import_physnet(Path(src), Path(tmp), float64=False)
        net = NeuralNetwork(F=HYPER["hidden_channels"], K=HYPER["num_rbf"], sr_cut=HYPER["cutoff"],
                            num_blocks=HYPER["num_modules"], num_residual_atomic=HYPER["num_residual_atomic"],
                            num_residual_interaction=HYPER["num_residual_interaction"],
                            num_residual_output=HYPER["num_residual_output"], use_electrostatic=True,
                            use_dispersion=False, dtype=tf.float32, scope="physnet")
        Z, R, Q = tf.placeholder(tf.int32, [None]), tf.placeholder(tf.float32, [None, 3]), tf.placeholder(tf.float32, [None])
        seg = tf.placeholder(tf.int32, [None])
        idx = {name: tf.placeholder(tf.int32, [None]) for name in ("idx_i", "idx_j", "sr_idx_i", "sr_idx_j")}
        energy, forces = net.energy_and_forces(Z, R, idx["idx_i"], idx["idx_j"], Q_tot=Q, batch_seg=seg,
                                               sr_idx_i=idx["sr_idx_i"], sr_idx_j=idx["sr_idx_j"])
        config = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            feeds = []
            for k in range(int(job["count"])):
                feed = {Z: job[f"{k}/z"], R: job[f"{k}/pos"], Q: job[f"{k}/charge"], seg: job[f"{k}/batch"]}
                feed.update({idx[name]: job[f"{k}/{name}"] for name in idx})
                feeds.append(feed)
            serve([lambda feed=feed: sess.run([energy, forces], feed) for feed in feeds])


# ------------------------------------------------------------------ main
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--physnet-src", type=Path, help="checkout of MMunibas/PhysNet (its neural_network/ folder)")
    parser.add_argument("--out", default=str(HERE / "results" / "physnet_inference.md"))
    parser.add_argument("--peer-worker", nargs=3, metavar=("INPUTS", "SRC", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker(args.peer_worker[0], args.peer_worker[1], int(args.peer_worker[2]))
    if args.physnet_src is None:
        parser.error("--physnet-src is required (a checkout of MMunibas/PhysNet)")

    import equinnp

    torch.set_num_threads(args.threads)
    loads = workloads()
    torch.manual_seed(0)
    network = equinnp.build_potential("physnet", elements=ELEMENTS, **HYPER).eval()
    paper = equinnp.build_potential("physnet", elements=ELEMENTS, postprocessing=PAPER_PIPELINE, **HYPER).eval()
    paper.load_state_dict(network.state_dict(), strict=False)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        job = {"count": np.array(len(loads))}
        for k, (*_, batch) in enumerate(loads):
            batch.charge = torch.zeros(batch.num_graphs, dtype=torch.float64)
            job.update({f"{k}/z": batch.z.numpy().astype(np.int32), f"{k}/pos": batch.pos.float().numpy(),
                        f"{k}/charge": np.zeros(batch.num_graphs, np.float32), f"{k}/batch": batch.batch.numpy().astype(np.int32)})
            job.update({f"{k}/{name}": value for name, value in pair_lists(batch, HYPER["cutoff"]).items()})
        np.savez(inputs, **job)
        peer = PeerWorker(PEER_PYTHON, [__file__, "--peer-worker", inputs, args.physnet_src, args.threads], args.threads,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
        rows = []
        for k, (label, unit, count, batch) in enumerate(loads):
            contenders = {"network": lambda: network(batch), "paper": lambda: paper(batch), "tf": lambda: peer.time(k)}
            med = alternating_medians(contenders, args.repeats, warmup=1, self_timed={"tf"})
            rows.append([label, f"{count / med['network']:,.1f} {unit}", f"{count / med['paper']:,.1f} {unit}",
                         f"{count / med['tf']:,.1f} {unit}", f"{med['tf'] / med['paper']:.2f}"])
            print(f"{label}: " + ", ".join(f"{n} {count / t:,.1f} {unit}" for n, t in med.items()), flush=True)
        peer.close()

    notes = [
        f"Machine: {machine(args.threads)}. Freshly initialised weights (each side its own); F 128, K 64, cutoff "
        "10 Å, 5 modules, 2/3/1 residual layers, float32; uniform charge correction and shielded Coulomb over all "
        "pairs, no dispersion. equinnp eager, computing its neighbour list inside each call; the TF code "
        "(MMunibas/PhysNet e243e2c, TensorFlow-CPU 2.21.0 `tf.compat.v1` graph mode, one `Session.run` per call, "
        "in its own venv) with pair lists computed beforehand. The contenders take turns call by call "
        f"({args.repeats} rounds after a warm-up); medians.",
        f"Command: `OMP_NUM_THREADS={args.threads} python benchmarks/physnet_inference.py --physnet-src <PhysNet checkout> "
        f"--repeats {args.repeats} --threads {args.threads}`",
    ]
    header = ["workload", "equinnp network only", "equinnp + charges + Coulomb", "PhysNet TF (+ charges + Coulomb)",
              "ratio"]
    footer = ["Ratio: equinnp (with charges and Coulomb) throughput / TF throughput (above 1: equinnp is faster)."]
    print(write_table(Path(args.out), "PhysNet inference: equinnp vs the authors' TensorFlow code (energy + forces, float32)",
                      notes, header, rows, footer))


if __name__ == "__main__":
    main()
