"""Energy + forces inference: equinnp SAKE against the authors' JAX SAKE (sake-gnn 0.0.2.post1).

Same hyperparameters on both sides (the paper's: 64 features, 6 layers, 4 heads,
50 radial functions, SiLU, positions updated in every layer), float32, random
weights, the same thread count and the same structures: a batch of 64 rMD17
aspirin frames (21 atoms; ``harness.aspirin_batch``) and, for equinnp only, the
1,029-atom water cluster (``harness.water_cluster``).

- The reference, ``DenseSAKEModel``, is dense over all pairs (its paper runs): the
  64 molecules go in as one [64, 21, ...] batch, energy and forces from
  ``jax.jit(jax.value_and_grad(...))``, compiled in the warm-up; ``block_until_ready``
  ends each timed call. Its water-cluster run would need dense [1029, 1029, 256, 3]
  tensors (3 GB each, several of them, plus their gradients): not run.
- equinnp runs twice: on all pairs (cutoff 1e3 Å, the same arithmetic as the
  reference up to the pair weights of 1) and on the 5 Å radius graph of
  ``configs/sake.yaml``. Each call computes its own neighbor list.

The reference runs in its own venv (``.peers/sake``) in a long-lived worker
process; XLA's CPU threads are limited by ``XLA_FLAGS`` to the same count as
torch's. The contenders take turns call by call, ``repeats`` rounds after a
warm-up; medians are reported.

    python benchmarks/sake_inference.py [--repeats 7] [--threads 1]
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

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_PYTHON = REPO / ".peers" / "sake" / "bin" / "python"
ELEMENTS = [1, 6, 7, 8]
HYPER = dict(hidden_channels=64, num_layers=6, num_heads=4, num_rbf=50)
ALL_PAIRS = 1.0e3  # Å


# ------------------------------------------------------------------ reference worker (peer venv)
def peer_worker(inputs: str, threads: int) -> None:
    """Build the JAX ``DenseSAKEModel``; answer each stdin line with the seconds of one energy + forces call."""
    import jax
    import jax.numpy as jnp

    from sake.models import DenseSAKEModel

    job = np.load(inputs)
    z, pos = job["z"], job["pos"].astype(np.float32)  # [B, n], [B, n, 3]
    species = np.searchsorted(np.array(ELEMENTS), z)
    h = jax.nn.one_hot(species, len(ELEMENTS), dtype=jnp.float32)  # [B, n, K]
    x = jnp.asarray(pos)
    model = DenseSAKEModel(hidden_features=HYPER["hidden_channels"], out_features=1, depth=HYPER["num_layers"],
                           n_heads=HYPER["num_heads"])
    params = model.init(jax.random.PRNGKey(0), h, x)

    def energy(x, h):
        out, _, _ = model.apply(params, h, x)
        return out.sum()

    step = jax.jit(jax.value_and_grad(energy))
    for _ in range(2):  # compile, then one more warm-up call
        jax.block_until_ready(step(x, h))
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        e, grad = jax.block_until_ready(step(x, h))
        print(json.dumps({"seconds": time.perf_counter() - start, "energy": float(e)}), flush=True)


class Peer:
    def __init__(self, inputs: Path, threads: int):
        flags = f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} intra_op_parallelism_threads={threads}"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
        self.process = subprocess.Popen(
            [str(PEER_PYTHON), __file__, "--peer-worker", str(inputs), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        for line in self.process.stdout:
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError("JAX SAKE worker exited before it was ready")

    def time(self) -> float:
        self.process.stdin.write("0\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        while not line.startswith("{"):
            line = self.process.stdout.readline()
        return json.loads(line)["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


# ------------------------------------------------------------------ main
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "sake_inference.md"))
    parser.add_argument("--peer-worker", nargs=2, metavar=("INPUTS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker(args.peer_worker[0], int(args.peer_worker[1]))

    sys.path.insert(0, str(HERE))
    import equinnp
    from harness import alternating_medians, aspirin_batch, machine, water_cluster, write_table

    torch.set_num_threads(args.threads)
    aspirin = aspirin_batch(64)
    torch.manual_seed(0)
    pots = {
        "all pairs": equinnp.build_potential("sake", cutoff=ALL_PAIRS, elements=ELEMENTS, **HYPER).eval(),
        "5 Å": equinnp.build_potential("sake", cutoff=5.0, elements=ELEMENTS, **HYPER).eval(),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "aspirin.npz"
        n = aspirin.num_nodes // 64
        np.savez(inputs, z=aspirin.z.reshape(64, n).numpy(), pos=aspirin.pos.reshape(64, n, 3).numpy())
        peer = Peer(inputs, args.threads)
        med = alternating_medians(
            {"jax": peer.time, **{name: (lambda p=p: p(aspirin)) for name, p in pots.items()}}, args.repeats)
        peer.close()
    print({k: f"{64 / v:.1f} molecules/s" for k, v in med.items()}, flush=True)
    rows.append(["64 x aspirin (21 atoms)", f"{64 / med['jax']:,.1f} molecules/s",
                 f"{64 / med['all pairs']:,.1f} molecules/s", f"{64 / med['5 Å']:,.1f} molecules/s",
                 f"{med['jax'] / med['all pairs']:.2f}", f"{med['jax'] / med['5 Å']:.2f}"])
    water = water_cluster()
    seconds = alternating_medians({"5 Å": lambda: pots["5 Å"](water)}, max(3, args.repeats // 2), warmup=1)["5 Å"]
    print(f"water: {1029 / seconds:.1f} atoms/s", flush=True)
    rows.append(["water cluster (1,029 atoms)", "not run (dense O(N²) tensors)", "not run",
                 f"{1029 / seconds:,.1f} atoms/s", "", ""])
    notes = [
        f"Machine: {machine(args.threads)}. Random weights; the paper's hyperparameters (64 features, 6 layers, "
        "4 heads, 50 radial functions); float32; energy + forces. The reference is `sake-gnn` 0.0.2.post1 "
        "(jax 0.4.30, flax 0.8.5) `DenseSAKEModel`, jit-compiled, in its own venv, XLA limited to the same "
        "thread count. equinnp computes its neighbor list in every call, on all pairs (cutoff 1e3 Å: the "
        "reference's arithmetic) and on the 5 Å radius graph of `configs/sake.yaml`. The contenders take turns "
        f"call by call ({args.repeats} rounds after a warm-up); medians. The machine is shared: compare only "
        "figures of one run.",
        f"Command: `python benchmarks/sake_inference.py --repeats {args.repeats} --threads {args.threads}`",
    ]
    header = ["workload", "JAX reference (all pairs)", "equinnp, all pairs", "equinnp, 5 Å", "ratio all pairs",
              "ratio 5 Å"]
    text = write_table(Path(args.out), "SAKE inference: equinnp vs the authors' JAX code (energy + forces, float32)",
                       notes + ["", "Ratio: equinnp throughput / JAX throughput (above 1: equinnp is faster)."],
                       header, rows)
    print(text)


if __name__ == "__main__":
    main()
