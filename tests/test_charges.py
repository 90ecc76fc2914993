"""Total charge and spin as inputs, partial charges that sum to them, the dipole, and their labels."""

import os

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.data import from_arrays
from equinnp.models.base import AtomicOutput, Graph
from equinnp.postprocessing import UniformChargeConservation, WeightedChargeConservation, dipole_moment
from equinnp.train.outputs import paired_values

DATA = os.path.join(os.path.dirname(__file__), "data")
SMALL = dict(cutoff=4.0, elements=[1, 6, 8], hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=8)


def _graph(batch, charge):
    n = batch.shape[0]
    num_graphs = int(batch.max()) + 1
    empty = torch.zeros(2, 0, dtype=torch.long)
    return Graph(species=torch.zeros(n, dtype=torch.long), z=torch.ones(n, dtype=torch.long), pos=torch.zeros(n, 3),
                 edge_index=empty, edge_vec=torch.zeros(0, 3), edge_length=torch.zeros(0), batch=batch, num_graphs=num_graphs,
                 charge=torch.tensor(charge, dtype=torch.float64))


def test_uniform_correction_spreads_the_excess_equally():
    raw = torch.tensor([0.1, 0.2, -0.4, 0.5, 0.5], dtype=torch.float64)
    graph = _graph(torch.tensor([0, 0, 0, 1, 1]), [1.0, -1.0])
    q = UniformChargeConservation()(AtomicOutput(energy=torch.zeros(5), charges=raw), graph).charges
    expected = torch.tensor([0.1 + 1.1 / 3, 0.2 + 1.1 / 3, -0.4 + 1.1 / 3, 0.5 - 1.0, 0.5 - 1.0], dtype=torch.float64)
    assert torch.allclose(q, expected, atol=1e-15)


def test_weighted_correction_is_proportional_to_the_weights_and_exact():
    raw = torch.tensor([0.1, 0.2, -0.4, 0.5, 0.5], dtype=torch.float64)
    weights = torch.tensor([1.0, 3.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    graph = _graph(torch.tensor([0, 0, 0, 1, 1]), [1.0, -1.0])
    transform = WeightedChargeConservation(epsilon=1e-6)
    q = transform(AtomicOutput(energy=torch.zeros(5), charges=raw, charge_weights=weights), graph).charges
    excess = 1.0 - (-0.1)
    assert float(q[0] - raw[0]) == pytest.approx(excess * (1 + 1e-6 / 3) / (4 + 1e-6), rel=1e-12)
    assert float(q[1] - raw[1]) == pytest.approx(excess * (3 + 1e-6 / 3) / (4 + 1e-6), rel=1e-12)
    assert torch.allclose(q[3:], raw[3:] - 1.0, atol=1e-15)  # all weights zero: uniform
    assert float(q[:3].sum()) == pytest.approx(1.0, abs=1e-14) and float(q[3:].sum()) == pytest.approx(-1.0, abs=1e-14)
    with pytest.raises(ValueError, match="charge weights must be non-negative, got minimum -3"):
        transform(AtomicOutput(energy=torch.zeros(5), charges=raw, charge_weights=-weights), graph)
    with pytest.raises(ValueError, match="needs charge_weights from the core network"):
        transform(AtomicOutput(energy=torch.zeros(5), charges=raw), graph)
    with pytest.raises(ValueError, match="needs partial charges from the core network"):
        UniformChargeConservation()(AtomicOutput(energy=torch.zeros(5)), graph)


def test_dipole_of_a_neutral_molecule_is_the_sum_of_charge_times_position():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0.5, 0], [-0.3, 1.0, 2.0]], dtype=torch.float64)
    q = torch.tensor([0.4, -0.6, 0.2], dtype=torch.float64)
    z = torch.tensor([8, 1, 6])
    mu = dipole_moment(q, pos, z, torch.zeros(3, dtype=torch.long), 1)
    assert torch.allclose(mu, (q.unsqueeze(-1) * pos).sum(0, keepdim=True), atol=1e-14)


