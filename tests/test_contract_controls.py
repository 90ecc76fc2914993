"""The contract's checks can fail: each deliberately broken layer is rejected by the checks made
for it and passes the others (the checks are specific).

The broken layers are in ``broken_layers.py``; each is SchNet with one bug.
"""

import functools

import pytest
import torch
from hypothesis import given
from torch_geometric.data import Data

from broken_layers import (
    CUTOFF,
    ELEMENTS,
    AbsolutePositionSchNet,
    AtomIndexSchNet,
    C0EnvelopeSchNet,
    CrossTalkSchNet,
    DetachedDistanceSchNet,
    FirstOrderFilterSchNet,
    MeanReadoutSchNet,
    NoEnvelopeSchNet,
    OctahedralLeakSchNet,
    OriginDipolePotential,
    PositionalChargeSchNet,
    VirialSignPotential,
    broken_charge_potential,
    broken_potential,
)
from equinnp.models.schnet import SchNet
from equinnp.testing import contract
from equinnp.testing.strategies import (
    molecules,
    random_crystal,
    random_molecule,
    random_permutation,
    random_rotation,
    random_slab,
    random_translation,
    rotations,
)


def _crystal():
    return random_crystal(11, ELEMENTS, 4, length=4.5)


def _plain(data):
    return Data(z=data.z, pos=data.pos)


def _crossings(pot, frames):
    for data in (frames[0], frames[3]):
        for atom, partner in contract.cutoff_crossings(data, CUTOFF)[:2]:
            contract.check_cutoff_crossing(pot, data, atom, partner)
    contract.check_cutoff_continuity(pot, (6, 8))


# Each check on fixed inputs: real molecules (frames 0-2 ethanol, 3-4 aspirin) and random cells.
CHECKS = {
    "rotation": lambda pot, f: contract.check_rotation(pot, f[3], random_rotation(1, reflection=True)),
    "translation": lambda pot, f: contract.check_translation(pot, f[3], random_translation(1)),
    "permutation": lambda pot, f: contract.check_permutation(pot, f[3], random_permutation(1, f[3].num_nodes)),
    "batch": lambda pot, f: contract.check_batch_consistency(pot, [_plain(f[0]), random_molecule(2, ELEMENTS, 7), _plain(f[3])]),
    "cross_talk": lambda pot, f: contract.check_no_cross_talk(pot, [f[0], f[3]]),
    "forces_fd": lambda pot, f: contract.check_finite_difference_forces(pot, f[0], atoms=[0, 2, 8]),
    "continuity": _crossings,
    "additivity": lambda pot, f: contract.check_separated_additivity(pot, f[0], f[3], None, direction=[1.0, 2.0, 0.5]),
    "lone_atom": lambda pot, f: contract.check_isolated_atom(pot, 6, torch.tensor([[0.0, 0, 0], [3.0, -7.0, 12.0]], dtype=torch.float64)),
    "atoms_add": lambda pot, f: contract.check_isolated_atoms_add(pot, (8, 1)),
    "beyond_cutoff": lambda pot, f: contract.check_atom_beyond_cutoff(pot, f[3], 1, [0.3, -1.0, 0.2]),
    "wrapping": lambda pot, f: contract.check_wrapping(pot, _crystal(), torch.tensor([[1, 0, -1], [0, 2, 0], [-1, -1, 1], [0, 0, 1]])),
    "supercell": lambda pot, f: contract.check_supercell(pot, _crystal(), (1, 2, 1)),
    "stress_fd": lambda pot, f: contract.check_stress_finite_difference(pot, _crystal()),
    "responds": lambda pot, f: contract.check_responds_to_geometry(pot, f[0]),
    "hessian_fd": lambda pot, f: contract.check_hessian_finite_difference(pot, f[0], atoms=[0, 8]),
}

