"""``equinnp.load_pretrained("aimnet2", path=...)`` on a model file written by aimnet's own exporter.

``tests/data/aimnet2_v2_tiny.pt`` is a small AIMNet2 (4 features x 4 shifts, the
packaged config's classes) with random weights, exported by ``aimnet export``'s
function into the version-2 format of the published models (LR Coulomb stripped,
short-range part embedded, self energies baked into the shifts, H C N O Na only);
``aimnet2_v2_tiny_outputs.npz`` holds what aimnet's ``AIMNet2Calculator`` computes
from that file in float64 (on float32 coordinates, which the calculator casts to; its
forces carry float32 rounding). Both by ``benchmarks/peers/export_aimnet2_v2_file.py``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import equinnp
from equinnp.data import from_arrays

DATA = Path(__file__).parent / "data"
FILE = DATA / "aimnet2_v2_tiny.pt"


@pytest.fixture(scope="module")
def outputs():
    return np.load(DATA / "aimnet2_v2_tiny_outputs.npz")


def _system(outputs, name):
    data = from_arrays(outputs[f"{name}/z"], outputs[f"{name}/pos"], dtype=torch.float64)
    data.charge = torch.tensor([float(outputs[f"{name}/charge"])], dtype=torch.float64)
    return data


@pytest.mark.parametrize("name", ["ethanol", "acetylene_na"])
def test_the_file_gives_aimnets_numbers(outputs, name):
    pot = equinnp.load_pretrained("aimnet2", path=FILE, dtype="float64", exact_charge_conservation=False)
    assert pot.elements == [1, 6, 7, 8, 11]
    out = pot(_system(outputs, name))
    assert out.energy.item() == pytest.approx(float(outputs[f"{name}/energy"]), rel=1e-12)
    # aimnet's forces are the gradient with respect to its float32 copy of the coordinates: float32-rounded
    forces = outputs[f"{name}/forces"]
    np.testing.assert_allclose(out.forces.detach().numpy(), forces, rtol=0, atol=1e-6 * max(1.0, np.abs(forces).max()))
    np.testing.assert_allclose(out.charges.detach().numpy(), outputs[f"{name}/charges"], rtol=0, atol=1e-12)
    assert abs(out.energy_terms["coulomb"].item()) > 1e-3


def test_exact_charge_conservation_by_default(outputs):
    pot = equinnp.load_pretrained("aimnet2", path=FILE, dtype="float64")
    out = pot(_system(outputs, "ethanol"))
    assert abs(out.charges.sum().item()) < 1e-12
    assert abs(outputs["ethanol/charges"].sum()) > 1e-6  # aimnet's form leaves some of the excess
    assert out.energy.item() == pytest.approx(float(outputs["ethanol/energy"]), rel=1e-6)


def test_a_changed_weight_in_the_file_breaks_the_comparison(outputs, tmp_path):
    data = torch.load(FILE, weights_only=True)
    data["state_dict"]["mlps.1.2.weight"][0, 0] += 0.01
    changed = tmp_path / "changed.pt"
    torch.save(data, changed)
    out = equinnp.load_pretrained("aimnet2", path=changed, dtype="float64", exact_charge_conservation=False)(_system(outputs, "ethanol"))
    assert abs(out.energy.item() - float(outputs["ethanol/energy"])) > 1e-8


def test_masked_elements_and_bad_files_are_refused(outputs, tmp_path):
    pot = equinnp.load_pretrained("aimnet2", path=FILE)
    with pytest.raises(ValueError, match="Cl"):
        pot(from_arrays([11, 17], [[0.0, 0.0, 0.0], [2.4, 0.0, 0.0]]))  # Cl has no self energy: not in the model
    with pytest.raises(ValueError, match="path="):
        equinnp.load_pretrained("aimnet2")
    with pytest.raises(ValueError, match="TorchScript"):
        equinnp.load_pretrained("aimnet2", path=tmp_path / "model.jpt")
    data = torch.load(FILE, weights_only=True)
    data["model_yaml"] = data["model_yaml"].replace("d2features: true", "d2features: false")
    bad = tmp_path / "bad.pt"
    torch.save(data, bad)
    with pytest.raises(ValueError, match="d2features"):
        equinnp.load_pretrained("aimnet2", path=bad)
