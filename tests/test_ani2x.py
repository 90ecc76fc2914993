"""ANI-2x: AEVs, energies, per-member energies and forces of the published ensemble against TorchANI 2.9,
the float32-constants choice, periodic cells, the ensemble spread, and the NeuroChem loader's errors.

The reference numbers are TorchANI 2.9's outputs for 17 structures
(``../shared/data/ani2x/reference_outputs.npz``, hartree and Å; see its SOURCE.txt),
computed by TorchANI from the same published NeuroChem files that equinnp reads
here. The folder is found through ``EQUINNP_ANI2X_PATH`` or the shared data
folder beside the clone; without it the parity tests are skipped (the weights,
55 MB, are not part of the repository).
"""

import functools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import equinnp
from equinnp.data import from_arrays
from equinnp.pretrained.ani2x import HARTREE_TO_EV
from equinnp.pretrained.download import ENV_VAR

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ani2x"
FOLDER = Path(os.environ.get(ENV_VAR) or SHARED)


def needs_files(test):
    """The published files are test data (``../shared/data/ani2x``): their absence is a failure, not a skip."""
    def run(*args, **kwargs):
        assert (FOLDER / "ani-2x_8x.info").is_file(), f"the published ANI-2x files are not in {FOLDER} (set {ENV_VAR})"
        return test(*args, **kwargs)

    return functools.wraps(test)(run)

ELEMENTS = [1, 6, 7, 8, 16, 9, 17]


@pytest.fixture(scope="module")
def reference():
    return np.load(FOLDER / "reference_outputs.npz")


@pytest.fixture(scope="module")
def ani2x64():
    return equinnp.load_pretrained("ani2x", FOLDER, dtype="float64", download=False)


def structures(reference):
    """(name, frame, z [N], positions [N, 3]) of every reference structure."""
    for name in reference["system_names"]:
        coordinates = reference[f"{name}__coordinates"]
        for frame in range(coordinates.shape[0]):
            yield str(name), frame, reference[f"{name}__species"], coordinates[frame]


def molecule(z, pos):
    return from_arrays(z, pos, dtype=torch.float64)


# ------------------------------------------------------------------ parity with TorchANI 2.9
@needs_files
def test_aevs_equal_torchani(ani2x64, reference):
    captured = []
    hook = ani2x64.model.aev.register_forward_hook(lambda module, args, out: captured.append(out.detach()))
    try:
        for name in ("ethanol", "methane"):
            ani2x64(molecule(reference[f"{name}__species"], reference[f"{name}__coordinates"][0]), compute_forces=False)
            expected = torch.from_numpy(reference[f"{name}__aevs"][0])  # [N, 1008]
            assert captured[-1].shape == expected.shape == (len(reference[f"{name}__species"]), 1008)
            torch.testing.assert_close(captured[-1], expected, rtol=0, atol=1e-12)
    finally:
        hook.remove()


