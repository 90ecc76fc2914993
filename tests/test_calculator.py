"""The ASE calculator: ASE's own numerical forces and stress, the Verlet skin against a fresh search
over MD runs, charge and spin from ``atoms.info``, charges and dipole, threads, and bad input."""

import ase
import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

import equinnp
from equinnp.calculators import EquinnpCalculator
from equinnp.data.bundled import ethanol_atoms
from equinnp.potential import Potential
from equinnp.testing.strategies import random_crystal

ELEMENTS = [1, 6, 8]


def tiny(dtype="float64", scale=0.3, **kwargs):
    torch.manual_seed(0)
    return equinnp.build_potential("schnet", cutoff=4.0, elements=ELEMENTS, dtype=dtype, scale=scale,
                                   reference_energies={1: -13.6, 6: -1030.0, 8: -2040.0},
                                   **{**equinnp.ARCHITECTURES["schnet"].tiny, **kwargs}).eval()


def crystal(seed=3, num_atoms=8, length=6.0):
    data = random_crystal(seed, ELEMENTS, num_atoms, length=length, min_distance=1.2)
    return ase.Atoms(numbers=data.z.numpy(), positions=data.pos.numpy(), cell=data.cell[0].numpy(), pbc=True)


def test_forces_and_stress_equal_ase_numerical_derivatives():
    calc = EquinnpCalculator(tiny())
    molecule = ethanol_atoms()
    molecule.calc = calc
    np.testing.assert_allclose(molecule.get_forces(), calculate_numerical_forces(molecule, eps=1e-4), rtol=1e-6, atol=1e-7)
    solid = crystal()
    solid.calc = calc
    np.testing.assert_allclose(solid.get_forces(), calculate_numerical_forces(solid, eps=1e-4), rtol=1e-6, atol=1e-7)
    stress = solid.get_stress()
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, calculate_numerical_stress(solid, eps=1e-6), rtol=1e-5, atol=1e-8)
    assert solid.get_potential_energy() == pytest.approx(solid.get_potential_energies().sum(), rel=1e-12)
    assert solid.get_potential_energy(force_consistent=True) == solid.get_potential_energy()
    hessian = calc.get_hessian(molecule)  # [3N, 3N]: minus the derivative of the forces
    numeric = np.zeros_like(hessian)
    for k in range(27):
        for sign in (1, -1):
            moved = molecule.copy()
            positions = moved.get_positions()
            positions.reshape(-1)[k] += sign * 1e-4
            moved.set_positions(positions)
            moved.calc = EquinnpCalculator(calc.potential)
            numeric[:, k] -= sign * moved.get_forces().reshape(-1) / 2e-4
    np.testing.assert_allclose(hessian, numeric, rtol=1e-5, atol=1e-5 * np.abs(hessian).max())


def _md_against_fresh_search(atoms, steps, skin, temperature=400.0):
    """Run NVE with a skin; at every step compare with a calculator that searches afresh. Returns the number of searches."""
    potential = tiny()
    atoms.calc = EquinnpCalculator(potential, skin=skin)
    fresh = EquinnpCalculator(potential, skin=0.0)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(0))  # noqa
    dynamics = VelocityVerlet(atoms, 1.0 * units.fs)
    for _ in range(steps):
        dynamics.run(1)
        copy = atoms.copy()
        copy.calc = fresh
        assert atoms.get_potential_energy() == copy.get_potential_energy()
        assert np.array_equal(atoms.get_forces(), copy.get_forces())
    assert fresh.neighbor_searches == steps
    return atoms.calc.neighbor_searches


def test_skin_gives_exactly_the_fresh_search_results_over_md():
    # A random network binds nothing: the atoms drift apart and pairs leave and enter the cutoff.
    searches = _md_against_fresh_search(ethanol_atoms(), steps=150, skin=0.5, temperature=600.0)
    assert 2 < searches < 100  # reused most steps, and rebuilt several times
    searches = _md_against_fresh_search(crystal(), steps=60, skin=1.0)
    assert 1 <= searches < 30


def test_a_new_cell_means_a_new_search():
    solid = crystal()
    calc = EquinnpCalculator(tiny(), skin=1.0)
    solid.calc = calc
    solid.get_forces()
    solid.set_cell(solid.cell * 1.01, scale_atoms=True)
    strained = solid.get_forces()
    assert calc.neighbor_searches == 2
    fresh = solid.copy()
    fresh.calc = EquinnpCalculator(tiny(), skin=0.0)
    assert np.array_equal(strained, fresh.get_forces())


class ChargeEcho(Potential):
    """A potential that reports charges (the total spread evenly), a dipole, and the thread count it ran with."""

    def forward(self, data, compute_forces=True, compute_stress=None):
        out = super().forward(data, compute_forces, compute_stress)
        self.seen_threads = torch.get_num_threads()
        charges = (data.charge / data.num_nodes).expand(data.num_nodes).double()  # [N]
        dipole = (charges[:, None] * data.pos.double()).sum(0, keepdim=True)  # [1, 3]
        return out._replace(charges=charges, dipole=dipole)


