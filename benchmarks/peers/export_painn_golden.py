"""Export a PaiNN reference (golden) file computed by SchNetPack.

Run with the SchNetPack peer environment (see ``setup_envs.sh``)::

    .peers/schnetpack/bin/python benchmarks/peers/export_painn_golden.py

Reads the rMD17 frames in ``tests/data/rmd17_frames.npz`` and writes
``tests/data/painn_schnetpack_golden.pt``: a plain ``torch.save`` of a dict of
tensors, strings and Python scalars (loadable with ``weights_only=True``)
holding the model weights under SchNetPack's parameter names, the model
configuration, the inputs (atomic numbers, positions, neighbor lists) and the
reference outputs (energies, forces, per-atom energies, final and intermediate
scalar/vector features). ``benchmarks/peers/painn_parameter_map.md`` documents
how the weights are laid out and what equations they enter.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

import numpy as np
import torch
import torch.utils.data.dataloader as _dataloader

# schnetpack 2.1.1 imports a name that recent torch no longer defines.
if not hasattr(_dataloader, "T_co"):
    _dataloader.T_co = typing.TypeVar("T_co", covariant=True)

import schnetpack  # noqa: E402
import schnetpack.properties as props  # noqa: E402
from schnetpack.atomistic import Atomwise, Forces, PairwiseDistances  # noqa: E402
from schnetpack.model import NeuralNetworkPotential  # noqa: E402
from schnetpack.nn.cutoff import CosineCutoff  # noqa: E402
from schnetpack.nn.radial import BesselRBF  # noqa: E402
from schnetpack.representation import PaiNN  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FRAMES = REPO / "tests" / "data" / "rmd17_frames.npz"
OUT = REPO / "tests" / "data" / "painn_schnetpack_golden.pt"

CONFIG = {
    "n_atom_basis": 16,
    "n_interactions": 3,
    "n_rbf": 20,
    "cutoff": 5.0,
    "radial_basis": "BesselRBF",
    "cutoff_fn": "CosineCutoff",
    "activation": "silu",
    "shared_interactions": False,
    "shared_filters": False,
    "epsilon": 1e-8,
    "n_embedding": 100,
    "atomwise_n_layers": 2,
    "atomwise_layer_sizes": [16, 8, 1],
    "aggregation_mode": "sum",
    "dtype": "float64",
    "seed": 0,
    "bias_perturbation_std": 0.1,
    "neighbor_list": "all ordered pairs i != j with |r_j - r_i| < cutoff, sorted by (i, j)",
}


def build_model() -> NeuralNetworkPotential:
    c = CONFIG
    representation = PaiNN(
        n_atom_basis=c["n_atom_basis"],
        n_interactions=c["n_interactions"],
        radial_basis=BesselRBF(n_rbf=c["n_rbf"], cutoff=c["cutoff"]),
        cutoff_fn=CosineCutoff(c["cutoff"]),
        shared_interactions=c["shared_interactions"],
        shared_filters=c["shared_filters"],
    )
    head = Atomwise(
        n_in=c["n_atom_basis"],
        n_out=1,
        aggregation_mode=c["aggregation_mode"],
        output_key="energy",
        per_atom_output_key="atomic_energy",
    )
    return NeuralNetworkPotential(
        representation=representation,
        input_modules=[PairwiseDistances()],
        output_modules=[head, Forces(energy_key="energy", force_key="forces")],
    )


def neighbor_list(pos: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(pos[None, :, :] - pos[:, None, :], axis=-1)
    mask = (d < cutoff) & ~np.eye(len(pos), dtype=bool)
    idx_i, idx_j = np.nonzero(mask)  # row-major: sorted by i, then j
    return idx_i.astype(np.int64), idx_j.astype(np.int64)


PARAM_ROLES = {
    "representation.embedding.weight": "nuclear embedding table [100, F], row Z = initial scalar feature of element Z",
    "representation.filter_net.weight": "filter network weight [n_interactions*3F, n_rbf]; output split into n_interactions blocks of 3F, each into chunks of F: [scalar msg, direction gate, mu_j gate]",
    "representation.filter_net.bias": "filter network bias [n_interactions*3F]",
    "representation.radial_basis.freqs": "buffer: Bessel frequencies n*pi/cutoff, n=1..n_rbf",
    "representation.cutoff_fn.cutoff": "buffer: cutoff radius [1]",
}


def role(name: str) -> str:
    if name in PARAM_ROLES:
        return PARAM_ROLES[name]
    parts = name.split(".")
    if name.startswith("representation.interactions."):
        k, layer, kind = parts[2], parts[4], parts[5]
        what = "hidden layer (F->F, silu)" if layer == "0" else "output layer (F->3F, linear; chunks [scalar msg, direction gate, mu_j gate])"
        return f"interaction {k} context net {what} {kind}"
    if name.startswith("representation.mixing.") and "intraatomic_context_net" in name:
        k, layer, kind = parts[2], parts[4], parts[5]
        what = "hidden layer (2F->F, silu; input [q, |V|])" if layer == "0" else "output layer (F->3F, linear; chunks [a_ss, a_vv, a_sv])"
        return f"mixing {k} context net {what} {kind}"
    if name.startswith("representation.mixing.") and "mu_channel_mix" in name:
        return f"mixing {parts[2]} vector channel mix (F->2F, no bias; chunks V, W)"
    if name.startswith("output_modules.0.outnet."):
        layer, kind = parts[3], parts[4]
        what = "hidden layer (F->F/2, silu)" if layer == "0" else "output layer (F/2->1, linear)"
        return f"Atomwise MLP {what} {kind}"
    return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=Path, default=FRAMES)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    # float64 default so that buffers computed at construction (Bessel
    # frequencies) and the zero vector features are float64 from the start.
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(CONFIG["seed"])
    model = build_model().double()
    model.eval()  # Forces: create_graph=False; no dropout/batchnorm anywhere
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.add_(CONFIG["bias_perturbation_std"] * torch.randn_like(p))

    # record the features after every interaction / mixing block
    captured: dict[str, torch.Tensor] = {}

    def hook(tag):
        def fn(_module, _inp, out):
            q, mu = out
            captured[f"{tag}.q"] = q.detach().squeeze(1).clone()
            captured[f"{tag}.mu"] = mu.detach().clone()

        return fn

    rep = model.representation
    for k in range(CONFIG["n_interactions"]):
        rep.interactions[k].register_forward_hook(hook(f"interaction{k}"))
        rep.mixing[k].register_forward_hook(hook(f"mixing{k}"))

    data = np.load(args.frames)
    frames = []
    for mol in ("ethanol", "aspirin"):
        z = data[f"{mol}_z"]
        for t in range(len(data[f"{mol}_pos"])):
            frames.append((mol, int(data[f"{mol}_frame_indices"][t]), z, data[f"{mol}_pos"][t]))

    out = {k: [] for k in ("molecule", "frame_index", "z", "pos", "idx_i", "idx_j", "forces",
                           "atomic_energy", "scalar_representation", "vector_representation",
                           "intermediates")}
    energies = []
    for mol, fidx, z, pos in frames:
        idx_i, idx_j = neighbor_list(pos, CONFIG["cutoff"])
        n = len(z)
        inputs = {
            props.Z: torch.as_tensor(z, dtype=torch.long),
            props.R: torch.as_tensor(pos, dtype=torch.float64).clone(),
            props.idx_i: torch.as_tensor(idx_i),
            props.idx_j: torch.as_tensor(idx_j),
            props.offsets: torch.zeros(len(idx_i), 3, dtype=torch.float64),
            props.idx_m: torch.zeros(n, dtype=torch.long),
            props.n_atoms: torch.tensor([n]),
        }
        captured.clear()
        res = model(inputs)
        energy = res["energy"].detach()
        forces = res["forces"].detach()

        # independent check of the force convention: F = -dE/dR by autograd
        pos_t = torch.as_tensor(pos, dtype=torch.float64).clone().requires_grad_(True)
        inputs2 = {k: v for k, v in inputs.items()}
        inputs2[props.R] = pos_t
        model.representation.zero_grad()
        e2 = model.output_modules[0](model.representation(model.input_modules[0](inputs2)))["energy"]
        (g,) = torch.autograd.grad(e2.sum(), pos_t)
        assert torch.allclose(-g, forces, rtol=0, atol=1e-12), "force check failed"
        assert torch.allclose(e2.detach(), energy, rtol=0, atol=1e-12)

        energies.append(float(energy.item()))
        out["molecule"].append(mol)
        out["frame_index"].append(fidx)
        out["z"].append(torch.as_tensor(z, dtype=torch.long))
        out["pos"].append(torch.as_tensor(pos, dtype=torch.float64))
        out["idx_i"].append(torch.as_tensor(idx_i))
        out["idx_j"].append(torch.as_tensor(idx_j))
        out["forces"].append(forces.clone())
        out["atomic_energy"].append(res["atomic_energy"].detach().squeeze(-1).clone())
        out["scalar_representation"].append(inputs2["scalar_representation"].detach().clone())
        out["vector_representation"].append(inputs2["vector_representation"].detach().clone())
        out["intermediates"].append(dict(captured))

    state_dict = {k: v.detach().clone().to(torch.float64) for k, v in model.state_dict().items()}
    golden = {
        "format_version": 1,
        "description": (
            "SchNetPack PaiNN + Atomwise(sum) energy model, float64, seed-0 random weights with "
            "perturbed biases, evaluated on rMD17 frames from tests/data/rmd17_frames.npz "
            "(units: Angstrom in, model units out). Parameter layout and equations: "
            "benchmarks/peers/painn_parameter_map.md."
        ),
        "state_dict": state_dict,
        "param_shapes": {k: list(v.shape) for k, v in state_dict.items()},
        "param_roles": {k: role(k) for k in state_dict},
        "config": dict(CONFIG),
        "energy": torch.tensor(energies, dtype=torch.float64),
        "peer_versions": {
            "schnetpack": _pkg_version("schnetpack"),
            "torch": str(torch.__version__),  # plain str: TorchVersion is not weights_only-safe
            "numpy": str(np.__version__),
        },
        **out,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(golden, args.out)
    torch.load(args.out, weights_only=True)  # must stay loadable without schnetpack

    # summary
    print(f"wrote {args.out}")
    print("peer versions:", golden["peer_versions"])
    print("parameters:")
    for k, s in golden["param_shapes"].items():
        print(f"  {k:60s} {str(s):14s} {golden['param_roles'][k]}")
    n_par = sum(p.numel() for p in model.parameters())
    print(f"trainable parameters: {n_par}")
    for mol, fidx, e, f, ii in zip(out["molecule"], out["frame_index"], energies, out["forces"], out["idx_i"]):
        print(f"  {mol:8s} frame {fidx:4d}: pairs {len(ii):4d}  E = {e:+.12f}  |F|max = {f.abs().max().item():.6f}")


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
