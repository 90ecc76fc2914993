"""Dataset loaders on real data slices (tests/data, see its README): units, signs, keys, splits.

Unit checks compare against conversions written out here from CODATA 2018
constants (not ``ase.units``, which the loaders use), so a wrong factor in the
loaders cannot cancel out.
"""

import os
import shutil
import warnings

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from equinnp.data import (
    ANIDataset,
    ASEDataset,
    MD17Dataset,
    QM9Dataset,
    RMD17Dataset,
    SPICEDataset,
    load_dataset,
    random_split,
    split_from_indices,
)
from equinnp.data.datasets.spice import smiles_charge

DATA = os.path.join(os.path.dirname(__file__), "data")
SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

# CODATA 2018, written out: 1 kcal/mol in eV, 1 hartree in eV, 1 bohr in Å.
KCAL_MOL_EV = 4184.0 / (6.02214076e23 * 1.602176634e-19)
HARTREE_EV = 27.211386245988
BOHR_A = 0.529177210903
REL = 1e-6  # ASE 3.29 uses CODATA 2014; the two differ by < 1e-7 relative

ETHANOL_DB = os.path.join(DATA, "test_ethanol.db")
RMD17_TRAIN = os.path.join(DATA, "rmd17_ethanol_train_01_first8.npz")
RMD17_TEST = os.path.join(DATA, "rmd17_ethanol_test_01_first4.npz")
SPICE = os.path.join(DATA, "spice_1.1.4_slice.hdf5")
ANI1X = os.path.join(DATA, "ani1x_n5.hdf5")
ANI2X = os.path.join(DATA, "ani2x_slice.hdf5")
CARBON = os.path.join(DATA, "carbon_reduced_5.xyz")
QM9_XYZ = os.path.join(DATA, "qm9_reduced_5.xyz")
AG3_DB = os.path.join(DATA, "ag3_charges_4.db")
QM9_RAW = os.path.join(DATA, "qm9_raw")


def stacked(dataset, key):
    return torch.stack([getattr(dataset[k], key) for k in range(len(dataset))]).numpy()


# ---------------------------------------------------------------- units and force signs


def energy_work_residuals(energy, pos, forces):
    """E(k+1) - E(k) and the trapezoid work -0.5 (F(k) + F(k+1)) · (x(k+1) - x(k)) per step."""
    d_energy = np.diff(energy)
    work = -0.5 * ((forces[1:] + forces[:-1]) * np.diff(pos, axis=0)).sum(axis=(1, 2))
    return d_energy, work


def test_force_sign_and_units_from_consecutive_md_frames():
    """20 consecutive MD17 ethanol frames: dE must equal the work of the mean force.

    The frames are up to 0.4 Å apart, so the trapezoid rule is only ~5 % accurate
    here (measured: slope 0.95, rms residual 7 % of rms dE). A flipped force sign
    gives slope -1, forces left in kcal/mol/Å next to eV energies slope ~23, so
    a 15 % window separates right from wrong by a wide margin.
    """
    data = ASEDataset(ETHANOL_DB, energy_unit="kcal/mol", dtype=torch.float64)
    assert len(data) == 20
    energy = data._data.energy.numpy()
    pos, forces = stacked(data, "pos"), stacked(data, "forces")
    d_energy, work = energy_work_residuals(energy, pos, forces)
    slope = (d_energy @ work) / (work @ work)
    rms = np.sqrt(np.mean(d_energy**2))
    residual = np.sqrt(np.mean((d_energy - work) ** 2))
    assert 0.85 < slope < 1.15
    assert residual < 0.15 * rms
    flipped = np.sqrt(np.mean((d_energy + work) ** 2))
    wrong_unit = np.sqrt(np.mean((d_energy - work / KCAL_MOL_EV) ** 2))
    assert flipped > 10 * residual and wrong_unit > 10 * residual