# The checks each broken layer must fail; it must pass all the others.
REJECTED_BY = {
    "no_envelope": {"continuity"},
    "c0_envelope": {"continuity"},
    # the Hessian is the derivative of the forces autograd sees, which ignore how the detached input moves
    "detached_distance": {"forces_fd", "stress_fd", "hessian_fd"},
    "virial_sign": {"stress_fd"},
    # The batch row index: relabelling, batching, and every check that evaluates a system
    # beside others (an atom or system appended after it) or copies of it.
    "atom_index": {"permutation", "batch", "additivity", "atoms_add", "beyond_cutoff", "supercell"},
    # Absolute positions: every check that moves atoms rigidly.
    "absolute_position": {"translation", "additivity", "atoms_add", "lone_atom", "beyond_cutoff", "wrapping", "supercell"},
    "octahedral_leak": {"rotation"},
    # The batch mean position: everything that translates atoms or combines systems.
    "cross_talk": {"cross_talk", "translation", "batch", "additivity", "lone_atom", "atoms_add", "beyond_cutoff", "wrapping", "supercell"},
    # An intensive readout: every check of extensivity.
    "mean_readout": {"additivity", "atoms_add", "beyond_cutoff", "supercell"},
    "geometry_blind": {"responds"},
    "first_order_filter": {"hessian_fd"},
}

BUILDERS = {
    "no_envelope": lambda: broken_potential(NoEnvelopeSchNet),
    "c0_envelope": lambda: broken_potential(C0EnvelopeSchNet),
    "detached_distance": lambda: broken_potential(DetachedDistanceSchNet),
    "virial_sign": lambda: broken_potential(SchNet, VirialSignPotential),
    "atom_index": lambda: broken_potential(AtomIndexSchNet),
    "absolute_position": lambda: broken_potential(AbsolutePositionSchNet),
    "octahedral_leak": lambda: broken_potential(OctahedralLeakSchNet),
    "cross_talk": lambda: broken_potential(CrossTalkSchNet),
    "mean_readout": lambda: broken_potential(MeanReadoutSchNet),
    "geometry_blind": lambda: broken_potential(SchNet, num_interactions=0),  # species only: no geometry
    "first_order_filter": lambda: broken_potential(FirstOrderFilterSchNet),
}

# The error each rejection names, so that a check does not pass for an unrelated failure.
MESSAGES = {
    "rotation": "under rotation",
    "translation": "under translation",
    "permutation": "under permutation",
    "batch": "in a batch",
    "cross_talk": "depends on atoms of other systems",
    "forces_fd": "forces against finite differences",
    "continuity": "jump",
    "additivity": "separated systems",
    "lone_atom": "lone atom",
    "atoms_add": "separated systems",
    "beyond_cutoff": "beyond the cutoff",
    "wrapping": "after wrapping",
    "supercell": "supercell",
    "stress_fd": "stress against finite differences",
    "responds": "ignores the geometry",
    "hessian_fd": "Hessian against finite differences",
}


@functools.lru_cache(maxsize=None)
def broken(name):
    return BUILDERS[name]()


def test_every_check_has_a_broken_layer_it_rejects():
    assert set().union(*REJECTED_BY.values()) == set(CHECKS)


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_broken_layer_fails_its_checks_and_passes_the_others(name, check, rmd17_frames):
    pot = broken(name)
    if check in REJECTED_BY[name]:
        with pytest.raises(AssertionError, match=MESSAGES[check]):
            CHECKS[check](pot, rmd17_frames)
    else:
        CHECKS[check](pot, rmd17_frames)


def test_missing_envelope_makes_the_energy_jump_and_c0_envelope_the_forces(rmd17_frames):
    data = rmd17_frames[3]
    atom, partner = contract.cutoff_crossings(data, CUTOFF)[0]
    with pytest.raises(AssertionError, match="energy jumps"):
        contract.check_cutoff_crossing(broken("no_envelope"), data, atom, partner)
    with pytest.raises(AssertionError, match="forces jump"):
        contract.check_cutoff_crossing(broken("c0_envelope"), data, atom, partner)


@pytest.mark.parametrize("z", [(1, 1), (6, 8), (8, 7)])
def test_broken_envelopes_fail_for_every_dimer(z):
    with pytest.raises(AssertionError, match="energy jumps"):
        contract.check_cutoff_continuity(broken("no_envelope"), z)
    with pytest.raises(AssertionError, match="forces jump"):
        contract.check_cutoff_continuity(broken("c0_envelope"), z)


