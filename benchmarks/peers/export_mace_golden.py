"""Export MACE reference (golden) files computed by mace-torch.

Run with the mace peer environment (see ``setup_envs.sh``)::

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 .peers/mace/bin/python benchmarks/peers/export_mace_golden.py --layout residual
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 .peers/mace/bin/python benchmarks/peers/export_mace_golden.py --layout default

Builds a small float64 ``ScaleShiftMACE`` with random weights from a fixed
seed, in one of two layouts:

- ``residual`` → ``tests/data/mace_golden.pt``: the architecture of the paper
  with ``RealAgnosticResidualInteractionBlock`` in every layer (what
  ``mace_run_train --model ScaleShiftMACE`` builds by default), scale 1.3 and
  shift -0.2;
- ``default`` → ``tests/data/mace_golden_default.pt``: the layout of
  ``mace_run_train --model MACE`` (its default model): a first layer
  ``RealAgnosticInteractionBlock`` (element-dependent map of the message, no
  residual, no self-connection in its product basis), then
  ``RealAgnosticResidualInteractionBlock``; scale 1.3, shift 0 (that script
  passes ``atomic_inter_shift=0`` for this model).

Each is evaluated on the rMD17 frames in ``tests/data/rmd17_frames.npz`` with
an explicit full neighbor list (the ``default`` file also on one isolated
carbon atom, no edges, whose energy mace-torch gives as exactly its E0). The
output is a plain ``torch.save`` of tensors, strings and Python scalars
(loadable with ``weights_only=True``) holding the configuration, the
state_dict under mace-torch's names (its symmetric-contraction U matrices
included, they are buffers), the inputs and the outputs (energies, forces,
per-layer node features) and the peer's package versions.
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # e3nn 0.4.4 under torch >= 2.6

import numpy as np  # noqa: E402
import torch  # noqa: E402
from e3nn import o3  # noqa: E402
from mace import modules  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FRAMES = REPO / "tests" / "data" / "rmd17_frames.npz"
OUT = {"residual": REPO / "tests" / "data" / "mace_golden.pt", "default": REPO / "tests" / "data" / "mace_golden_default.pt"}

CONFIG = {
    "r_max": 5.0,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 2,
    "hidden_irreps": "8x0e + 8x1o",
    "correlation": 3,
    "num_interactions": 2,
    "radial_MLP": [16, 16, 16],
    "MLP_irreps": "16x0e",
    "gate": "silu",
    "avg_num_neighbors": 7.5,
    "atomic_numbers": [1, 6, 7, 8],
    "atomic_energies": [-13.6, -1030.5, -1485.3, -2042.6],
    "atomic_inter_scale": 1.3,
    "atomic_inter_shift": -0.2,
    "interaction": "RealAgnosticResidualInteractionBlock (all layers)",
    "dtype": "float64",
    "seed": 0,
    "neighbor_list": "all ordered pairs i != j with |r_j - r_i| < r_max; edge_index[0] = sender j, edge_index[1] = receiver i",
}


CONFIGS = {
    "residual": CONFIG,
    "default": {
        **CONFIG,
        "atomic_inter_shift": 0.0,
        "interaction": "RealAgnosticInteractionBlock (first layer), RealAgnosticResidualInteractionBlock (later layers)",
    },
}
FIRST_BLOCK = {"residual": "RealAgnosticResidualInteractionBlock", "default": "RealAgnosticInteractionBlock"}


def build_model(layout: str):
    c = CONFIGS[layout]
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    first = modules.interaction_classes[FIRST_BLOCK[layout]]
    return modules.ScaleShiftMACE(
        r_max=c["r_max"],
        num_bessel=c["num_bessel"],
        num_polynomial_cutoff=c["num_polynomial_cutoff"],
        max_ell=c["max_ell"],
        interaction_cls=block,
        interaction_cls_first=first,
        num_interactions=c["num_interactions"],
        num_elements=len(c["atomic_numbers"]),
        hidden_irreps=o3.Irreps(c["hidden_irreps"]),
        MLP_irreps=o3.Irreps(c["MLP_irreps"]),
        atomic_energies=np.array(c["atomic_energies"]),
        avg_num_neighbors=c["avg_num_neighbors"],
        atomic_numbers=c["atomic_numbers"],
        correlation=c["correlation"],
        gate=torch.nn.functional.silu,
        radial_MLP=c["radial_MLP"],
        atomic_inter_scale=c["atomic_inter_scale"],
        atomic_inter_shift=c["atomic_inter_shift"],
    )


def neighbor_list(pos: np.ndarray, cutoff: float) -> np.ndarray:
    d = np.linalg.norm(pos[None, :, :] - pos[:, None, :], axis=-1)
    receiver, sender = np.nonzero((d < cutoff) & ~np.eye(len(pos), dtype=bool))
    return np.stack([sender, receiver]).astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", choices=sorted(CONFIGS), default="residual", help="first interaction block (see the module docstring)")
    ap.add_argument("--frames", type=Path, default=FRAMES)
    ap.add_argument("--out", type=Path, default=None, help="default: tests/data/mace_golden.pt (residual), mace_golden_default.pt (default)")
    args = ap.parse_args()
    config = CONFIGS[args.layout]
    out_path = args.out or OUT[args.layout]

    torch.set_default_dtype(torch.float64)  # U matrices and buffers are built in the default dtype
    torch.manual_seed(config["seed"])
    model = build_model(args.layout).double().eval()

    captured = []
    for product in model.products:
        product.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().clone()))

    data = np.load(args.frames)
    elements = config["atomic_numbers"]
    structures = [(mol, data[f"{mol}_z"], pos) for mol in ("ethanol", "aspirin") for pos in data[f"{mol}_pos"]]
    if args.layout == "default":
        structures.append(("isolated C", np.array([6]), np.zeros((1, 3))))
    records = {k: [] for k in ("molecule", "z", "pos", "edge_index", "energy", "forces", "node_energy", "features")}
    for mol, z, pos in structures:
        n = len(z)
        edge_index = neighbor_list(pos, config["r_max"])
        one_hot = torch.zeros(n, len(elements))
        one_hot[torch.arange(n), torch.tensor([elements.index(int(a)) for a in z])] = 1.0
        batch = {
            "positions": torch.tensor(pos),
            "node_attrs": one_hot,
            "edge_index": torch.tensor(edge_index),
            "shifts": torch.zeros(edge_index.shape[1], 3),
            "unit_shifts": torch.zeros(edge_index.shape[1], 3),
            "cell": torch.zeros(3, 3),
            "batch": torch.zeros(n, dtype=torch.long),
            "ptr": torch.tensor([0, n]),
        }
        captured.clear()
        out = model(batch, training=False, compute_force=True)
        records["molecule"].append(mol)
        records["z"].append(torch.tensor(z, dtype=torch.long))
        records["pos"].append(torch.tensor(pos))
        records["edge_index"].append(torch.tensor(edge_index))
        records["energy"].append(out["energy"].detach().clone())
        records["forces"].append(out["forces"].detach().clone())
        records["node_energy"].append(out["node_energy"].detach().clone())
        records["features"].append([f for f in captured])

    golden = {
        "config": config,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        **records,
        "versions": {p: version(p) for p in ("mace-torch", "e3nn", "torch", "numpy")},
    }
    torch.save(golden, out_path)
    print(f"wrote {out_path}: {len(records['energy'])} structures, energies {[round(e.item(), 6) for e in records['energy']]}")


if __name__ == "__main__":
    main()
