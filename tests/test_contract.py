"""The contract: every registered architecture, in float64 and float32, at the tolerances of ``equinnp.testing.contract``.

A new entry of ``equinnp.ARCHITECTURES`` is checked here the moment it is
registered. The deliberately broken layers that every check must reject are
in ``test_contract_controls.py``.
"""

import copy
import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

import equinnp
from equinnp.build import model_hyperparameters
from equinnp.data import from_arrays
from equinnp.testing import contract
from equinnp.testing.strategies import (
    molecules,
    periodic_structures,
    random_crystal,
    random_molecule,
    random_permutation,
    random_rotation,
    random_translation,
    rotations,
    seeds,
    translations,
)

# Elements from H to S, with reference energies of their size (eV): totals reach -1e4..-1e5 eV.
REFERENCE = {1: -13.6, 3: -203.0, 6: -1030.0, 7: -1485.0, 8: -2040.0, 9: -2715.0, 14: -7870.0, 16: -10830.0}
ELEMENTS = sorted(REFERENCE)
SCALE = [0.5, 1.1, 1.5, 1.2, 0.8, 0.9, 1.3, 0.7]
SHIFT = [-0.1, 0.4, 0.2, 0.0, 0.3, -0.2, 0.1, -0.3]
CUTOFF = 4.0
NAMES = sorted(equinnp.ARCHITECTURES)
DTYPES = ["float64", "float32"]


def examples(fraction: float, minimum: int = 2):
    """``fraction`` of the profile's examples, for properties that cost many evaluations each."""
    return settings(max_examples=max(minimum, round(settings.default.max_examples * fraction)))


def perturbed(build, dtype: str):
    """``build(dtype=...)`` in float64 with every parameter moved by 0.1·N(0, 1) (zero-initialised biases
    become non-zero, so they are exercised too); the float32 one gets the float64 weights, rounded."""
    torch.manual_seed(0)
    pot = build(dtype="float64")
    with torch.no_grad():
        for parameter in pot.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    if dtype == "float32":
        state = pot.state_dict()
        pot = build(dtype="float32")
        pot.load_state_dict(state)
    return pot.eval()


@functools.lru_cache(maxsize=None)
def tiny_potential(name: str, dtype: str = "float64"):
    """A small potential with non-trivial weights, scale, shift and reference energies.

    Built in ``dtype``; the float32 one has the float64 one's weights (rounded).
    """
    cls = equinnp.ARCHITECTURES[name]
    build = functools.partial(
        equinnp.build_potential, name, cutoff=CUTOFF, elements=ELEMENTS, scale=SCALE, shift=SHIFT,
        reference_energies=REFERENCE, **cls.tiny,
    )
    return perturbed(build, dtype)


parametrize = pytest.mark.parametrize("name, dtype", [(n, d) for n in NAMES for d in DTYPES])


def _images(data, seed):
    """Random lattice translations per atom [N, 3], zero along non-periodic axes."""
    images = torch.randint(-1, 2, (data.num_nodes, 3), generator=torch.Generator().manual_seed(seed % 2**63))
    return images * data.pbc.reshape(3).long()


def _moved(data, pos):
    """``data`` with other positions."""
    moved = copy.copy(data)
    moved.pos = pos
    return moved


def _open_beside_periodic(data):
    """An open system in the layout of periodic ones (zero cell, pbc False), so that the two batch together."""
    open_system = Data(z=data.z, pos=data.pos)
    open_system.cell = torch.zeros(1, 3, 3, dtype=torch.float64)
    open_system.pbc = torch.zeros(1, 3, dtype=torch.bool)
    return open_system


# ------------------------------------------------------------------ symmetries
@parametrize
@given(data=molecules(ELEMENTS, 2, 20), R=rotations())
def test_rotation_and_reflection(name, dtype, data, R):
    contract.check_rotation(tiny_potential(name, dtype), data, R)


@parametrize
def test_rotation_real_molecules(name, dtype, rmd17_frames):
    for k, data in enumerate(rmd17_frames):
        contract.check_rotation(tiny_potential(name, dtype), data, random_rotation(k, reflection=None))


@parametrize
@given(data=molecules(ELEMENTS, 2, 20), shift=translations(10.0))
def test_translation(name, dtype, data, shift):
    # 10 Å: a float32 coordinate 50 Å from the origin has a rounding error of 3e-6 Å,
    # which alone moves the forces of 1-Å bonds by ~1e-5 relative.
    contract.check_translation(tiny_potential(name, dtype), data, shift)