def test_ase_db_conversion_matches_hand_conversion():
    import ase.db

    data = ASEDataset(ETHANOL_DB, energy_unit="kcal/mol", dtype=torch.float64)
    row = ase.db.connect(ETHANOL_DB).get(id=5)
    np.testing.assert_allclose(data[4].energy.item(), row.data["energy"][0] * KCAL_MOL_EV, rtol=REL)
    np.testing.assert_allclose(data[4].forces.numpy(), row.data["forces"] * KCAL_MOL_EV, rtol=REL, atol=1e-12)
    np.testing.assert_array_equal(data[4].pos.numpy(), row.positions)


def test_rmd17_conversion_matches_hand_conversion_and_peer_fixture():
    raw = np.load(RMD17_TRAIN)
    data = RMD17Dataset(RMD17_TRAIN, dtype=torch.float64)
    assert len(data) == 8
    for k in (0, 5):
        np.testing.assert_allclose(data[k].energy.item(), raw["energies"][k] * KCAL_MOL_EV, rtol=REL)
        np.testing.assert_allclose(data[k].forces.numpy(), raw["forces"][k] * KCAL_MOL_EV, rtol=REL, atol=1e-12)
        np.testing.assert_array_equal(data[k].pos.numpy(), raw["coords"][k])
        np.testing.assert_array_equal(data[k].z.numpy(), raw["nuclear_charges"])
    # rmd17_frames.npz (converted separately, README in tests/data) holds train_01 frame 0 in eV
    peer = np.load(os.path.join(DATA, "rmd17_frames.npz"))
    assert peer["ethanol_frame_indices"][0] == 0
    np.testing.assert_allclose(data[0].energy.item(), peer["ethanol_energy"][0], rtol=1e-12)
    np.testing.assert_allclose(data[0].forces.numpy(), peer["ethanol_forces"][0], rtol=1e-12)


def test_spice_units_and_forces_are_minus_gradient():
    data = SPICEDataset(SPICE, dtype=torch.float64)
    with h5py.File(SPICE) as f:
        group = f["103147721"]
        raw_pos = group["conformations"][2]
        raw_energy = group["dft_total_energy"][2]
        raw_gradient = group["dft_total_gradient"][2]
        assert group["conformations"].attrs["units"] == "bohr"
    record = data[2]
    np.testing.assert_allclose(record.pos.numpy(), raw_pos * BOHR_A, rtol=REL)
    np.testing.assert_allclose(record.energy.item(), raw_energy * HARTREE_EV, rtol=REL)
    np.testing.assert_allclose(record.forces.numpy(), -raw_gradient * HARTREE_EV / BOHR_A, rtol=REL, atol=1e-9)
    # one hartree/bohr is 51.42 eV/Å; the wrong sign or factor must not pass
    assert not np.allclose(record.forces.numpy(), raw_gradient * HARTREE_EV / BOHR_A, rtol=1e-3)
    assert not np.allclose(record.forces.numpy(), -raw_gradient * HARTREE_EV, rtol=1e-3)


def test_ani2x_forces_are_minus_energy_derivative_along_the_bond():
    """12 CO molecules with neighboring bond lengths: -dE/dr matches the force on atom 1 along the bond."""
    data = ANIDataset(ANI2X, dtype=torch.float64)
    co = [d for d in data if sorted(d.z.tolist()) == [6, 8]]
    assert len(co) == 12
    bond = np.stack([(d.pos[1] - d.pos[0]).numpy() for d in co])
    r = np.linalg.norm(bond, axis=1)
    order = np.argsort(r)
    r = r[order]
    energy = np.array([co[k].energy.item() for k in order])
    along = np.array([co[k].forces[1].numpy() @ bond[k] / np.linalg.norm(bond[k]) for k in order])
    finite_difference = -np.diff(energy) / np.diff(r)  # eV/Å
    mean_force = 0.5 * (along[1:] + along[:-1])
    scale = np.abs(mean_force).max()
    assert scale > 0.1  # eV/Å: the molecules are off equilibrium, so the test has something to measure
    np.testing.assert_allclose(finite_difference, mean_force, atol=0.02 * scale)
    assert not np.allclose(finite_difference, -mean_force, atol=0.02 * scale)
    assert not np.allclose(finite_difference, mean_force / BOHR_A, atol=0.02 * scale)  # hartree/bohr misread