def test_dipole_of_a_charged_molecule_is_about_the_centre_of_mass_and_nan_when_periodic():
    from ase.data import atomic_masses

    pos = torch.tensor([[0.0, 0, 0], [1.0, 0.5, 0]], dtype=torch.float64)
    q = torch.tensor([1.0, 0.5], dtype=torch.float64)
    z = torch.tensor([8, 1])
    masses = torch.tensor(atomic_masses[[8, 1]])
    centre = (masses.unsqueeze(-1) * pos).sum(0) / masses.sum()
    mu = dipole_moment(q, pos, z, torch.zeros(2, dtype=torch.long), 1)
    assert torch.allclose(mu[0], (q.unsqueeze(-1) * (pos - centre)).sum(0), atol=1e-14)
    assert torch.allclose(dipole_moment(q, pos + 3.0, z, torch.zeros(2, dtype=torch.long), 1), mu, atol=1e-13)
    periodic = dipole_moment(q, pos, z, torch.zeros(2, dtype=torch.long), 1, pbc=torch.tensor([[True, False, False]]))
    assert bool(torch.isnan(periodic).all())


def _two_models(**options):
    """SchNet without and with ``options``, sharing the weights of the common layers."""
    torch.manual_seed(0)
    plain = equinnp.build_potential("schnet", dtype="float64", **SMALL)
    torch.manual_seed(1)
    extended = equinnp.build_potential("schnet", dtype="float64", **SMALL, **options)
    missing, unexpected = extended.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("model.electronic_embedding") or k.startswith("model.charge_head") for k in missing)
    return plain, extended


def _molecule(charge=None, spin=None):
    return from_arrays([6, 8, 1, 1], [[0, 0, 0], [1.2, 0, 0], [-0.6, 0.9, 0], [-0.6, -0.9, 0.1]], charge=charge, spin=spin,
                       dtype=torch.float64)


@pytest.mark.parametrize("name", ["schnet", "painn"])
def test_charge_embedding_changes_the_energy_only_of_charged_or_open_shell_systems(name):
    torch.manual_seed(0)
    options = {k: v for k, v in SMALL.items() if name == "schnet" or k not in ("num_filters", "num_gaussians")}
    plain = equinnp.build_potential(name, dtype="float64", **options)
    with_embedding = equinnp.build_potential(name, dtype="float64", charge_embedding=True, spin_embedding=True, **options)
    with_embedding.load_state_dict(plain.state_dict(), strict=False)
    neutral = float(plain(_molecule()).energy.detach())
    assert float(with_embedding(_molecule(0.0, 1.0)).energy.detach()) == pytest.approx(neutral, rel=1e-14)
    cation = float(with_embedding(_molecule(1.0, 1.0)).energy.detach())
    triplet = float(with_embedding(_molecule(0.0, 3.0)).energy.detach())
    assert abs(cation - neutral) > 1e-4 and abs(triplet - neutral) > 1e-4 and abs(cation - triplet) > 1e-4


def test_requires_charge_and_spin_follow_the_options_of_the_instance():
    _, extended = _two_models(charge_embedding=True)
    assert extended.model.requires_charge and not extended.model.requires_spin
    assert not equinnp.ARCHITECTURES["schnet"].requires_charge  # the class default is unchanged
    with pytest.raises(ValueError, match="needs the total charge of every system: set data.charge"):
        extended(_molecule())
    _, spin_only = _two_models(spin_embedding=True)
    with pytest.raises(ValueError, match="needs the total spin of every system: set data.spin"):
        spin_only(_molecule(charge=0.0))
    spin_only(_molecule(spin=2.0))


def test_charge_head_adds_charges_and_a_dipole_and_they_round_trip_through_a_file(tmp_path):
    pot = equinnp.build_potential("painn", dtype="float64", cutoff=4.0, elements=[1, 6, 8], hidden_channels=16, num_interactions=1,
                                  num_rbf=4, charge_head=True, postprocessing={"transforms": ["scale_shift", "weighted_charges"]})
    assert pot.model.outputs == ("energy", "charges") and equinnp.ARCHITECTURES["painn"].outputs == ("energy",)
    out = pot(_molecule(charge=-1.0))
    assert out.charges.shape == (4,) and out.dipole.shape == (1, 3)
    assert float(out.charges.sum()) == pytest.approx(-1.0, abs=1e-12)
    pot.save(tmp_path / "charged.pt")
    again = equinnp.load_potential(tmp_path / "charged.pt")(_molecule(charge=-1.0))
    assert torch.equal(again.charges, out.charges) and torch.equal(again.dipole, out.dipole)