@parametrize
@given(data=molecules(ELEMENTS, 2, 20), seed=seeds())
def test_permutation(name, dtype, data, seed):
    contract.check_permutation(tiny_potential(name, dtype), data, random_permutation(seed, data.num_nodes))


@parametrize
@examples(0.5)
@given(
    systems=st.lists(molecules(ELEMENTS, 1, 10), min_size=2, max_size=4),
    periodic=st.lists(periodic_structures(ELEMENTS, 1, 8), min_size=2, max_size=3),
)
def test_batch_equals_single(name, dtype, systems, periodic):
    pot = tiny_potential(name, dtype)
    contract.check_batch_consistency(pot, systems)
    contract.check_batch_consistency(pot, periodic)


@parametrize
@examples(0.25)
@given(molecule=molecules(ELEMENTS, 1, 10), periodic=periodic_structures(ELEMENTS, 1, 8))
def test_batch_of_periodic_and_open_systems(name, dtype, molecule, periodic):
    pot = tiny_potential(name, dtype)
    contract.check_batch_consistency(pot, [periodic, _open_beside_periodic(molecule)])
    contract.check_batch_consistency(pot, [periodic, _open_beside_periodic(molecule), periodic])


@parametrize
def test_no_force_between_molecules_of_a_batch(name, dtype, rmd17_frames):
    unlabelled = [Data(z=d.z, pos=d.pos) for d in (rmd17_frames[0], rmd17_frames[3])]
    contract.check_no_cross_talk(tiny_potential(name, dtype), [unlabelled[0], random_molecule(3, ELEMENTS, 5), unlabelled[1]])


# ----------------------------------------------------------- finite differences
@parametrize
def test_forces_match_finite_differences_real_molecule(name, dtype, rmd17_frames):
    pot = tiny_potential(name, dtype)
    contract.check_responds_to_geometry(pot, rmd17_frames[0])
    contract.check_finite_difference_forces(pot, rmd17_frames[0], atoms=[0, 2, 8])  # C, O, H of ethanol
    contract.check_finite_difference_forces(pot, rmd17_frames[3], atoms=[12])  # an O of aspirin


@parametrize
@examples(0.25)
@given(data=molecules(ELEMENTS, 2, 20), seed=seeds())
def test_forces_match_finite_differences(name, dtype, data, seed):
    atoms = random_permutation(seed, data.num_nodes)[:2].tolist()  # two atoms: 2 x 3 x 4 evaluations
    contract.check_finite_difference_forces(tiny_potential(name, dtype), data, atoms=atoms)


@parametrize
def test_hessian_matches_finite_differences_of_the_forces(name, dtype, rmd17_frames):
    pot = tiny_potential(name, dtype)
    contract.check_hessian_finite_difference(pot, rmd17_frames[0], atoms=[0, 2, 8])  # C, O, H of ethanol
    contract.check_hessian_finite_difference(pot, random_crystal(11, ELEMENTS, 3, length=6.0), atoms=[1])


# ------------------------------------------------------------------ the cutoff
@parametrize
def test_continuous_at_cutoff(name, dtype):
    for z in [(6, 8), (1, 1), (16, 3)]:
        contract.check_cutoff_continuity(tiny_potential(name, dtype), z=z)


@parametrize
def test_smooth_as_an_atom_crosses_the_cutoff_in_a_real_molecule(name, dtype, rmd17_frames):
    pot = tiny_potential(name, dtype)
    for data in (rmd17_frames[0], rmd17_frames[3]):  # ethanol, aspirin
        crossings = contract.cutoff_crossings(data, CUTOFF)
        assert len(crossings) >= 3
        for atom, partner in crossings[:3]:
            contract.check_cutoff_crossing(pot, data, atom, partner)


@parametrize
@examples(0.5)
@given(data=molecules(ELEMENTS, 4, 20))
def test_smooth_as_an_atom_crosses_the_cutoff(name, dtype, data):
    crossings = contract.cutoff_crossings(data, CUTOFF)
    for atom, partner in crossings[:1]:  # none in a molecule more compact than the cutoff
        contract.check_cutoff_crossing(tiny_potential(name, dtype), data, atom, partner)