# ---------------------------------------------------------------- keys, errors, NaN, charge


def test_ase_per_format_keys():
    carbon = ASEDataset(CARBON, forces_key="force")
    first = carbon[0]
    assert first.cell.shape == (1, 3, 3) and first.pbc.tolist() == [[True, True, True]]
    assert first.forces.shape == (4, 3)
    import ase.io

    atoms = ase.io.read(CARBON, 0)
    np.testing.assert_allclose(first.forces.numpy(), atoms.arrays["force"], rtol=1e-6)
    np.testing.assert_allclose(first.energy.item(), atoms.get_potential_energy(), rtol=1e-12)

    qm9 = ASEDataset(QM9_XYZ, energy_key="U0", forces_key=None, energy_unit="hartree")
    u0 = ase.io.read(QM9_XYZ, 1).info["U0"]
    np.testing.assert_allclose(qm9[1].energy.item(), u0 * HARTREE_EV, rtol=REL)
    assert "forces" not in qm9[1]

    ag3 = ASEDataset(AG3_DB, charge_key="total_charge", spin_key="spin_multiplicity")
    assert ag3._data.charge.tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert "spin" in ag3[0]
    assert "charge" not in ASEDataset(AG3_DB)[0]  # default 'charge' key absent: left out


def test_ase_missing_key_errors_name_the_key_and_list_what_exists():
    with pytest.raises(ValueError, match=r"forces key 'forces'.*force \(atoms\.arrays\)"):
        ASEDataset(CARBON)
    with pytest.raises(ValueError, match=r"energy key 'U0'.*energy \(row\.data\).*forces \(row\.data\)"):
        ASEDataset(ETHANOL_DB, energy_key="U0")
    with pytest.raises(ValueError, match=r"charge key 'total_charge'"):
        ASEDataset(ETHANOL_DB, charge_key="total_charge")  # a chosen name is required
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'"):
        ASEDataset(ETHANOL_DB, energy_unit="kcal")


def test_ase_label_in_some_frames_only_and_stress_units(tmp_path):
    import ase
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    voigt = np.array([0.1, 0.2, 0.3, 0.01, 0.02, 0.03])
    for k in range(3):
        atoms = ase.Atoms("Si2", positions=[[0, 0, 0], [2.5, 2.5, 2.5]], cell=np.eye(3) * 10.0, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 - k, forces=np.full((2, 3), 0.5), stress=voigt)
        if k != 1:
            atoms.info["charge"] = 1.0
        frames.append(atoms)
    path = str(tmp_path / "si.extxyz")
    ase.io.write(path, frames)
    with pytest.raises(ValueError, match=r"charge key 'charge' not found in frame 1.*other frames have it"):
        ASEDataset(path)
    data = ASEDataset(path, charge_key=None, energy_unit="hartree", length_unit="bohr", dtype="float64")
    stress = data[0].stress.reshape(3, 3).numpy()
    factor = HARTREE_EV / BOHR_A**3
    np.testing.assert_allclose(np.diag(stress), voigt[:3] * factor, rtol=REL)
    np.testing.assert_allclose([stress[1, 2], stress[0, 2], stress[0, 1]], voigt[3:] * factor, rtol=REL)
    np.testing.assert_allclose(data[0].cell.reshape(3, 3).numpy(), np.eye(3) * 10 * BOHR_A, rtol=REL)
    np.testing.assert_allclose(data[0].forces.numpy(), 0.5 * HARTREE_EV / BOHR_A, rtol=REL)


