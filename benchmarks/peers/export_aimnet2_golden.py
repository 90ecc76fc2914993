"""Golden numbers from the AIMNet2 authors' ``aimnet`` package, for ``tests/test_aimnet2.py``.

Runs ``aimnet`` 0.2.6 (isayevlab/aimnetcentral, MIT) in the ``.peers/aimnet``
venv (``benchmarks/peers/setup_envs.sh aimnet``). The packaged
``aimnet/models/aimnet2.yaml`` model (2.2 M parameters: embedding, AEV,
three passes, energy MLP, atomic shifts, LR Coulomb) is built by
``aimnet.config.build_module``, converted to float64, and every trainable
tensor is replaced by random values, so that no weight keeps its
initial value (the zero biases included; the padding row 0 of the per-Z tables
is drawn too, but neither aimnet's mode 0 nor equinnp reads it). The frozen AEV
constants (η, shifts, cutoff; float32 in the package) and the Coulomb cutoff are
kept as the package sets them. torch's default dtype is float64 while
``aimnet`` is imported, since the model casts its coordinates and total charge
to the default dtype seen at import time, and float32 (the default) while the
model is built.

The weights are drawn on a 4-bit grid, ``w = (2k - 15) · 2^e`` with
``k ∈ {0..15}`` and one exponent ``e`` per tensor chosen near the scale of the
package's own initialisation: every weight is an exact float64 (and float32)
number, non-zero, and two of them fit in a byte, so the 2.2 M weights take
1.1 MB instead of the 17.6 MB of float64 arrays. The architecture is the
packaged one, unchanged; only the weight values are coarse.

Systems (mode 0: one molecule per call, all pairs, as ``aimnet``'s dense
path): rMD17 ethanol and aspirin (neutral), SPICE 1.1.4's acetylene·Na⁺
(charge +1), a Na⁺Cl⁻ pair (0), an acetate-ammonium pair (0) and an acetate
anion (-1). For each: energy (eV, including the LR Coulomb term), forces
(``aimnet.modules.Forces``: minus the autograd gradient), final charges, the
charges after every charge-updating pass, the pre-NSE charges of every pass,
the AIM vector, and the LR Coulomb energy alone.

    .peers/aimnet/bin/python benchmarks/peers/export_aimnet2_golden.py --out tests/data/aimnet2_golden.npz
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
RMD17 = REPO / "tests" / "data" / "rmd17_frames.npz"
SPICE = REPO.parent / "shared" / "data" / "modelforge" / "SPICE-1.1.4_n2.hdf5"
BOHR = 0.5291772105638411  # Å, aimnet.constants.Bohr

# Hand-built ion pairs (Å): an acetate anion 3.0 Å (O···N) from an ammonium cation, and Na⁺Cl⁻ at 2.4 Å.
ACETATE = [(6, 0.000, 0.000, 0.000), (6, 1.520, 0.000, 0.000), (8, 2.140, 1.090, 0.000), (8, 2.140, -1.090, 0.000),
           (1, -0.380, 1.020, 0.050), (1, -0.390, -0.490, 0.900), (1, -0.370, -0.540, -0.880)]
AMMONIUM = [(7, 4.300, 2.300, 0.100), (1, 3.330, 1.950, 0.050), (1, 4.800, 1.900, 0.900), (1, 4.780, 1.950, -0.700),
            (1, 4.300, 3.330, 0.150)]
NACL = [(11, 0.0, 0.0, 0.0), (17, 2.4, 0.1, -0.05)]


def systems():
    """``[(name, z [N], pos [N, 3] Å, total charge)]``."""
    import h5py

    frames = np.load(RMD17)
    out = [("ethanol", frames["ethanol_z"], frames["ethanol_pos"][0], 0.0),
           ("aspirin", frames["aspirin_z"], frames["aspirin_pos"][0], 0.0)]
    with h5py.File(SPICE, "r") as f:
        group = f["C#C.[Na+]"]
        out.append(("acetylene_na", group["atomic_numbers"][()].reshape(-1), group["conformations"][0] * BOHR, 1.0))
    for name, atoms, charge in (("nacl", NACL, 0.0), ("acetate_ammonium", ACETATE + AMMONIUM, 0.0),
                                ("acetate", ACETATE, -1.0)):
        array = np.array(atoms, dtype=np.float64)
        out.append((name, array[:, 0].astype(np.int64), array[:, 1:], charge))
    return out


def grid_exponent(name: str, tensor: torch.Tensor) -> int:
    """Exponent e of the 4-bit grid of one tensor, near the scale of the package's initialisation."""
    if name.endswith("bias"):
        return -7  # |w| up to 0.117
    if name == "afv.weight":
        return -5  # orthogonal rows of 16: entries ~0.25
    if name.endswith("agh"):
        return -3  # unit-variance combinations
    if "atomic_shift" in name:
        return -2  # shifts up to 3.75 eV
    fan_in, fan_out = tensor.shape[1], tensor.shape[0]
    std = math.sqrt(2.0 / (fan_in + fan_out))  # xavier_normal_
    return int(round(math.log2(std / 9.0)))  # the odd grid -15..15 has a std of ~9 steps