# ---------------------------------------------------------- separated systems
# AIMNet2 corrects its charges to the total charge of the whole system (its neural charge
# equilibration, as aimnet): fragments beyond the cutoff exchange charge, so their energies
# do not add. tests/test_aimnet2.py checks that its network is local before that correction.
GLOBAL_CHARGES = pytest.mark.xfail(strict=True, reason="AIMNet2's charge equilibration spans the whole system "
                                   "(as in aimnet): fragments beyond the cutoff exchange charge")
local = pytest.mark.parametrize("name, dtype", [pytest.param(n, d, marks=GLOBAL_CHARGES if n == "aimnet2" else ())
                                                for n in NAMES for d in DTYPES])


@local
def test_far_apart_molecules_add(name, dtype, rmd17_frames):
    pot = tiny_potential(name, dtype)
    contract.check_separated_additivity(pot, rmd17_frames[0], rmd17_frames[3], None)  # just beyond the cutoff
    contract.check_separated_additivity(pot, rmd17_frames[3], rmd17_frames[1], 30.0, direction=[0.0, 1.0, 1.0])


@local
@examples(0.5)
@given(first=molecules(ELEMENTS, 1, 12), second=molecules(ELEMENTS, 1, 12), seed=seeds())
def test_molecules_beyond_the_cutoff_add(name, dtype, first, second, seed):
    contract.check_separated_additivity(tiny_potential(name, dtype), first, second, None, direction=random_translation(seed))


