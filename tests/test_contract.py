"""The contract: every registered architecture, in float64, with tight tolerances.

A new entry of ``equinnp.ARCHITECTURES`` is checked here the moment it is registered.
"""

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.data import Data

import equinnp
from equinnp.testing import contract
from equinnp.testing.strategies import crystals, molecules, random_crystal, random_molecule, rotations

ELEMENTS = [1, 6, 7, 8]
CUTOFF = 4.0
NAMES = sorted(equinnp.ARCHITECTURES)


@functools.lru_cache(maxsize=None)
def tiny_potential(name: str):
    """A small float64 potential with non-trivial weights, scale, shift and reference energies."""
    cls = equinnp.ARCHITECTURES[name]
    torch.manual_seed(0)
    pot = equinnp.build_potential(
        name,
        cutoff=CUTOFF,
        elements=ELEMENTS,
        dtype="float64",
        scale=[0.5, 1.5, 1.2, 0.8],
        shift=[-0.1, 0.2, 0.0, 0.3],
        reference_energies={1: -13.6, 6: -1030.0, 7: -1485.0, 8: -2040.0},
        **cls.tiny,
    )
    with torch.no_grad():  # make zero-initialised biases non-zero so they are exercised too
        for parameter in pot.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return pot.eval()


@pytest.mark.parametrize("name", NAMES)
@given(data=molecules(ELEMENTS, 2, 8), R=rotations())
def test_rotation_and_reflection(name, data, R):
    contract.check_rotation(tiny_potential(name), data, R)


@pytest.mark.parametrize("name", NAMES)
def test_rotation_real_molecules(name, rmd17_frames):
    R = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[0]
    for data in rmd17_frames:
        contract.check_rotation(tiny_potential(name), data, R)


@pytest.mark.parametrize("name", NAMES)
@given(data=molecules(ELEMENTS, 2, 8), shift=st.lists(st.floats(-50, 50), min_size=3, max_size=3))
def test_translation(name, data, shift):
    contract.check_translation(tiny_potential(name), data, torch.tensor(shift, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
@given(data=molecules(ELEMENTS, 2, 8), seed=st.integers(0, 2**16))
def test_permutation(name, data, seed):
    permutation = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(seed))
    contract.check_permutation(tiny_potential(name), data, permutation)


@pytest.mark.parametrize("name", NAMES)
@given(systems=st.lists(molecules(ELEMENTS, 1, 6), min_size=2, max_size=4), crystal=crystals(ELEMENTS))
def test_batch_equals_single(name, systems, crystal):
    contract.check_batch_consistency(tiny_potential(name), systems)
    open_system = systems[0].clone()  # an open system beside a periodic one: give it a cell with pbc False
    open_system.cell = torch.zeros(1, 3, 3, dtype=torch.float64)
    open_system.pbc = torch.zeros(1, 3, dtype=torch.bool)
    contract.check_batch_consistency(tiny_potential(name), [crystal, open_system])


@pytest.mark.parametrize("name", NAMES)
def test_no_force_between_molecules_of_a_batch(name, rmd17_frames):
    unlabelled = [Data(z=d.z, pos=d.pos) for d in (rmd17_frames[0], rmd17_frames[3])]
    contract.check_no_cross_talk(tiny_potential(name), [unlabelled[0], random_molecule(3, ELEMENTS, 5), unlabelled[1]])


@pytest.mark.parametrize("name", NAMES)
def test_forces_match_finite_differences(name, rmd17_frames):
    pot = tiny_potential(name)
    contract.check_responds_to_geometry(pot, rmd17_frames[0])
    contract.check_finite_difference_forces(pot, rmd17_frames[0])
    contract.check_finite_difference_forces(pot, random_molecule(7, ELEMENTS, 6))


@pytest.mark.parametrize("name", NAMES)
def test_continuous_at_cutoff(name):
    contract.check_cutoff_continuity(tiny_potential(name), z=(6, 8))
    contract.check_cutoff_continuity(tiny_potential(name), z=(1, 1))


@pytest.mark.parametrize("name", NAMES)
def test_far_apart_molecules_add(name, rmd17_frames):
    contract.check_separated_additivity(tiny_potential(name), rmd17_frames[0], rmd17_frames[3])


@pytest.mark.parametrize("name", NAMES)
@given(data=crystals(ELEMENTS), R=rotations(), seed=st.integers(0, 2**16))
def test_periodic_rotation_and_wrapping(name, data, R, seed):
    pot = tiny_potential(name)
    contract.check_rotation(pot, data, R)
    images = torch.randint(-2, 3, (data.num_nodes, 3), generator=torch.Generator().manual_seed(seed))
    contract.check_wrapping(pot, data, images)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("length", [3.0, 6.0])  # 3 Å cell: shorter than the cutoff
def test_supercell_and_stress(name, length):
    pot = tiny_potential(name)
    crystal = random_crystal(11, ELEMENTS, 3, length=length)
    contract.check_supercell(pot, crystal, (2, 1, 1))
    contract.check_stress_finite_difference(pot, crystal)
    contract.check_finite_difference_forces(pot, crystal)


# ---------------------------------------------------------------- the checks can fail


def _broken(cls):
    torch.manual_seed(0)
    model = cls(cutoff=CUTOFF, elements=ELEMENTS, **cls.tiny)
    return equinnp.Potential(model, architecture="broken").double().eval()


def test_rotation_check_rejects_a_broken_layer(rmd17_frames):
    from broken_layers import RotationBrokenSchNet

    pot = _broken(RotationBrokenSchNet)
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(AssertionError, match="under rotation"):
        contract.check_rotation(pot, rmd17_frames[0], R)
    contract.check_translation(pot, rmd17_frames[0], torch.ones(3, dtype=torch.float64))  # still translation-invariant


@given(data=molecules(ELEMENTS, 3, 8), R=rotations())
def test_rotation_check_rejects_a_broken_layer_for_random_input(data, R):
    from broken_layers import RotationBrokenSchNet

    if torch.allclose(R.abs(), torch.eye(3, dtype=torch.float64), atol=1e-3):
        return  # diagonal sign flips can leave the leaked f(r) = x + y² + z³ unchanged
    if torch.pdist(data.pos).min() >= CUTOFF:
        return  # no pair within the cutoff: nothing for the layer to leak
    with pytest.raises(AssertionError):
        contract.check_rotation(_broken(RotationBrokenSchNet), data, R)


def test_cross_talk_check_rejects_a_broken_layer(rmd17_frames):
    from broken_layers import CrossTalkSchNet

    with pytest.raises(AssertionError, match="depends on atoms of other systems"):
        contract.check_no_cross_talk(_broken(CrossTalkSchNet), [rmd17_frames[0], rmd17_frames[3]])