def test_charge_and_spin_from_info_and_charges_and_dipole_reported():
    base = tiny()
    echo = ChargeEcho(base.model, architecture="schnet")
    echo.load_state_dict(base.state_dict())
    atoms = ethanol_atoms()
    atoms.info["charge"] = 1.0
    atoms.calc = EquinnpCalculator(echo, threads=1)
    np.testing.assert_allclose(atoms.get_charges(), np.full(9, 1 / 9))
    np.testing.assert_allclose(atoms.get_dipole_moment(), atoms.positions.sum(0) / 9)
    assert echo.seen_threads == 1
    atoms.info["charge"] = -1.0  # no other change: the calculator must see this one
    np.testing.assert_allclose(atoms.get_charges(), np.full(9, -1 / 9))
    assert atoms.calc.check_state(atoms) == []
    atoms.info["spin"] = 3.0
    assert atoms.calc.check_state(atoms) == ["info"]


def test_threads_are_restored_after_each_call():
    before = torch.get_num_threads()
    atoms = ethanol_atoms()
    atoms.calc = EquinnpCalculator(tiny(), threads=1)
    atoms.get_forces()
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive integer or None .* got 0"):
        EquinnpCalculator(tiny(), threads=0)


def test_float32_cast_and_saved_file(tmp_path):
    potential = tiny()
    potential.save(tmp_path / "model.pt")
    atoms = ethanol_atoms()
    atoms.calc = EquinnpCalculator(tmp_path / "model.pt", dtype="float32")
    assert atoms.calc.potential.dtype == torch.float32
    reference = ethanol_atoms()
    reference.calc = EquinnpCalculator(potential)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got 'half'"):
        EquinnpCalculator(potential, dtype="half")


def test_a_loaded_potential_is_frozen_and_a_given_one_left_as_it_is(tmp_path):
    potential = tiny()
    potential.save(tmp_path / "model.pt")
    loaded = EquinnpCalculator(tmp_path / "model.pt")
    assert not any(p.requires_grad for p in loaded.potential.parameters())
    given = EquinnpCalculator(potential)
    assert all(p.requires_grad for p in given.potential.parameters())  # the caller may still train it
    atoms, reference = ethanol_atoms(), ethanol_atoms()
    atoms.calc, reference.calc = loaded, given
    np.testing.assert_array_equal(atoms.get_forces(), reference.get_forces())
    np.testing.assert_array_equal(atoms.get_potential_energy(), reference.get_potential_energy())


def test_unknown_element_and_a_cell_in_the_wrong_units():
    atoms = ase.Atoms("NH3", positions=[[0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    atoms.calc = EquinnpCalculator(tiny())
    with pytest.raises(ValueError, match=r"H3N contains N \(Z=7\), which this schnet model was not trained on \(it knows H C O\)"):
        atoms.get_potential_energy()
    solid = crystal()
    solid.set_cell(solid.cell * 0.01, scale_atoms=True)  # nm read as Å, or worse: 0.06 Å wide
    solid.positions *= 100  # atoms far apart, so that the cell alone is the problem
    solid.calc = EquinnpCalculator(tiny())
    with pytest.raises(ValueError, match="Is the cell in Å"):
        solid.get_potential_energy()
    with pytest.raises(ValueError, match="skin must be a number >= 0"):
        EquinnpCalculator(tiny(), skin=-1.0)


def _ase_changes(old, new, tol=1e-15):
    from ase.calculators.calculator import compare_atoms

    return sorted(compare_atoms(old, new, tol=tol))


def test_system_changes_equal_ase_compare_atoms():
    from equinnp.calculators.ase_calculator import system_changes

    base = crystal()
    base.set_initial_charges(np.zeros(len(base)))
    variants = []
    for change in range(9):
        atoms = base.copy()
        if change == 1:
            atoms.positions[2, 1] += 1e-16  # within the tolerance
        elif change == 2:
            atoms.positions[2, 1] += 1e-9
        elif change == 3:
            atoms.set_cell(atoms.cell * 1.01)
        elif change == 4:
            atoms.pbc = [True, False, True]
        elif change == 5:
            atoms.numbers[0] = 8
        elif change == 6:
            del atoms.arrays["initial_charges"]  # an array on one side only
        elif change == 7:
            atoms.set_initial_magnetic_moments(np.ones(len(atoms)))
        elif change == 8:
            atoms.positions[0, 0] = np.inf
        variants.append(atoms)
    for old in variants:
        for new in variants:
            assert sorted(system_changes(old, new)) == _ase_changes(old, new), (old, new)
            assert sorted(system_changes(old, new, 1e-6)) == _ase_changes(old, new, 1e-6)
    assert sorted(system_changes(None, base)) == sorted(_ase_changes(None, base))
    assert system_changes(variants[0], variants[2], excluded={"positions"}) == []


def test_an_md_step_reuses_the_last_data_and_a_failed_call_forgets_it():
    atoms = ethanol_atoms()
    atoms.info["charge"] = 0.0
    calc = EquinnpCalculator(tiny(), threads=1)
    atoms.calc = calc
    atoms.get_forces()
    moved = atoms.positions.copy()
    moved[0, 0] += 0.05
    atoms.positions = moved  # positions only: the last Data with new positions
    fast = atoms.get_forces()
    fresh = ethanol_atoms()
    fresh.positions = moved
    fresh.calc = EquinnpCalculator(tiny(), skin=0.0)
    np.testing.assert_array_equal(fast, fresh.get_forces())
    assert calc.neighbor_searches == 1
    bad = atoms.positions.copy()
    bad[3] = np.nan
    atoms.positions = bad
    for _ in range(2):  # ASE reports no change the second time: the calculator must not reuse anything
        with pytest.raises(ValueError, match="position of atom 3 is not finite"):
            atoms.get_forces()
    atoms.positions = moved
    np.testing.assert_array_equal(atoms.get_forces(), fast)
