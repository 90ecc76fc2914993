"""Export TensorNet reference (golden) outputs computed by TorchMD-Net.

Run with the TorchMD-Net peer environment (``benchmarks/peers/setup_envs.sh torchmdnet``)::

    .peers/torchmdnet/bin/python benchmarks/peers/export_tensornet_golden.py

Builds small TorchMD-Net 3.1.0 TensorNet models (``create_model`` with the
``Scalar`` output head, no prior, no standardisation, float64) for both
``equivariance_invariance_group`` values, with random weights from a fixed seed
(every parameter then perturbed by 0.1 x N(0, 1) so that zero-initialised biases
and LayerNorm affines are exercised), and evaluates energies and forces
(``derivative=True``) on the rMD17 frames of ``tests/data/rmd17_frames.npz``.

TorchMD-Net's pure-PyTorch TensorNet ops are used (``OPT = False``, module
functions rebound to their ``_``-prefixed PyTorch versions): the Warp kernels are
float32-oriented, and the reference must be float64.

Writes ``tests/data/tensornet_golden.pt``: a plain dict (loadable with
``weights_only=True``) of ``{"O(3)": {...}, "SO(3)": {...}}``, each with the
state_dict under TorchMD-Net's names, the inputs (z, pos, batch per molecule),
energies [B] and forces [N, 3], plus the shared config and peer versions.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import torch

import torchmdnet.models.tensornet as tn

REPO = Path(__file__).resolve().parents[2]
FRAMES = REPO / "tests" / "data" / "rmd17_frames.npz"
OUT = REPO / "tests" / "data" / "tensornet_golden.pt"

# Pure-PyTorch ops (see module docstring).
tn.OPT = False
tn.compose_tensor = tn._compose_tensor
tn.decompose_tensor = tn._decompose_tensor
tn.tensor_matmul_o3 = tn._tensor_matmul_o3
tn.tensor_matmul_so3 = tn._tensor_matmul_so3

from torchmdnet.models.model import create_model  # noqa: E402

CONFIG = {
    "model": "tensornet",
    "embedding_dimension": 16,
    "num_layers": 2,
    "num_rbf": 8,
    "rbf_type": "expnorm",
    "trainable_rbf": False,
    "activation": "silu",
    "cutoff_lower": 0.0,
    "cutoff_upper": 5.0,
    "max_z": 10,
    "max_num_neighbors": 64,
    "static_shapes": False,
    "output_model": "Scalar",
    "reduce_op": "sum",
    "prior_model": None,
    "atom_filter": -1,
    "derivative": True,
    "precision": 64,
    "seed": 0,
    "perturbation_std": 0.1,
}


def build(group: str):
    args = dict(CONFIG, equivariance_invariance_group=group)
    torch.manual_seed(CONFIG["seed"])
    model = create_model(args)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(CONFIG["perturbation_std"] * torch.randn_like(parameter))
    assert not model.representation_model.opt, "Warp path still selected"
    return model.eval()


def main():
    frames = np.load(FRAMES)
    out = {
        "config": {k: v for k, v in CONFIG.items() if v is not None},
        "versions": {
            "torchmd-net": importlib.metadata.version("torchmd-net"),
            "torch": str(torch.__version__),
            "warp-lang": importlib.metadata.version("warp-lang"),
        },
        "ops": "pure PyTorch (torchmdnet.models.tensornet.OPT = False)",
        "molecules": ["ethanol", "aspirin"],
    }
    for group in ("O(3)", "SO(3)"):
        model = build(group)
        record = {"state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        for molecule in out["molecules"]:
            z1 = torch.from_numpy(frames[f"{molecule}_z"]).long()
            pos_frames = torch.from_numpy(frames[f"{molecule}_pos"]).double()  # [n, N, 3]
            n, N = pos_frames.shape[:2]
            z = z1.repeat(n)  # [n N]
            pos = pos_frames.reshape(n * N, 3).clone()
            batch = torch.arange(n).repeat_interleave(N)
            energy, neg_dy = model(z, pos, batch)
            record[molecule] = {
                "z": z,
                "pos": pos,
                "batch": batch,
                "energy": energy.detach().reshape(-1),
                "forces": neg_dy.detach(),
            }
            print(f"{group} {molecule}: E = {record[molecule]['energy'].tolist()}")
        out[group] = record
    torch.save(out, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
