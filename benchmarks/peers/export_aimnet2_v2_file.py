"""A small AIMNet2 model file in aimnet's own distribution format, and aimnet's numbers on it.

For ``tests/test_aimnet2_loader.py`` (``equinnp.load_pretrained("aimnet2", path=...)``).
Runs in the ``.peers/aimnet`` venv (aimnet 0.2.6). The packaged ``aimnet2.yaml``
with smaller sizes (4 features x 4 shifts, 3 vector combinations, MLPs
[16, 12], [16, 12], [16, 12, 12], AIM vector 8, energy MLP [8]; same classes,
AEV cutoff, LR Coulomb) gets random weights on the 4-bit grid of
``export_aimnet2_golden.py`` (padding rows zero, as in a trained model). Its
weights, the YAML and made-up self-atomic energies go through aimnet's own
exporter (``aimnet.train.export_model.export_model``: strips the LR Coulomb,
embeds the short-range part, bakes the SAE into the atomic shifts, masks the
species without SAE): that ``.pt`` file (format version 2) is what the
published models are distributed as. aimnet's ``AIMNet2Calculator`` then loads
the file and computes energy, forces and charges in float64 for rMD17 ethanol (0)
and SPICE acetylene·Na⁺ (+1). The calculator casts coordinates to float32
(``AIMNet2Calculator.keys_in``), so the positions are stored rounded to float32,
and its forces, the gradient with respect to that float32 copy, carry float32
rounding (~1e-7 relative); the energies and charges are float64 results.

    .peers/aimnet/bin/python benchmarks/peers/export_aimnet2_v2_file.py --out tests/data
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from export_aimnet2_golden import randomize, systems  # noqa: E402

TINY = dict(nfeature=4, ncomb_v=3, hidden=[[16, 12], [16, 12], [16, 12, 12]], aim_size=8)
SAE = {1: -13.6, 6: -1029.5, 7: -1484.2, 8: -2041.3, 11: -4420.0}  # eV, made up; Z 9 and 17 left out (masked)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE.parents[1] / "tests" / "data"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    torch.set_default_dtype(torch.float64)  # aimnet casts inputs to the default dtype seen at import
    import aimnet
    import aimnet.models
    from aimnet.calculators import AIMNet2Calculator
    from aimnet.config import build_module
    from aimnet.train.export_model import export_model  # a click command: .callback is the function

    torch.set_default_dtype(torch.float32)  # build as aimnet does: float32 constants and weights
    with open(os.path.join(os.path.dirname(aimnet.models.__file__), "aimnet2.yaml")) as handle:
        config = yaml.safe_load(handle)
    config["kwargs"].update(TINY)
    config["kwargs"]["aev"]["nshifts_s"] = 4
    config["kwargs"]["outputs"]["energy_mlp"]["kwargs"]["n_in"] = TINY["aim_size"]
    config["kwargs"]["outputs"]["energy_mlp"]["kwargs"]["mlp"]["hidden"] = [8]
    torch.manual_seed(args.seed)
    model = build_module(copy.deepcopy(config))
    randomize(model, torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        model.afv.weight[0].zero_()
        model.outputs.atomic_shift.shifts.weight[0].zero_()

    out_dir = Path(args.out)
    artifact = out_dir / "aimnet2_v2_tiny.pt"
    with tempfile.TemporaryDirectory() as tmp:
        weights, config_file, sae_file = Path(tmp) / "weights.pt", Path(tmp) / "model.yaml", Path(tmp) / "model.sae"
        torch.save(model.state_dict(), weights)
        config_file.write_text(yaml.dump(config, sort_keys=False))  # the outputs run in the listed order
        sae_file.write_text(yaml.dump(SAE))
        export_model.callback(str(weights), str(artifact), str(config_file), str(sae_file), needs_coulomb=None, needs_dispersion=None)

    torch.set_default_dtype(torch.float64)
    calc = AIMNet2Calculator(model=str(artifact), device="cpu")
    calc.model = calc.model.double()
    arrays = {"aimnet_version": np.array(aimnet.__version__)}
    names = []
    for name, z, pos, charge in systems():
        if name not in ("ethanol", "acetylene_na"):
            continue
        names.append(name)
        pos = np.asarray(pos, dtype=np.float32).astype(np.float64)  # the calculator casts coord to float32 (its keys_in)
        out = calc({"coord": torch.tensor(pos), "numbers": torch.tensor(z), "charge": torch.tensor([charge])}, forces=True)
        arrays[f"{name}/z"], arrays[f"{name}/pos"], arrays[f"{name}/charge"] = np.asarray(z), np.asarray(pos), np.array(charge)
        arrays[f"{name}/energy"] = out["energy"].detach().reshape(()).numpy()
        arrays[f"{name}/forces"] = out["forces"].detach().reshape(-1, 3).numpy()
        arrays[f"{name}/charges"] = out["charges"].detach().reshape(-1).numpy()
        print(f"{name}: E = {float(arrays[f'{name}/energy']):.10f} eV, sum q = {arrays[f'{name}/charges'].sum():+.2e}")
    arrays["systems"] = np.array(names)
    np.savez_compressed(out_dir / "aimnet2_v2_tiny_outputs.npz", **arrays)
    print(f"wrote {artifact} ({artifact.stat().st_size / 1e3:.0f} kB) and aimnet2_v2_tiny_outputs.npz")


if __name__ == "__main__":
    main()