def test_charges_and_dipole_are_trainable_against_labels():
    pot = equinnp.build_potential("schnet", dtype="float64", charge_head=True, postprocessing={"transforms": ["scale_shift", "uniform_charges"]},
                                  **SMALL)
    data = _molecule(charge=0.0)
    data.charges = torch.tensor([0.3, -0.5, 0.1, 0.1], dtype=torch.float64)
    data.dipole = torch.tensor([[0.2, -0.1, 0.05]], dtype=torch.float64)
    batch = Batch.from_data_list([data, data])
    out = pot(batch)
    loss = 0
    for name in ("charges", "dipole"):
        pairs = paired_values(name, out, batch)
        assert pairs is not None and pairs.prediction.shape == pairs.reference.shape
        loss = loss + (pairs.prediction - pairs.reference).square().mean()
    head = pot.model.charge_head.mlp
    gradients = torch.autograd.grad(loss, [head[0].weight, head[2].weight, pot.model.interactions[0].lin.weight])
    assert float(gradients[0].abs().sum()) > 0 and float(gradients[2].abs().sum()) > 0
    assert float(gradients[1][0].abs().sum()) > 0  # the charge row; the weight row is unused by the uniform correction
    assert float(gradients[1][1].abs().sum()) == 0


def test_ase_database_gives_total_charge_spin_and_dipole_labels():
    from equinnp.data.datasets.ase_dataset import ASEDataset

    ag3 = ASEDataset(os.path.join(DATA, "ag3_charges_4.db"), charge_key="total_charge", spin_key="spin_multiplicity",
                     dipole_key="dipole_moment")
    assert ag3._data.charge.tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert ag3[0].dipole.shape == (1, 3) and Batch.from_data_list([ag3[0], ag3[1]]).dipole.shape == (2, 3)
    import ase.db

    row = ase.db.connect(os.path.join(DATA, "ag3_charges_4.db")).get(1)
    assert np.allclose(ag3[0].dipole.numpy().reshape(3), row.data["dipole_moment"].reshape(3), atol=1e-7)


def test_extxyz_info_keys_give_charge_spin_and_charges(tmp_path):
    import ase
    import ase.io

    from equinnp.data.datasets.ase_dataset import ASEDataset

    atoms = ase.Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]])
    atoms.info.update(energy=-1.0, charge=-1, spin=1, dipole=[0.1, 0.0, 0.0])
    atoms.arrays["charges"] = np.array([-1.2, 0.2])
    ase.io.write(tmp_path / "hydroxide.xyz", atoms, format="extxyz")
    record = ASEDataset(tmp_path / "hydroxide.xyz", forces_key=None)[0]
    assert record.charge.tolist() == [-1.0] and record.spin.tolist() == [1.0]
    assert record.charges.tolist() == pytest.approx([-1.2, 0.2]) and record.dipole.tolist() == [[pytest.approx(0.1), 0.0, 0.0]]


def test_from_ase_reads_the_documented_info_keys():
    import ase

    atoms = ase.Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]])
    atoms.info.update(charge=-1, spin=2)
    data = equinnp.data.from_ase(atoms)
    assert data.charge.tolist() == [-1.0] and data.spin.tolist() == [2.0]



def test_spice_reference_charges_and_dipoles_are_read_on_request(tmp_path):
    import shutil

    import h5py
    from ase.units import Bohr

    from equinnp.data.datasets.spice import SPICEDataset

    source = os.path.join(DATA, "spice_1.1.4_slice.hdf5")
    records = SPICEDataset(source, charges_key="mbis_charges", molecules=["103147721"])
    assert records[0].charges.shape == (27,) and float(records[0].charges.sum()) == pytest.approx(1.0, abs=1e-4)
    assert "charges" not in SPICEDataset(source)[0]  # off by default
    with pytest.raises(ValueError, match="'C#C.\\[Na\\+\\]' .* has no 'mbis_charges' dataset"):
        SPICEDataset(source, charges_key="mbis_charges")
    copy = tmp_path / "spice.hdf5"
    shutil.copyfile(source, copy)
    with h5py.File(copy, "a") as handle:
        group = handle["103147721"]
        n = group["conformations"].shape[0]
        dataset = group.create_dataset("scf_dipole", data=np.tile([[1.0, -2.0, 0.5]], (n, 1)))
        dataset.attrs["units"] = "elementary_charge*bohr"
    dipole = SPICEDataset(copy, dipole_key="scf_dipole", molecules=["103147721"])[0].dipole
    assert dipole.shape == (1, 3) and np.allclose(dipole.numpy(), np.array([[1.0, -2.0, 0.5]]) * Bohr, rtol=1e-6)