@local
@examples(0.5)
@given(seed=seeds())
def test_isolated_atoms(name, dtype, seed):
    pot = tiny_potential(name, dtype)
    generator = torch.Generator().manual_seed(seed % 2**31)
    z = ELEMENTS[seed % len(ELEMENTS)]
    contract.check_isolated_atom(pot, z, 20.0 * torch.randn(3, 3, generator=generator, dtype=torch.float64))
    pair = (z, ELEMENTS[(seed // len(ELEMENTS)) % len(ELEMENTS)])
    contract.check_isolated_atoms_add(pot, pair, direction=random_translation(seed))


@local
@given(data=molecules(ELEMENTS, 1, 20), seed=seeds())
def test_atom_beyond_the_cutoff_changes_nothing(name, dtype, data, seed):
    z = ELEMENTS[seed % len(ELEMENTS)]
    contract.check_atom_beyond_cutoff(tiny_potential(name, dtype), data, z, random_translation(seed))


# --------------------------------------------------------------------- periodic
# Periodic structures of two atoms or more: random cells have no symmetric sites, which
# test_smooth_near_a_symmetric_site covers (with the one-atom cells).
@parametrize
@examples(0.5)
@given(data=periodic_structures(ELEMENTS, 2, 16), R=rotations(), seed=seeds())
def test_periodic_rotation_translation_and_wrapping(name, dtype, data, R, seed):
    pot = tiny_potential(name, dtype)
    contract.check_rotation(pot, data, R)
    contract.check_translation(pot, data, random_translation(seed))
    contract.check_wrapping(pot, data, _images(data, seed))


@parametrize
@examples(0.2)
@given(data=periodic_structures(ELEMENTS, 2, 8), seed=seeds())
def test_supercell_and_stress(name, dtype, data, seed):
    pot = tiny_potential(name, dtype)
    axis = int(torch.nonzero(data.pbc.reshape(3))[seed % int(data.pbc.sum())])
    repeat = [1, 1, 1]
    repeat[axis] = 2
    contract.check_supercell(pot, data, repeat)
    contract.check_stress_finite_difference(pot, data)
    contract.check_finite_difference_forces(pot, data, atoms=random_permutation(seed, data.num_nodes)[:1].tolist())


@parametrize
@pytest.mark.parametrize("length", [3.0, 6.0])  # 3 Å cell: shorter than the cutoff
def test_supercell_and_stress_of_a_small_cell(name, dtype, length):
    pot = tiny_potential(name, dtype)
    crystal = random_crystal(11, ELEMENTS, 3, length=length)
    contract.check_supercell(pot, crystal, (2, 1, 1) if length > CUTOFF else (1, 2, 2))
    contract.check_stress_finite_difference(pot, crystal)
    contract.check_finite_difference_forces(pot, crystal, atoms=[1])


# ------------------------------------------------------------ symmetric sites
def _centrosymmetric(seed: int):
    """A molecule whose first atom is a centre of inversion: one to three pairs of equal atoms at ±r_k u_k."""
    rng = np.random.default_rng(seed)
    pos, z = [np.zeros(3)], [ELEMENTS[rng.integers(len(ELEMENTS))]]
    for _ in range(int(rng.integers(1, 4))):
        for _ in range(100):
            u = rng.standard_normal(3)
            u *= rng.uniform(1.0, 1.6) / np.linalg.norm(u)
            if np.linalg.norm(np.array(pos) - u, axis=1).min() >= 1.0 and np.linalg.norm(np.array(pos) + u, axis=1).min() >= 1.0:
                pos += [u, -u]
                z += [ELEMENTS[rng.integers(len(ELEMENTS))]] * 2
                break
    return from_arrays(z, np.array(pos), dtype=torch.float64)


def _one_atom_supercell(seed: int):
    """Two copies of a one-atom cell: both atoms are centres of inversion."""
    cell = random_crystal(seed, ELEMENTS, 1)
    lattice = cell.cell[0]
    return from_arrays(cell.z.repeat(2), torch.cat([cell.pos, cell.pos + lattice[0]]),
                       cell=torch.diag(torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)) @ lattice, dtype=torch.float64)


PAINN_CUSP = pytest.mark.xfail(
    strict=True,
    reason="PaiNN's update uses sqrt(|V mu|^2 + 1e-8) (as SchNetPack): where the vector features "
    "vanish by symmetry the energy has a cone rounded over ~1e-4 Å (force on the central atom of "
    "O-C-O jumps from -0.06 to +0.06 eV/Å between ±1e-4 Å, Hessian ~2e3 eV/Å²)",
)


@pytest.mark.parametrize("name, dtype", [pytest.param(n, d, marks=PAINN_CUSP if n == "painn" else ())
                                         for n in NAMES for d in DTYPES])
@examples(0.2)
@given(seed=seeds())
def test_smooth_near_a_symmetric_site(name, dtype, seed):
    # An atom at a centre of inversion has no vector features; forces must still be smooth
    # there: finite differences 2e-4 Å away, and the symmetries exactly there.
    pot = tiny_potential(name, dtype)
    direction = random_translation(seed)
    for data in (_centrosymmetric(seed), _one_atom_supercell(seed)):
        moved = data.pos.clone()
        moved[0] += 2e-4 * direction / direction.norm()
        contract.check_finite_difference_forces(pot, _moved(data, moved), atoms=[0])
        contract.check_rotation(pot, data, random_rotation(seed, reflection=None))
        contract.check_translation(pot, data, direction)


# ------------------------------------------------- models that predict charges
# Every architecture with a charge-head option, with each charge-conservation transform,
# with the total charge/spin embedding on.
# SchNet, PaiNN and PhysNet run every combination by default; the other architectures run
# weighted charges in float64 by default and the other three combinations with -m slow.
FULL_CHARGE_MATRIX = {"schnet", "painn", "physnet"}
CHARGED = [(n, t, d) for n in NAMES if "charge_head" in model_hyperparameters(n)
           for t in ("uniform_charges", "weighted_charges") for d in DTYPES]
charged = pytest.mark.parametrize("name, transform, dtype", [
    pytest.param(n, t, d, marks=() if n in FULL_CHARGE_MATRIX or (t, d) == ("weighted_charges", "float64") else pytest.mark.slow)
    for n, t, d in CHARGED
])


@functools.lru_cache(maxsize=None)
def tiny_charge_potential(name: str, transform: str, dtype: str = "float64"):
    """A tiny potential with a charge head, a charge-conservation transform and the charge/spin embedding."""
    cls = equinnp.ARCHITECTURES[name]
    build = functools.partial(
        equinnp.build_potential, name, cutoff=CUTOFF, elements=ELEMENTS, scale=SCALE, shift=SHIFT,
        reference_energies=REFERENCE, charge_head=True, charge_embedding=True, spin_embedding=True,
        postprocessing={"transforms": ["scale_shift", transform]}, **cls.tiny,
    )
    return perturbed(build, dtype)


def _charged(data, charge: int, spin: int = 1):
    data = copy.copy(data)
    data.charge = torch.tensor([float(charge)], dtype=torch.float64)
    data.spin = torch.tensor([float(spin)], dtype=torch.float64)
    return data


def test_every_charge_head_architecture_is_checked():
    assert {"schnet", "painn"} <= {n for n, _, _ in CHARGED}


@charged
@given(data=molecules(ELEMENTS, 1, 20), charge=st.integers(-3, 3), spin=st.integers(1, 3))
def test_charges_sum_to_the_total_charge(name, transform, dtype, data, charge, spin):
    contract.check_charge_conservation(tiny_charge_potential(name, transform, dtype), _charged(data, charge, spin))


@charged
@examples(0.5)
@given(systems=st.lists(st.tuples(molecules(ELEMENTS, 1, 10), st.integers(-2, 2)), min_size=2, max_size=4))
def test_charges_sum_to_the_total_charge_of_each_system_in_a_batch(name, transform, dtype, systems):
    from torch_geometric.data import Batch

    batch = Batch.from_data_list([_charged(data, charge) for data, charge in systems])
    contract.check_charge_conservation(tiny_charge_potential(name, transform, dtype), batch)


@charged
@given(data=molecules(ELEMENTS, 2, 20), charge=st.integers(-2, 2), R=rotations(), shift=translations(10.0), seed=seeds())
def test_charges_are_invariant_and_the_dipole_equivariant(name, transform, dtype, data, charge, R, shift, seed):
    pot = tiny_charge_potential(name, transform, dtype)
    data = _charged(data, charge)
    contract.check_charge_symmetries(pot, data, R, shift, random_permutation(seed, data.num_nodes))
    contract.check_dipole_equivariance(pot, data, R, shift)


@charged
def test_charged_potentials_pass_the_energy_contract(name, transform, dtype, rmd17_frames):
    pot = tiny_charge_potential(name, transform, dtype)
    data = _charged(rmd17_frames[3], 1, 2)
    contract.check_rotation(pot, data, random_rotation(3, reflection=None))
    contract.check_finite_difference_forces(pot, data, atoms=[0, 12])
    contract.check_batch_consistency(pot, [data, _charged(rmd17_frames[0], -1)])


# ------------------------------------------------- models that read the total charge and spin
# Every architecture with the charge/spin embedding option (with it off, a charge changes nothing).
EMBEDDED = [(n, d) for n in NAMES if "charge_embedding" in model_hyperparameters(n) for d in DTYPES]
embedded = pytest.mark.parametrize("name, dtype", EMBEDDED)


@functools.lru_cache(maxsize=None)
def tiny_embedded_potential(name: str, dtype: str = "float64"):
    """A tiny potential with the total charge and spin embedding on (no charge head)."""
    cls = equinnp.ARCHITECTURES[name]
    build = functools.partial(
        equinnp.build_potential, name, cutoff=CUTOFF, elements=ELEMENTS, scale=SCALE, shift=SHIFT,
        reference_energies=REFERENCE, charge_embedding=True, spin_embedding=True, **cls.tiny,
    )
    return perturbed(build, dtype)


def test_every_architecture_has_the_charge_embedding_option():
    with_option = {n for n, _ in EMBEDDED}
    reads_totals_by_design = {n for n in NAMES if equinnp.ARCHITECTURES[n].requires_charge}
    assert with_option | reads_totals_by_design == set(NAMES)


@embedded
def test_energy_depends_on_the_total_charge_and_spin_and_needs_them(name, dtype, rmd17_frames):
    pot = tiny_embedded_potential(name, dtype)
    assert pot.model.requires_charge and pot.model.requires_spin
    data = rmd17_frames[0]
    energies = {(q, m): float(pot(_charged(data, q, m), compute_forces=False).energy.detach()) for q, m in ((0, 1), (1, 1), (-1, 1), (0, 3))}
    tolerance = 1e-6 * max(1.0, max(abs(e) for e in energies.values()))
    neutral = energies[(0, 1)]
    for key, energy in energies.items():
        if key != (0, 1):
            assert abs(energy - neutral) > tolerance, (name, key, energies)
    with_charge = copy.copy(data)
    with_charge.charge = torch.tensor([1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="needs the total charge"):
        pot(data)
    with pytest.raises(ValueError, match="spin"):
        pot(with_charge)


@pytest.mark.parametrize("name, dtype", [(n, d) for n, d in EMBEDDED if (n, "uniform_charges", d) not in CHARGED])
def test_embedded_potentials_pass_the_energy_contract(name, dtype, rmd17_frames):
    """For the architectures without a charge head (those with one: test_charged_potentials_pass_the_energy_contract)."""
    pot = tiny_embedded_potential(name, dtype)
    data = _charged(rmd17_frames[3], 1, 2)
    contract.check_rotation(pot, data, random_rotation(4, reflection=None))
    contract.check_finite_difference_forces(pot, data, atoms=[0, 12])
    contract.check_batch_consistency(pot, [data, _charged(rmd17_frames[0], -1)])