def randomize(model, generator) -> dict:
    """Replace every trainable tensor by grid values; returns ``{name: (packed uint8, exponent, shape)}``."""
    frozen = {"aev.rc_s", "aev.eta_s", "aev.shifts_s", "aev.rc_v", "aev.eta_v", "aev.shifts_v", "outputs.lrcoulomb.rc"}
    packed = {}
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if name in frozen:
                continue
            k = torch.randint(0, 16, (tensor.numel() + tensor.numel() % 2,), generator=generator, dtype=torch.int64)
            exponent = grid_exponent(name, tensor)
            values = (2 * k[: tensor.numel()] - 15).double() * 2.0**exponent
            tensor.copy_(values.reshape(tensor.shape))
            pairs = k.reshape(-1, 2)
            packed[name] = ((pairs[:, 0] * 16 + pairs[:, 1]).to(torch.uint8).numpy(), exponent, tuple(tensor.shape))
    return packed


def run(model, z, pos, charge):
    """aimnet's own outputs for one molecule (mode 0), with the per-pass charges recorded."""
    from aimnet.modules import Forces

    passes, pre = [], []
    original = model._update_q

    def recording_update(data, x, delta_q=True):
        data = original(data, x, delta_q)
        passes.append(data["charges"].detach().clone().reshape(-1))
        pre.append(data["charges_pre"].detach().clone().reshape(-1))
        return data

    model._update_q = recording_update
    try:
        data = {"coord": torch.tensor(pos, dtype=torch.float64).unsqueeze(0),
                "numbers": torch.tensor(z, dtype=torch.int64).unsqueeze(0),
                "charge": torch.tensor([charge], dtype=torch.float64)}
        out = Forces(model)(data)
        coulomb = model.outputs.lrcoulomb.coul_simple(dict(out))
    finally:
        model._update_q = original
    return {"energy": out["energy"].detach().reshape(()).numpy(), "forces": out["forces"].detach().reshape(-1, 3).numpy(),
            "charges": out["charges"].detach().reshape(-1).numpy(), "aim": out["aim"].detach().reshape(len(z), -1).numpy(),
            "pass_charges": torch.stack(passes).numpy(), "pass_raw_charges": torch.stack(pre).numpy(),
            "coulomb": coulomb.detach().reshape(()).numpy()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "tests" / "data" / "aimnet2_golden.npz"))
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()

    # aimnet casts "coord" and "charge" to torch's default dtype as it was when aimnet.models.base
    # was imported (float32 unless changed): set float64 first, or the coordinates are rounded to float32.
    torch.set_default_dtype(torch.float64)
    import aimnet
    import aimnet.models
    from aimnet.config import build_module

    # ... and back to float32 to build, so that the frozen constants (AEV shifts, the Coulomb rc) are
    # the float32 numbers the package makes and saves; .double() then widens them.
    torch.set_default_dtype(torch.float32)
    config = os.path.join(os.path.dirname(aimnet.models.__file__), "aimnet2.yaml")
    torch.manual_seed(args.seed)
    model = build_module(config).double().eval()
    packed = randomize(model, torch.Generator().manual_seed(args.seed))
    arrays = {"aimnet_version": np.array(aimnet.__version__), "torch_version": np.array(torch.__version__)}
    for name, (codes, exponent, shape) in packed.items():
        arrays[f"w/{name}/codes"] = codes
        arrays[f"w/{name}/exponent"] = np.array(exponent)
        arrays[f"w/{name}/shape"] = np.array(shape, dtype=np.int64)
    for name in ("aev.rc_s", "aev.eta_s", "aev.shifts_s", "outputs.lrcoulomb.rc"):
        arrays[f"const/{name}"] = model.state_dict()[name].detach().numpy()
    names = []
    for name, z, pos, charge in systems():
        names.append(name)
        arrays[f"{name}/z"] = np.asarray(z, dtype=np.int64)
        arrays[f"{name}/pos"] = np.asarray(pos, dtype=np.float64)
        arrays[f"{name}/charge"] = np.array(charge)
        for key, value in run(model, z, pos, charge).items():
            arrays[f"{name}/{key}"] = value
        print(f"{name:18s} N={len(z):3d} Q={charge:+.0f} E={float(arrays[f'{name}/energy']):.10f} eV "
              f"sum q={arrays[f'{name}/charges'].sum():+.3e} coulomb={float(arrays[f'{name}/coulomb']):+.6f}")
    arrays["systems"] = np.array(names)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