@needs_files
def test_energies_members_and_forces_equal_torchani(ani2x64, reference):
    count = 0
    for name, frame, z, pos in structures(reference):
        out = ani2x64(molecule(z, pos))
        energy = out.energy.detach() / HARTREE_TO_EV  # hartree
        members = out.member_energies.detach()[0] / HARTREE_TO_EV  # [8] hartree
        forces = out.forces.detach() / HARTREE_TO_EV  # hartree/Å
        np.testing.assert_allclose(energy.numpy(), reference[f"{name}__energy"][frame], rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(members.numpy(), reference[f"{name}__member_energies"][:, frame], rtol=0, atol=1e-9,
                                   err_msg=name)
        np.testing.assert_allclose(forces.numpy(), reference[f"{name}__forces"][frame], rtol=0, atol=1e-9, err_msg=name)
        count += 1
    assert count == 17


@needs_files
def test_atomic_energies_equal_torchani(ani2x64, reference):
    z, pos = reference["acetamide_chfclsh_complex__species"], reference["acetamide_chfclsh_complex__coordinates"][0]
    atomic = ani2x64(molecule(z, pos), compute_forces=False).atomic_energies.detach() / HARTREE_TO_EV
    np.testing.assert_allclose(atomic.numpy(), reference["acetamide_chfclsh_complex__atomic_energies"][0], rtol=0, atol=1e-9)


@needs_files
def test_float32_network_is_close_to_torchani(reference):
    """A float32 network: energies within 1e-6 hartree of TorchANI's float64 ones (equinnp sums the atoms in
    float64; TorchANI's float32 run sums in float32 and is 2e-4 hartree off its float64 energy on these
    structures), forces within 1e-6 hartree/Å of both TorchANI runs."""
    pot = equinnp.load_pretrained("ani2x", FOLDER, dtype="float32", download=False)
    assert abs(reference["dmso__energy_f32"][0] - reference["dmso__energy"][0]) > 5e-5
    for name, frame, z, pos in structures(reference):
        out = pot(from_arrays(z, pos))
        np.testing.assert_allclose(out.energy.item() / HARTREE_TO_EV, reference[f"{name}__energy"][frame], rtol=0, atol=1e-6)
        for key in ("forces", "forces_f32"):
            np.testing.assert_allclose(out.forces.numpy() / HARTREE_TO_EV, reference[f"{name}__{key}"][frame], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ float32-rounded versus exact constants
@needs_files
def test_exact_self_energies_give_torchani_exact64(ani2x64, reference):
    """TorchANI's float32 AEV constants with the self energies exactly as written in sae_linfit.dat."""
    exact = reference["self_energies_hartree"]  # file order H C N O S F Cl = the model's elements
    pot = equinnp.load_pretrained("ani2x", FOLDER, dtype="float64", download=False)
    pot.reference_energies.set((exact * HARTREE_TO_EV).tolist())
    for name, frame, z, pos in structures(reference):
        out = pot(molecule(z, pos))
        np.testing.assert_allclose(out.energy.item() / HARTREE_TO_EV, reference[f"{name}__energy_exact64"][frame], rtol=0, atol=1e-9)
        np.testing.assert_allclose(out.member_energies.detach()[0].numpy() / HARTREE_TO_EV,
                                   reference[f"{name}__member_energies_exact64"][:, frame], rtol=0, atol=1e-9)


@needs_files
def test_the_constants_choice_is_explicit(ani2x64, reference):
    exact = equinnp.load_pretrained("ani2x", FOLDER, dtype="float64", float32_constants=False, download=False)
    assert ani2x64.model.aev.radial_eta == float(np.float32(19.7)) != 19.7
    assert exact.model.aev.radial_eta == 19.7
    assert exact.model.aev.angle_sections[0].item() == np.pi / 8
    np.testing.assert_array_equal(exact.reference_energies.energies.numpy(), reference["self_energies_hartree"] * HARTREE_TO_EV)
    np.testing.assert_array_equal(ani2x64.reference_energies.energies.numpy(),
                                  reference["self_energies_hartree_torchani_f32"] * HARTREE_TO_EV)
    z, pos = reference["ethanol__species"], reference["ethanol__coordinates"][0]
    difference = abs(exact(molecule(z, pos)).energy.item() - reference["ethanol__energy_exact64"][0] * HARTREE_TO_EV)
    assert 1e-8 < difference < 1e-3  # eV: the exact AEV constants move the energy, by little


# ------------------------------------------------------------------ ensemble spread
@needs_files
def test_energy_std_is_the_spread_of_the_members(ani2x64, reference):
    for name, frame, z, pos in structures(reference):
        out = ani2x64(molecule(z, pos), compute_forces=False)
        expected = np.std(reference[f"{name}__member_energies"][:, frame], ddof=1) * HARTREE_TO_EV
        np.testing.assert_allclose(out.energy_std.item(), expected, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(out.member_energies.mean(-1), out.energy, rtol=0, atol=1e-9)


def test_spread_is_none_for_one_network_and_batched_per_system():
    torch.manual_seed(0)
    single = equinnp.build_potential("ani2x", hidden_layers=[8], num_radial_shifts=4, num_angular_shifts=2,
                                     num_angle_sections=2, dtype="float64")
    data = molecule([6, 1, 1, 1, 1], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
    assert single(data).energy_std is None and single(data).member_energies is None
    torch.manual_seed(0)
    ensemble = equinnp.build_potential("ani2x", hidden_layers=[8], num_radial_shifts=4, num_angular_shifts=2,
                                       num_angle_sections=2, num_members=3, dtype="float64")
    other = molecule([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    from torch_geometric.data import Batch

    batched = ensemble(Batch.from_data_list([data, other]))
    alone = [ensemble(data), ensemble(other)]
    assert batched.member_energies.shape == (2, 3)
    for k in range(2):
        torch.testing.assert_close(batched.energy_std[k], alone[k].energy_std[0])
        torch.testing.assert_close(batched.member_energies[k], alone[k].member_energies[0])
        assert alone[k].energy_std.item() > 0


# ------------------------------------------------------------------ a molecule that is not a reference structure
@needs_files
def test_pretrained_predicts_a_new_molecule_and_its_forces_are_the_gradient(ani2x64):
    from ase.build import molecule as ase_molecule

    from equinnp.calculators import EquinnpCalculator

    atoms = ase_molecule("CH3SH")
    atoms.calc = EquinnpCalculator(equinnp.load_pretrained("ani2x", FOLDER, download=False))
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    self_energy = sum({1: -0.5978583943827134, 6: -38.08933878049795, 16: -398.1577125334925}[z]
                      for z in atoms.numbers) * HARTREE_TO_EV
    # the self energies are a linear fit of the data set's energies: the networks add a correction of ~1 eV
    assert abs(energy - self_energy) < 5.0
    assert np.abs(forces).max() < 2.0  # eV/Å: ASE's geometry is near a minimum
    data = molecule(atoms.numbers, atoms.positions)
    out = ani2x64(data)
    assert 0 < out.energy_std.item() < 0.05  # eV: an ordinary molecule, the members agree
    # the calculator reports the spread too (float32 network there, float64 here)
    assert abs(atoms.calc.results["energy_std"] - out.energy_std.item()) < 1e-3 * out.energy_std.item() + 1e-5
    reference = out.forces.detach()
    np.testing.assert_allclose(forces, reference.numpy(), rtol=0, atol=1e-4)  # float32 network vs float64
    h = 2e-4  # CELU(0.1) is C1 only: a finer step than the contract's 1e-3 Å keeps the stencil off its kinks
    for atom, axis in [(0, 0), (1, 2), (3, 1)]:
        energies = []
        for offset in (-2, -1, 1, 2):
            pos = data.pos.clone()
            pos[atom, axis] += offset * h
            energies.append(ani2x64(molecule(atoms.numbers, pos.numpy()), compute_forces=False).energy.item())
        numeric = -(energies[0] - 8 * energies[1] + 8 * energies[2] - energies[3]) / (12 * h)
        assert abs(numeric - reference[atom, axis].item()) < 1e-6 * max(1.0, abs(numeric)) + 1e-8


# ------------------------------------------------------------------ periodic cells
@needs_files
def test_periodic_cell_equals_the_cluster_of_its_images_and_the_tiled_supercell(ani2x64):
    """Methanethiol in a 6 Å cubic cell (images within both cutoffs): each atom's energy equals the energy of
    that atom in a non-periodic 3 x 3 x 3 cluster of copies; a 2 x 1 x 1 supercell doubles the energy."""
    from ase.build import molecule as ase_molecule

    atoms = ase_molecule("CH3SH")
    atoms.set_cell([6.0, 6.0, 6.0])
    atoms.center()
    atoms.pbc = True
    periodic = ani2x64(equinnp.data.from_ase(atoms, dtype=torch.float64))
    assert periodic.stress is not None
    n = len(atoms)
    copies = [atoms.positions + np.array([a, b, c]) * 6.0 for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    central = 13  # (0, 0, 0)
    cluster = ani2x64(molecule(np.tile(atoms.numbers, 27), np.concatenate(copies)), compute_forces=False)
    torch.testing.assert_close(periodic.atomic_energies.detach(), cluster.atomic_energies.detach()[central * n:(central + 1) * n],
                               rtol=0, atol=1e-9)
    isolated = ani2x64(molecule(atoms.numbers, atoms.positions), compute_forces=False)
    assert abs(periodic.energy.item() - isolated.energy.item()) > 1e-3  # the images do interact
    supercell = ani2x64(equinnp.data.from_ase(atoms.repeat((2, 1, 1)), dtype=torch.float64))
    torch.testing.assert_close(supercell.energy.detach(), 2 * periodic.energy.detach(), rtol=0, atol=1e-8)
    torch.testing.assert_close(supercell.forces.detach()[:n], periodic.forces.detach(), rtol=0, atol=1e-9)
    torch.testing.assert_close(supercell.stress.detach(), periodic.stress.detach(), rtol=0, atol=1e-9)


# ------------------------------------------------------------------ errors
@needs_files
def test_an_element_ani2x_does_not_have_is_refused(ani2x64):
    with pytest.raises(ValueError, match=r"Si \(Z=14\).*ani2x.*elements=\[1, 6, 7, 8, 16, 9, 17\]"):
        ani2x64(molecule([14, 1], [[0, 0, 0], [1.5, 0, 0]]))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match=r"angular_cutoff must be in \(0, cutoff=4.0\] Å, got 4.5"):
        equinnp.build_potential("ani2x", cutoff=4.0, angular_cutoff=4.5)
    with pytest.raises(ValueError, match=r"hidden_layers gives sizes for elements \[1, 6\] but not for Z=8"):
        equinnp.build_potential("ani2x", elements=[1, 6, 8], hidden_layers={1: [8], 6: [8]})
    with pytest.raises(ValueError, match="num_members must be at least 1, got 0"):
        equinnp.build_potential("ani2x", elements=[1], hidden_layers=[4], num_members=0)


def test_unknown_pretrained_name_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown pretrained model 'ani2'. Did you mean 'ani2x'"):
        equinnp.load_pretrained("ani2")


@pytest.fixture
def model_copy(tmp_path):
    """A writable copy of the model folder: the small files copied, the parameter files linked."""
    assert (FOLDER / "ani-2x_8x.info").is_file(), f"the published ANI-2x files are not in {FOLDER} (set {ENV_VAR})"
    root = tmp_path / "ani2x"
    for source in [FOLDER / "ani-2x_8x.info", *(FOLDER / "ani-2x_8x").rglob("*")]:
        target = root / source.relative_to(FOLDER)
        if source.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix in (".wparam", ".bparam"):
            target.symlink_to(source)
        else:
            shutil.copyfile(source, target)
    return root


def test_loader_errors_name_the_file(model_copy):
    networks = model_copy / "ani-2x_8x" / "train3" / "networks"
    load = lambda: equinnp.load_pretrained("ani2x", model_copy, download=False)  # noqa: E731

    (networks / "ANN-F.nnf").write_bytes((networks / "ANN-F.nnf").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"train3/networks/ANN-F.nnf: the compressed network description is corrupt"):
        load()
    shutil.copyfile(FOLDER / "ani-2x_8x" / "train3" / "networks" / "ANN-F.nnf", networks / "ANN-F.nnf")

    weights = networks / "ANN-Cl.nnf-l2.wparam"
    weights.unlink()
    weights.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match=r"ANN-Cl.nnf-l2.wparam: 100 bytes, expected 81920 \(20480 float32 values\)"):
        load()
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"ANN-Cl.nnf-l2.wparam does not exist"):
        load()
    weights.symlink_to(FOLDER / "ani-2x_8x" / "train3" / "networks" / "ANN-Cl.nnf-l2.wparam")

    params = model_copy / "ani-2x_8x" / "rHCNOSFCl-5.1R_16-3.5A_a8-4.params"
    original = params.read_text()
    params.write_text(original.replace("Atyp = [H,C,N,O,S,F,Cl]", "Atyp = [H,C,N,O,F,S,Cl]"))
    with pytest.raises(ValueError, match=r"species order Atyp = \['H', 'C', 'N', 'O', 'F', 'S', 'Cl'\]"):
        load()
    params.write_text(original.replace("EtaR = [1.9700000e+01]", "EtaR = [1.6000000e+01]"))
    with pytest.raises(ValueError, match=r"EtaR = \[16.0\] is not the ANI-2x value"):
        load()
    params.write_text(original)

    (model_copy / "ani-2x_8x.info").unlink()
    with pytest.raises(FileNotFoundError, match=r"does not hold ani-2x_8x.info"):
        load()


def test_the_files_are_found_by_argument_environment_and_cache(model_copy, tmp_path, monkeypatch):
    from equinnp.pretrained.download import locate_ani2x

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("EQUINNP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"not in .*cache/ani2x; pass path= or set EQUINNP_ANI2X_PATH"):
        locate_ani2x(download=False)
    assert locate_ani2x(model_copy) == model_copy
    monkeypatch.setenv(ENV_VAR, str(model_copy))
    assert locate_ani2x() == model_copy
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"\$EQUINNP_ANI2X_PATH = .* does not hold ani-2x_8x.info"):
        locate_ani2x()
    monkeypatch.delenv(ENV_VAR)
    shutil.copytree(model_copy, tmp_path / "cache" / "ani2x", symlinks=True)
    assert locate_ani2x(download=False) == tmp_path / "cache" / "ani2x"


def test_the_release_archive_is_extracted_and_checked(model_copy, tmp_path):
    """Everything after the network fetch: the archive in the release's layout is unpacked, its digest checked."""
    import zipfile

    from equinnp.pretrained.download import ANI2X_SHA256, extract_release, model_digest

    assert model_digest(FOLDER) == ANI2X_SHA256
    archive = tmp_path / "ani-2x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in model_copy.rglob("*") if p.is_file()):
            zf.write(path.resolve(), f"ani-model-zoo-ani-2x/resources/{path.relative_to(model_copy).as_posix()}")
        zf.writestr("ani-model-zoo-ani-2x/README.md", "release notes")
    destination = extract_release(archive, tmp_path / "cache" / "ani2x")
    assert (destination / "ani-2x_8x.info").is_file() and model_digest(destination) == ANI2X_SHA256

    corrupt = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(corrupt, "w", zipfile.ZIP_STORED) as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename.endswith("train5/networks/ANN-O.nnf-l1.bparam"):
                data = data[:-4] + b"\0\0\0\0"
            target.writestr(member, data)
    with pytest.raises(ValueError, match="digest .* expected " + ANI2X_SHA256):
        extract_release(corrupt, tmp_path / "other" / "ani2x")
    assert not (tmp_path / "other" / "ani2x").exists()
    (tmp_path / "truncated.zip").write_bytes(archive.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.zip is not a zip archive"):
        extract_release(tmp_path / "truncated.zip", tmp_path / "other" / "ani2x")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == []  # no staging folder left behind


def test_row_outer_equals_the_broadcast_product_and_has_second_derivatives():
    from equinnp.nn.aev import row_outer

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(6, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    b = torch.randn(6, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    torch.testing.assert_close(row_outer(a, b), (a[:, :, None] * b[:, None, :]).reshape(6, 12), rtol=0, atol=0)
    assert torch.autograd.gradcheck(row_outer, (a, b))
    assert torch.autograd.gradgradcheck(row_outer, (a, b))
    empty = row_outer(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 4))
    assert empty.shape == (0, 12)


def test_angular_pairs_are_every_unordered_pair_of_edges_at_a_center_once():
    from equinnp.nn.aev import angular_pairs

    center = torch.tensor([0, 0, 0, 2, 3, 3, 3, 3])
    first, second = angular_pairs(center)
    expected = sorted((p, q) for p in range(8) for q in range(p + 1, 8) if center[p] == center[q])
    assert sorted(zip(first.tolist(), second.tolist())) == expected and len(expected) == 3 + 6
    assert [t.numel() for t in angular_pairs(torch.zeros(0, dtype=torch.long))] == [0, 0]


@needs_files
def test_a_saved_pretrained_potential_loads_with_the_same_numbers(tmp_path, reference):
    pot = equinnp.load_pretrained("ani2x", FOLDER, dtype="float64", members=[0, 5], download=False)
    assert pot.model.num_members == 2
    pot.save(tmp_path / "ani2x.pt")
    loaded = equinnp.load_potential(tmp_path / "ani2x.pt")
    data = molecule(reference["dmso__species"], reference["dmso__coordinates"][0])
    a, b = pot(data), loaded(data)
    assert a.energy.item() == b.energy.item() and torch.equal(a.member_energies, b.member_energies)
    torch.testing.assert_close(a.forces, b.forces, rtol=0, atol=0)
    np.testing.assert_allclose(a.member_energies.detach()[0].numpy() / HARTREE_TO_EV,
                               reference["dmso__member_energies"][[0, 5], 0], rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match=r"members must be distinct indices in 0..7, got \[8\]"):
        equinnp.load_pretrained("ani2x", FOLDER, members=[8], download=False)


def test_aev_values_of_absent_elements_are_zero_and_leaving_them_out_changes_nothing():
    """The core network skips the AEV columns (and first-layer rows) of elements absent from the batch."""
    torch.manual_seed(0)
    pot = equinnp.build_potential("ani2x", hidden_layers=[8, 4], num_radial_shifts=4, num_angular_shifts=2,
                                  num_angle_sections=2, num_members=2, dtype="float64")
    seen = {}
    pot.model.aev.register_forward_hook(lambda module, args, out: seen.update(aev=out))
    pot.model.register_forward_hook(lambda module, args, out: seen.update(graph=args[0], out=out))
    data = molecule([6, 16, 1, 1, 1, 1], [[0, 0, 0], [1.82, 0, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89],
                                          [-0.36, -0.51, -0.89], [2.1, 1.3, 0]])
    pot(data)
    present = torch.unique(seen["graph"].species)  # H, C, S
    columns = pot.model.aev.columns_for(present)
    assert 0 < columns.numel() < pot.model.aev.aev_length
    left_out = torch.ones(pot.model.aev.aev_length, dtype=torch.bool)
    left_out[columns] = False
    assert torch.count_nonzero(seen["aev"][:, left_out]) == 0 and torch.count_nonzero(seen["aev"][:, columns]) > 0
    full = torch.stack([pot.model.networks[int(k)](seen["aev"][a:a + 1])[0] for a, k in enumerate(seen["graph"].species)])
    torch.testing.assert_close(seen["out"].member_energies, full, rtol=1e-12, atol=1e-12)