@given(data=molecules(ELEMENTS, 2, 20), R=rotations())
def test_octahedral_leak_fails_for_every_drawn_rotation(data, R):
    # Every drawn molecule is connected (bonds under 1.8 Å, within the cutoff) and a Haar-random
    # R is a signed permutation with probability zero: no draw can pass.
    with pytest.raises(AssertionError, match="under rotation"):
        contract.check_rotation(broken("octahedral_leak"), data, R)


def test_octahedral_leak_passes_the_signed_permutations_a_weaker_strategy_drew(rmd17_frames):
    # Why rotations must be Haar-random: a quarter turn about z is in the octahedral group.
    quarter_turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    contract.check_rotation(broken("octahedral_leak"), rmd17_frames[3], quarter_turn)
    contract.check_rotation(broken("octahedral_leak"), rmd17_frames[3], -torch.eye(3, dtype=torch.float64))


@given(data=molecules(ELEMENTS, 2, 8))
def test_broken_layers_fail_for_drawn_molecules(data):
    # Up to 8 atoms, so that finite differences of every atom stay cheap.
    n = data.num_nodes
    with pytest.raises(AssertionError, match="under translation"):
        contract.check_translation(broken("absolute_position"), data, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    if n > 2 or data.z[0] != data.z[1]:  # swapping the atoms of a homonuclear dimer is a symmetry
        with pytest.raises(AssertionError, match="under permutation"):
            contract.check_permutation(broken("atom_index"), data, random_permutation(n, n))
    with pytest.raises(AssertionError, match="forces against finite differences"):
        contract.check_finite_difference_forces(broken("detached_distance"), data)


def test_virial_sign_fails_for_slabs():
    with pytest.raises(AssertionError, match="stress against finite differences"):
        contract.check_stress_finite_difference(broken("virial_sign"), random_slab(3, ELEMENTS, 6))


# ------------------------------------------------------------- charge checks
def _with_charge(data, charge):
    data = _plain(data)
    data.charge = torch.tensor([float(charge)], dtype=torch.float64)
    return data


CHARGE_CHECKS = {
    "conservation": lambda pot, f: contract.check_charge_conservation(pot, _with_charge(f[3], 1)),
    "charge_symmetries": lambda pot, f: contract.check_charge_symmetries(
        pot, _with_charge(f[3], -1), random_rotation(2, reflection=True), random_translation(2), random_permutation(2, f[3].num_nodes)),
    "dipole": lambda pot, f: contract.check_dipole_equivariance(
        pot, _with_charge(f[0], 1), random_rotation(3, reflection=True), random_translation(3)),
}
CHARGE_REJECTED_BY = {
    "raw_charges": {"conservation"},  # no charge-conservation transform
    "positional_charges": {"charge_symmetries", "dipole"},
    "origin_dipole": {"dipole"},
    "sound": set(),  # the unbroken charge potential passes every check
}
CHARGE_BUILDERS = {
    "raw_charges": lambda: broken_charge_potential(conserve=False),
    "positional_charges": lambda: broken_charge_potential(PositionalChargeSchNet),
    "origin_dipole": lambda: broken_charge_potential(potential_cls=OriginDipolePotential),
    "sound": lambda: broken_charge_potential(),
}
CHARGE_MESSAGES = {"conservation": "total charge not conserved", "charge_symmetries": "charges under", "dipole": "dipole under"}


@functools.lru_cache(maxsize=None)
def broken_charges(name):
    return CHARGE_BUILDERS[name]()


def test_every_charge_check_has_a_broken_layer_it_rejects():
    assert set().union(*CHARGE_REJECTED_BY.values()) == set(CHARGE_CHECKS)


@pytest.mark.parametrize("check", sorted(CHARGE_CHECKS))
@pytest.mark.parametrize("name", sorted(CHARGE_BUILDERS))
def test_broken_charge_layer_fails_its_checks_and_passes_the_others(name, check, rmd17_frames):
    pot = broken_charges(name)
    if check in CHARGE_REJECTED_BY[name]:
        with pytest.raises(AssertionError, match=CHARGE_MESSAGES[check]):
            CHARGE_CHECKS[check](pot, rmd17_frames)
    else:
        CHARGE_CHECKS[check](pot, rmd17_frames)