def test_ani_level_of_theory_and_nan_skipping():
    with h5py.File(ANI1X) as f:
        n_nan = sum(int(np.isnan(g["ccsd(t)_cbs.energy"][()]).sum()) for g in f.values())
        n_total = sum(len(g["coordinates"]) for g in f.values())
        first_tz = f["C1H4N4O4"]["wb97x_tz.energy"][0]
    assert (n_nan, n_total) == (2, 8)
    with pytest.warns(UserWarning, match=r"skipped 2 of 8 conformers.*ccsd\(t\)_cbs\.energy"):
        ccsd = ANIDataset(ANI1X, energy_key="ccsd(t)_cbs.energy")
    assert len(ccsd) == 6 and "forces" not in ccsd[0]  # there are no CCSD(T) forces
    assert torch.isfinite(ccsd._data.energy).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN among the DFT labels: nothing skipped, no warning
        dft = ANIDataset(ANI1X)
        tz = ANIDataset(ANI1X, energy_key="wb97x_tz.energy", forces_key="wb97x_tz.forces")
    assert len(dft) == 8 and dft[0].forces.shape == (13, 3)
    np.testing.assert_allclose(tz[0].energy.item(), first_tz * HARTREE_EV, rtol=REL)
    assert abs(tz[0].energy.item() - dft[0].energy.item()) > 1e-3  # different level of theory
    with pytest.raises(ValueError, match=r"forces key 'ccsd\(t\)_cbs\.forces'.*wb97x_dz\.forces"):
        ANIDataset(ANI1X, energy_key="ccsd(t)_cbs.energy", forces_key="ccsd(t)_cbs.forces")
    with pytest.raises(ValueError, match=r"energy key 'b3lyp\.energy'"):
        ANIDataset(ANI1X, energy_key="b3lyp.energy")


def test_ani_nan_in_forces_skipped(tmp_path):
    path = tmp_path / "nan.h5"
    with h5py.File(ANI2X) as src, h5py.File(path, "w") as dst:
        group = dst.create_group("002")
        for key in src["002"]:
            group.create_dataset(key, data=src["002"][key][()])
        forces = group["forces"][()]
        forces[3, 0, 1] = np.nan
        group["forces"][...] = forces
    with pytest.warns(UserWarning, match="skipped 1 of 16"):
        assert len(ANIDataset(path)) == 15


def test_spice_total_charge():
    data = SPICEDataset(SPICE)
    with h5py.File(SPICE) as f:
        mbis_total = f["103147721"]["mbis_charges"][0].sum()
        n_first = len(f["103147721"]["conformations"])
    # molecule 1: a protonated amine ([N+:9] in its SMILES); its MBIS charges add up to +1 too
    assert round(float(mbis_total)) == 1
    assert data._data.charge[:n_first].tolist() == [1.0] * n_first
    sodium = [d for d in data if 11 in d.z.tolist()]
    assert len(sodium) == 3 and all(d.charge.item() == 1.0 for d in sodium)
    assert smiles_charge("[H:3][C:1]#[C:2][H:4].[Na+:5]") == 1
    assert smiles_charge("[O-]C(=O)[C@@H]([NH3+])C") == 0
    assert smiles_charge("[O--].[Fe+3]") == 1
    assert smiles_charge("[Fe++]") == 2


def test_spice_formal_charges_dataset_takes_precedence(tmp_path):
    path = tmp_path / "spice.hdf5"
    with h5py.File(SPICE) as src, h5py.File(path, "w") as dst:
        src.copy(src["C#C.[Na+]"], dst, name="mol")
        del dst["mol"]["smiles"]
        dst["mol"].create_dataset("formal_charges", data=np.array([0, 0, 0, 0, -1]))
    assert SPICEDataset(path)._data.charge.tolist() == [-1.0] * 3
    with pytest.raises(ValueError, match=r"gradient key 'grad'.*dft_total_gradient"):
        SPICEDataset(SPICE, gradient_key="grad")
    assert "forces" not in SPICEDataset(SPICE, gradient_key=None)[0]


def test_rmd17_missing_keys_and_multiple_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, coords=np.zeros((1, 2, 3)), energies=np.zeros(1))
    with pytest.raises(ValueError, match=r"keys present: \['coords', 'energies'\]"):
        RMD17Dataset(bad)
    both = RMD17Dataset([RMD17_TRAIN, RMD17_TEST])
    assert len(both) == 12
    np.testing.assert_allclose(both[8].pos.numpy(), np.load(RMD17_TEST)["coords"][0], rtol=1e-6)


# ---------------------------------------------------------------- splits


def frame_keys(dataset):
    return {tuple(np.round(d.pos.double().numpy().ravel(), 6)) for d in dataset}


