"""End to end: ``equinnp train spice_charged`` (PaiNN with the total-charge embedding) on the bundled
SPICE 1.1.4 subset reads the cations' charge (+1) and gives a model whose energy depends on it."""

import pytest
import torch

import equinnp
from equinnp.data.bundled import BUNDLED_DIR
from equinnp.data.datasets.spice import SPICEDataset
from equinnp.train import train
from equinnp.train.config import load_config

SPICE = BUNDLED_DIR / "spice_1.1.4_n2.hdf5"


def test_bundled_spice_file_charges_and_units():
    records = SPICEDataset(SPICE, dtype=torch.float64)
    assert len(records) == 55
    sodium = [r for r in records if 11 in r.z.tolist()]
    assert len(sodium) == 5 and all(r.charge.item() == 1.0 for r in sodium)  # C#C.[Na+]
    amine = [r for r in records if 7 in r.z.tolist()]
    assert len(amine) == 50 and all(r.charge.item() == 1.0 for r in amine)  # [N+] in the SMILES
    # hartree → eV: the Na+/acetylene energies are about -239.52 hartree
    assert abs(float(sodium[0].energy) / 27.211386 + 239.5214) < 1e-3


def test_spice_charged_config_trains_and_the_energy_depends_on_the_total_charge(tmp_path):
    config = load_config("spice_charged")
    config["output_dir"] = str(tmp_path / "run")
    config["model"].update(hidden_channels=16, num_interactions=2)
    config["training"].update(max_epochs=2, max_time=None, num_threads=1, progress_bar=False, tensorboard=False)
    with pytest.warns(UserWarning, match="not identifiable"):  # two compositions, four elements
        train(config)
    pot = equinnp.load_potential(tmp_path / "run" / "model.pt").double().eval()
    assert pot.model.requires_charge
    record = next(r for r in SPICEDataset(SPICE, dtype=torch.float64) if 11 in r.z.tolist())
    assert record.charge.item() == 1.0
    energies = {}
    for charge in (1.0, 0.0, -1.0):
        probe = record.clone()
        probe.charge = torch.tensor([charge], dtype=torch.float64)
        energies[charge] = float(pot(probe, compute_forces=False).energy.detach())
    assert len({round(e, 9) for e in energies.values()}) == 3, energies
    unlabelled = record.clone()
    del unlabelled.charge
    with pytest.raises(ValueError, match="charge"):
        pot(unlabelled)
