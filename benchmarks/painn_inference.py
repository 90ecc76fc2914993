"""Energy + forces inference: equinnp PaiNN (eager and tabulated) against SchNetPack's PaiNN.

Same hyperparameters (128 features, 3 interactions, 20 Bessel functions, cosine
cutoff 5 Å, an atomwise two-layer SiLU head), the same weights (equinnp's,
mapped onto SchNetPack's names as in ``tests/test_parity_schnetpack_painn.py``),
float32, eager, the same thread count. SchNetPack 2.1.1 runs in its own venv
(``.peers/schnetpack``) in a long-lived worker process (``harness.PeerWorker``),
``NeuralNetworkPotential`` with ``PairwiseDistances`` and ``Forces``, and gets the
pairs of equinnp's neighbor search precomputed (outside its timing); equinnp
searches its neighbors inside every timed call. "equinnp tabulated" evaluates
the filter network by its table (``Potential.tabulate_radial``, docs/tabulation.md).

The equinnp process calls ``equinnp.memory.reuse_freed_memory`` (as
``EquinnpCalculator`` does); SchNetPack runs twice, as installed and with the
same glibc options set in its environment (``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=1073741824``). The contenders are timed in alternation,
one call each in turn; medians of the repeats.

Workloads (``inference_workloads.py``): 64 rMD17 aspirin frames, a 1,029-atom
water cluster, one ethanol (evaluated 20 times per call, MD size).

    python benchmarks/painn_inference.py [--repeats 9] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import typing
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import RESULTS, PeerWorker, alternating_medians, machine, serve, write_table  # noqa: E402

SCHNETPACK_PYTHON = HERE.parent / ".peers" / "schnetpack" / "bin" / "python"
HYPER = dict(hidden_channels=128, num_interactions=3, num_rbf=20, cutoff=5.0)
ELEMENTS = [1, 6, 8]
GLIBC_REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def schnetpack_state_dict(model) -> dict:
    """equinnp PaiNN weights under SchNetPack's parameter names (representation + Atomwise head)."""
    rep, head = "representation.", "output_modules.0.outnet."
    embedding = torch.zeros(100, model.hidden_channels)
    embedding[ELEMENTS] = model.embedding.weight.detach()
    sd = {rep + "embedding.weight": embedding,
          rep + "filter_net.weight": model.filter_net.weight, rep + "filter_net.bias": model.filter_net.bias}
    for t in range(model.num_interactions):
        for k, layer in ((0, 0), (1, 2)):
            for kind in ("weight", "bias"):
                sd[f"{rep}interactions.{t}.interatomic_context_net.{k}.{kind}"] = getattr(model.messages[t].context_net[layer], kind)
                sd[f"{rep}mixing.{t}.intraatomic_context_net.{k}.{kind}"] = getattr(model.updates[t].context_net[layer], kind)
        sd[f"{rep}mixing.{t}.mu_channel_mix.weight"] = model.updates[t].vector_mix.weight
    for k, layer in ((0, 0), (1, 2)):
        for kind in ("weight", "bias"):
            sd[f"{head}{k}.{kind}"] = getattr(model.readout[layer], kind)
    return {k: v.detach().float().clone() for k, v in sd.items()}


# ------------------------------------------------------------------ SchNetPack worker (peer venv)
def worker(path: str, threads: int) -> None:
    import torch.utils.data.dataloader as dataloader

    if not hasattr(dataloader, "T_co"):  # schnetpack 2.1.1 imports a name newer torch dropped
        dataloader.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack.properties as props
    from schnetpack.atomistic import Atomwise, Forces, PairwiseDistances
    from schnetpack.model import NeuralNetworkPotential
    from schnetpack.nn.cutoff import CosineCutoff
    from schnetpack.nn.radial import BesselRBF
    from schnetpack.representation import PaiNN

    torch.set_num_threads(threads)
    payload = torch.load(path, weights_only=True)
    cutoff = HYPER["cutoff"]
    model = NeuralNetworkPotential(
        representation=PaiNN(n_atom_basis=HYPER["hidden_channels"], n_interactions=HYPER["num_interactions"],
                             radial_basis=BesselRBF(n_rbf=HYPER["num_rbf"], cutoff=cutoff), cutoff_fn=CosineCutoff(cutoff)),
        input_modules=[PairwiseDistances()],
        output_modules=[Atomwise(n_in=HYPER["hidden_channels"], output_key="energy"), Forces(energy_key="energy", force_key="forces")],
    ).float().eval()
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    assert not unexpected and all(k.endswith(("radial_basis.freqs", "cutoff_fn.cutoff")) for k in missing), (missing, unexpected)

    def call(workload):
        inputs = {props.Z: workload["z"], props.idx_i: workload["idx_i"], props.idx_j: workload["idx_j"],
                  props.offsets: torch.zeros(len(workload["idx_i"]), 3), props.idx_m: workload["idx_m"],
                  props.n_atoms: workload["n_atoms"]}

        def run():
            for _ in range(int(workload["calls"])):
                out = model({**inputs, props.R: workload["pos"].clone()})
            return out

        return run

    calls = [call(w) for w in payload["workloads"]]
    energies = [calls[k]()["energy"].detach().tolist() for k in range(len(calls))]
    Path(payload["energies_path"]).write_text(json.dumps(energies))
    serve(calls)