def test_official_rmd17_split_files_and_release_index_files(tmp_path):
    train, test = RMD17Dataset(RMD17_TRAIN), RMD17Dataset(RMD17_TEST)
    assert not frame_keys(train) & frame_keys(test)  # official train/test never overlap
    # original release layout: one npz with all frames + splits/index_{train,test}_01.csv
    raw = [np.load(RMD17_TRAIN), np.load(RMD17_TEST)]
    full = {k: np.concatenate([r[k] for r in raw]) for k in ("coords", "energies", "forces", "old_indices")}
    full["nuclear_charges"] = raw[0]["nuclear_charges"]
    order = np.random.default_rng(0).permutation(12)
    np.savez(tmp_path / "rmd17_ethanol.npz", **{k: v[order] if v.ndim and k != "nuclear_charges" else v
                                                   for k, v in full.items()})
    (tmp_path / "splits").mkdir()
    where = np.argsort(order)  # row of original frame k in the shuffled file
    np.savetxt(tmp_path / "splits" / "index_train_01.csv", where[:8], fmt="%d")
    np.savetxt(tmp_path / "splits" / "index_test_01.csv", where[8:], fmt="%d")
    split_train = RMD17Dataset.from_split(tmp_path / "rmd17_ethanol.npz", tmp_path / "splits" / "index_train_01.csv")
    split_test = RMD17Dataset.from_split(tmp_path / "rmd17_ethanol.npz", tmp_path / "splits" / "index_test_01.csv")
    assert frame_keys(split_train) == frame_keys(train) and frame_keys(split_test) == frame_keys(test)
    np.testing.assert_allclose(split_train._data.energy.numpy(), train._data.energy.numpy(), rtol=1e-15)
    with pytest.raises(ValueError, match="indices must lie in"):
        RMD17Dataset(tmp_path / "rmd17_ethanol.npz", indices=[0, 12])


def test_random_split_reproducible_disjoint_and_sized():
    data = ASEDataset(ETHANOL_DB, energy_unit="kcal/mol")
    a = random_split(data, [15, 5], seed=7)
    b = random_split(data, [15, 5], seed=7)
    c = random_split(data, [15, 5], seed=8)
    assert [len(s) for s in a] == [15, 5]
    assert a[0].indices() == b[0].indices() and a[1].indices() == b[1].indices()
    assert a[0].indices() != c[0].indices()
    assert not set(a[0].indices()) & set(a[1].indices())
    assert not frame_keys(a[0]) & frame_keys(a[1])
    fractions = random_split(data, [0.7, 0.2, 0.1], seed=1)
    assert [len(s) for s in fractions] == [14, 4, 2]
    assert len(set().union(*(set(s.indices()) for s in fractions))) == 20
    assert [len(s) for s in random_split(data, [0.5, 0.25], seed=1)] == [10, 5]  # the rest is left out
    global_state = torch.get_rng_state()
    random_split(data, [10, 10], seed=3)
    assert torch.equal(global_state, torch.get_rng_state())
    with pytest.raises(ValueError, match="need 21 structures"):
        random_split(data, [15, 6])
    with pytest.raises(ValueError, match="add up to"):
        random_split(data, [0.9, 0.2])


def test_split_from_indices(tmp_path):
    data = RMD17Dataset(RMD17_TRAIN)
    index_file = tmp_path / "index.csv"
    index_file.write_text("5\n1\n3\n")
    subset = split_from_indices(data, index_file)
    assert subset.indices() == [5, 1, 3]
    torch.testing.assert_close(subset[0].pos, data[5].pos)
    assert split_from_indices(data, np.array([0, 2])).indices() == [0, 2]
    held_out = split_from_indices(data, [k for k in range(8) if k not in (5, 1, 3)])
    assert not set(held_out.indices()) & set(subset.indices())
    with pytest.raises(ValueError, match="duplicates"):
        split_from_indices(data, [1, 1])
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        split_from_indices(data, [8])


# ---------------------------------------------------------------- PyG QM9 and MD17 wrappers


def test_md17_revised_through_pyg_raw_layout(tmp_path):
    """PyG's MD17 expects root/raw/rmd17/npz_data/rmd17_<mol>.npz (the rmd17.tar.bz2 layout)."""
    from torch_geometric.datasets import MD17

    raw_dir = tmp_path / "raw" / "rmd17" / "npz_data"
    raw_dir.mkdir(parents=True)
    shutil.copyfile(RMD17_TRAIN, raw_dir / "rmd17_ethanol.npz")
    data = MD17Dataset(str(tmp_path), "revised ethanol", dtype=torch.float64)
    reference = RMD17Dataset(RMD17_TRAIN, dtype=torch.float64)
    assert len(data) == 8
    raw = np.load(RMD17_TRAIN)
    np.testing.assert_allclose(data[3].energy.item(), raw["energies"][3] * KCAL_MOL_EV, rtol=REL)
    torch.testing.assert_close(data[3].forces, reference[3].forces, rtol=0, atol=0)
    assert data[3].energy.dtype == torch.float64 and data[3].pos.dtype == torch.float64
    assert os.path.exists(tmp_path / "revised ethanol" / "processed_equinnp" / "data.pt")
    plain = MD17(str(tmp_path), "revised ethanol")  # PyG's own class shares the root untouched
    np.testing.assert_allclose(plain[3].energy.item(), raw["energies"][3], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown MD17 trajectory"):
        MD17Dataset(str(tmp_path), "ethanol revised")
    check_loader_and_radius_graph(MD17Dataset(str(tmp_path), "revised ethanol", transform=radius_graph(3.0)))


def read_qm9_raw(path):
    """A QM9 ``dsgdb9nsd_*.xyz``: atomic numbers, positions (Å), the 15 scalar properties."""
    import ase.data

    with open(path) as f:
        lines = f.read().replace("*^", "e").splitlines()
    n = int(lines[0])
    properties = [float(x) for x in lines[1].split()[2:]]  # A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv
    atoms = [line.split() for line in lines[2:2 + n]]
    z = [ase.data.atomic_numbers[a[0]] for a in atoms]
    pos = [[float(x) for x in a[1:4]] for a in atoms]
    return np.array(z), np.array(pos), np.array(properties)


def qm9_files():
    return sorted(os.path.join(QM9_RAW, name) for name in os.listdir(QM9_RAW))


def rdkit_available():
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(rdkit_available(), reason="with rdkit, PyG's QM9 reads gdb9.sdf instead (next test)")
def test_qm9_through_pyg_preprocessed_raw_file(tmp_path):
    """Without rdkit PyG's QM9 reads root/raw/qm9_v3.pt (its pre-processed download).

    The file is rebuilt here from raw QM9 xyz files in PyG's processed format:
    y [1, 19] ordered (mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv,
    U0_atom, U_atom, H_atom, G_atom, A, B, C) and multiplied by PyG's own
    ``conversion`` table, exactly as PyG's rdkit path does for gdb9.sdf.csv.
    """
    from torch_geometric.datasets import QM9
    from torch_geometric.datasets.qm9 import conversion

    assert QM9.raw_file_names.fget(None) == ["qm9_v3.pt"]
    entries, hartree_u0 = [], []
    for k, path in enumerate(qm9_files()):
        z, pos, p = read_qm9_raw(path)
        a, b, c, mu, alpha, homo, lumo, gap, r2, zpve, u0, u, h, g, cv = p
        y = torch.tensor([[mu, alpha, homo, lumo, gap, r2, zpve, u0, u, h, g, cv,
                           float("nan"), float("nan"), float("nan"), float("nan"), a, b, c]], dtype=torch.float)
        y = y * conversion.view(1, -1)
        entries.append(dict(z=torch.tensor(z), pos=torch.tensor(pos, dtype=torch.float), y=y,
                            idx=k, name=f"gdb_{k + 1}"))
        hartree_u0.append(u0)
    (tmp_path / "raw").mkdir()
    torch.save(entries, tmp_path / "raw" / "qm9_v3.pt")
    data = QM9Dataset(str(tmp_path), dtype=torch.float64)
    assert len(data) == 5
    for k, path in enumerate(qm9_files()):
        z, pos, _ = read_qm9_raw(path)
        np.testing.assert_array_equal(data[k].z.numpy(), z)
        np.testing.assert_allclose(data[k].pos.numpy(), pos, atol=1e-6)
        # float32 storage in PyG: ~1e-7 relative
        np.testing.assert_allclose(data[k].energy.item(), hartree_u0[k] * HARTREE_EV, rtol=2e-7)
    assert "forces" not in data[0]
    enthalpy = QM9Dataset(str(tmp_path), target="H")
    assert enthalpy[0].energy.item() != data[0].energy.item()
    with pytest.raises(ValueError, match="unknown QM9 target"):
        QM9Dataset(str(tmp_path), target="u0")
    check_loader_and_radius_graph(QM9Dataset(str(tmp_path), transform=radius_graph(3.0)))


def write_qm9_sdf_layout(raw_dir):
    """gdb9.sdf (no bonds), gdb9.sdf.csv (hartree) and uncharacterized.txt as PyG's rdkit path reads them."""
    import ase.data

    sdf, rows, u0 = [], [], []
    for k, path in enumerate(qm9_files()):
        z, pos, p = read_qm9_raw(path)
        sdf += [f"gdb_{k + 1}", "", "", f"{len(z):3d}  0  0  0  0  0  0  0  0  0999 V2000"]
        sdf += [f"{x:10.4f}{y:10.4f}{w:10.4f} {ase.data.chemical_symbols[e]:<3} 0  0  0  0  0  0  0  0  0  0  0  0"
                for (x, y, w), e in zip(pos, z)]
        sdf += ["M  END", "$$$$"]
        rows.append(",".join([f"gdb_{k + 1}"] + [repr(float(v)) for v in p] + ["0.0"] * 4))
        u0.append(p[10])
    (raw_dir / "gdb9.sdf").write_text("\n".join(sdf) + "\n")
    header = "mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom,u298_atom,h298_atom,g298_atom"
    (raw_dir / "gdb9.sdf.csv").write_text("\n".join([header] + rows) + "\n")
    # 9 header lines, one entry per excluded molecule (1-based id first), a footer line
    header_lines = "".join(f"header {k}\n" for k in range(9))
    (raw_dir / "uncharacterized.txt").write_text(header_lines + "     3   excluded for this test\nfooter\n")
    return u0


def test_qm9_through_pyg_raw_sdf_files(tmp_path):
    pytest.importorskip("rdkit", reason="PyG's QM9 parses gdb9.sdf only with rdkit; without it see the test above")
    (tmp_path / "raw").mkdir()
    u0 = write_qm9_sdf_layout(tmp_path / "raw")
    data = QM9Dataset(str(tmp_path), dtype=torch.float64)
    kept = [0, 1, 3, 4]  # molecule 3 is listed in uncharacterized.txt
    assert len(data) == 4
    np.testing.assert_allclose(data._data.energy.numpy(), np.array(u0)[kept] * HARTREE_EV, rtol=2e-7)
    for k, path in zip(range(4), np.array(qm9_files())[kept]):
        z, pos, _ = read_qm9_raw(path)
        np.testing.assert_array_equal(data[k].z.numpy(), z)
        np.testing.assert_allclose(data[k].pos.numpy(), pos, atol=1e-4)  # sdf keeps 4 decimals
    check_loader_and_radius_graph(QM9Dataset(str(tmp_path), transform=radius_graph(3.0)))


# ---------------------------------------------------------------- loaders, dispatch, transforms


def all_datasets(transform=None, dtype=None):
    return {
        "rmd17": RMD17Dataset(RMD17_TRAIN, transform=transform, dtype=dtype),
        "ase_db": ASEDataset(ETHANOL_DB, energy_unit="kcal/mol", transform=transform, dtype=dtype),
        "extxyz_periodic": ASEDataset(CARBON, forces_key="force", transform=transform, dtype=dtype),
        "spice": SPICEDataset(SPICE, transform=transform, dtype=dtype),
        "ani1x": ANIDataset(ANI1X, transform=transform, dtype=dtype),
        "ani2x": ANIDataset(ANI2X, transform=transform, dtype=dtype),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dataloader_batches(dtype):
    for name, data in all_datasets(dtype=dtype).items():
        batch = next(iter(DataLoader(data, batch_size=4, shuffle=False)))
        assert batch.num_graphs == 4, name
        assert batch.energy.shape == (4,) and batch.energy.dtype == torch.float64, name
        assert batch.pos.dtype == dtype and batch.forces.shape == batch.pos.shape, name
        assert batch.batch.shape == batch.z.shape, name
        if name == "extxyz_periodic":
            assert batch.cell.shape == (4, 3, 3) and batch.pbc.shape == (4, 3)
        if name == "spice":
            assert batch.charge.shape == (4,)


def radius_graph(cutoff):
    neighbors = pytest.importorskip("equinnp.neighbors")
    return neighbors.RadiusGraph(cutoff)


def check_loader_and_radius_graph(data, cutoff=3.0, name=""):
    """Batches of 4 with edges inside each structure and no longer than the cutoff."""
    batch = next(iter(DataLoader(data, batch_size=4)))
    assert batch.num_graphs == min(4, len(data)) and batch.energy.shape == (batch.num_graphs,), name
    j, i = batch.edge_index
    assert j.numel() > 0, name
    assert (batch.batch[i] == batch.batch[j]).all(), name  # no edge between structures
    vec = batch.pos[j] - batch.pos[i]
    if "cell" in batch:
        vec = vec + torch.einsum("ek,ekl->el", batch.cell_shifts.to(vec.dtype), batch.cell[batch.batch[i]])
    assert (vec.norm(dim=-1) <= cutoff + 1e-5).all(), name


def test_radius_graph_transform():
    for name, data in all_datasets(transform=radius_graph(3.0), dtype=torch.float64).items():
        check_loader_and_radius_graph(data, 3.0, name)


def test_load_dataset_dispatch(tmp_path):
    assert isinstance(load_dataset(RMD17_TRAIN), RMD17Dataset)
    assert isinstance(load_dataset(ETHANOL_DB, energy_unit="kcal/mol"), ASEDataset)
    assert isinstance(load_dataset(CARBON, forces_key="force"), ASEDataset)
    assert isinstance(load_dataset(SPICE), SPICEDataset)
    assert isinstance(load_dataset(ANI1X), ANIDataset)
    assert isinstance(load_dataset(ANI2X), ANIDataset)
    assert load_dataset(RMD17_TRAIN, dtype="float64")[0].pos.dtype == torch.float64
    other = tmp_path / "frames.cif"
    other.write_text("")
    with pytest.raises(ValueError, match="suffix '.cif'"):
        load_dataset(other)
    odd = tmp_path / "odd.h5"
    with h5py.File(odd, "w") as f:
        f.create_group("mol").create_dataset("xyz", data=np.zeros(3))
    with pytest.raises(ValueError, match="unknown HDF5 layout"):
        load_dataset(odd)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "missing.xyz")
    with pytest.raises(ValueError, match=r"unknown option for SPICEDataset.*Did you mean 'gradient_key'"):
        load_dataset(SPICE, gradient_keys=None)


@pytest.mark.skipif(not os.path.isdir(SHARED), reason=f"shared data folder {SHARED} not present")
def test_full_shared_files_load():
    """The full shared files (not only the slices) read with the same code."""
    spice = SPICEDataset(os.path.join(SHARED, "modelforge", "SPICE-1.1.4_n2.hdf5"))
    assert len(spice) == 55
    ani2x = ANIDataset(os.path.join(SHARED, "modelforge", "ani2x_minimal.hdf5"))
    assert len(ani2x) == 5706 and set(ani2x._data.z.unique().tolist()) == {1, 6, 7, 8, 9, 16, 17}
    test = RMD17Dataset(os.path.join(SHARED, "rmd17", "rmd17_ethanol_test_01.npz"))
    train = RMD17Dataset(os.path.join(SHARED, "rmd17", "rmd17_ethanol_train_01.npz"))
    assert len(train) == len(test) == 1000
    assert not frame_keys(train) & frame_keys(test)