# ------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "painn_inference.md")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return

    import equinnp
    from equinnp.memory import reuse_freed_memory
    from equinnp.neighbors import radius_graph
    from inference_workloads import inference_workloads

    reuse_freed_memory()
    torch.manual_seed(0)
    pot = equinnp.build_potential("painn", elements=ELEMENTS, **HYPER).eval()
    tabulated = copy.deepcopy(pot).tabulate_radial()
    workloads = inference_workloads()
    folder = Path(tempfile.mkdtemp())
    exported = []
    for label, unit, count, batch, calls in workloads:
        edge_index = radius_graph(batch.pos, HYPER["cutoff"], batch=batch.batch).edge_index
        exported.append({"z": batch.z, "pos": batch.pos.float(), "idx_i": edge_index[1], "idx_j": edge_index[0],
                         "idx_m": batch.batch, "n_atoms": torch.bincount(batch.batch), "calls": calls})
    load_start = os.getloadavg()[0]

    def run_equinnp(potential, batch, calls):
        for _ in range(calls):
            out = potential(batch)
        return out

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        peers = {}
        for name, env in (("SchNetPack", {}), ("SchNetPack, glibc options", GLIBC_REUSE)):
            path = folder / f"payload_{threads}_{len(peers)}.pt"
            torch.save({"state_dict": schnetpack_state_dict(pot.model), "workloads": exported,
                        "energies_path": str(folder / f"energies_{threads}_{len(peers)}.json")}, path)
            peers[name] = PeerWorker(SCHNETPACK_PYTHON, [__file__, "--worker", path, threads], threads, env=env)
        reference = json.loads((folder / f"energies_{threads}_0.json").read_text())
        for k, (label, unit, count, batch, calls) in enumerate(workloads):
            ours, table = run_equinnp(pot, batch, 1), run_equinnp(tabulated, batch, 1)
            deviation = (ours.energy.float() - torch.tensor(reference[k])).abs().max().item()
            table_error = ((table.forces - ours.forces).abs().max() / ours.forces.abs().max()).item()
            contenders = {
                "equinnp": lambda: run_equinnp(pot, batch, calls),
                "tabulated": lambda: run_equinnp(tabulated, batch, calls),
                **{name: (lambda peer=peer: peer.time(k)) for name, peer in peers.items()},
            }
            medians = alternating_medians(contenders, args.repeats, self_timed=set(peers))
            rate = {name: count / seconds for name, seconds in medians.items()}
            rows.append((threads, label, unit, rate, deviation, table_error))
            print(f"{threads} thread(s), {label}: " + ", ".join(f"{n} {v:.1f}" for n, v in rate.items()), flush=True)
        for peer in peers.values():
            peer.close()

    spk, spk_glibc = "SchNetPack", "SchNetPack, glibc options"
    table = write_table(
        args.out,
        "PaiNN inference: equinnp (eager, tabulated) vs SchNetPack 2.1.1 (energy + forces, float32)",
        [f"Machine: {machine(args.threads[-1])}; load average {load_start:.1f} at the start (shared machine: compare "
         f"ratios, from alternating timings in one run). Median of {args.repeats} alternating repeats, same weights, "
         "same structures; SchNetPack in its own venv and process (times measured inside it), with equinnp's pairs precomputed.",
         "equinnp runs with `equinnp.memory.reuse_freed_memory()`; \"SchNetPack, glibc options\" is SchNetPack with "
         "the same malloc options set in its environment.",
         f"Command: `python benchmarks/painn_inference.py --repeats {args.repeats} --threads {' '.join(map(str, args.threads))}`"],
        ["threads", "workload", "equinnp eager", "equinnp tabulated", spk, spk_glibc, "eager / SchNetPack",
         "tabulated / SchNetPack", "tabulated / SchNetPack (glibc options)", "energy deviation eager vs SchNetPack (eV)",
         "force error tabulated vs eager (relative)"],
        [(threads, label, f"{rate['equinnp']:,.1f} {unit}", f"{rate['tabulated']:,.1f} {unit}", f"{rate[spk]:,.1f} {unit}",
          f"{rate[spk_glibc]:,.1f} {unit}", f"{rate['equinnp'] / rate[spk]:.2f}", f"{rate['tabulated'] / rate[spk]:.2f}",
          f"{rate['tabulated'] / rate[spk_glibc]:.2f}", f"{deviation:.1e}", f"{table_error:.1e}")
         for threads, label, unit, rate, deviation, table_error in rows],
    )
    print(table)


if __name__ == "__main__":
    main()
