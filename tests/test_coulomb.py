"""The coulomb energy term: analytic pair energies, Madelung constants, Ewald against torch-pme,
damped shifted force against Ewald, and forces and stress by finite differences."""

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from charge_models import fixed_charge_potential
from equinnp.data import from_arrays
from equinnp.neighbors import radius_graph
from equinnp.postprocessing import Coulomb
from equinnp.postprocessing.coulomb_kernels import physnet_shielding
from equinnp.postprocessing.ewald import COULOMB_CONSTANT, ewald_parameters
from equinnp.testing import contract
from equinnp.testing.strategies import random_rotation

NACL_MADELUNG = 1.747564594633
CSCL_MADELUNG = 1.762674773


def _pair(r: float, z=(11, 17)):
    return from_arrays(list(z), [[0.0, 0.0, 0.0], [r * 0.6, -r * 0.8, 0.0]], dtype=torch.float64)


def _energy(pot, data) -> float:
    return float(pot(data, compute_forces=False).energy_terms["coulomb"].sum().detach())


def _smootherstep(y):
    y = min(max(y, 0.0), 1.0)
    return 6 * y**5 - 15 * y**4 + 10 * y**3


def test_coulomb_constant_is_hartree_times_bohr():
    from ase import units

    # e / (4π ε0) in eV·Å from ASE's (CODATA 2014) SI constants
    assert COULOMB_CONSTANT == pytest.approx(units._e / (4 * math.pi * units._eps0) * 1e10, rel=1e-8)
    assert COULOMB_CONSTANT == pytest.approx(14.399645351950548, rel=1e-15)


@pytest.mark.parametrize("r", [0.3, 0.9, 1.7, 3.0, 6.5, 11.0])
def test_two_point_charges(r):
    q = (0.8, -0.3)
    k = 14.399645351950548
    plain = k * q[0] * q[1] / r
    y = r / 2.0
    chi = (1 - _smootherstep(y)) / math.sqrt(r * r + 1) + _smootherstep(y) / r
    x2 = (r / 4.6) ** 2
    f_exp = math.exp(1 - 1 / (1 - x2)) if x2 < 1 else 0.0
    expected = {"none": plain, "physnet": k * q[0] * q[1] * chi, "aimnet2": k * q[0] * q[1] * (1 - f_exp) / r}
    for shielding, switch in (("none", None), ("physnet", 2.0), ("aimnet2", 4.6)):
        pot = fixed_charge_potential([Coulomb(shielding=shielding, switch_radius=switch)], charges=q)
        assert _energy(pot, _pair(r)) == pytest.approx(expected[shielding], rel=1e-12), shielding


def test_physnet_shielding_is_finite_at_zero_and_exactly_plain_beyond_the_switch():
    r = torch.tensor([1e-9, 1e-4], dtype=torch.float64)
    chi = physnet_shielding(r, 5.0) + 1.0 / r
    assert torch.allclose(chi, torch.ones(2, dtype=torch.float64), atol=1e-6)  # chi(0) = 1/sqrt(0 + 1)
    beyond = torch.tensor([5.0, 5.5, 9.0], dtype=torch.float64)
    assert torch.equal(physnet_shielding(beyond, 5.0), torch.zeros(3, dtype=torch.float64))
    # C2 at the switch radius: value, first and second derivative vanish as r -> r_s from below
    r = torch.tensor([5.0 * (1 - 1e-6)], dtype=torch.float64, requires_grad=True)
    value = physnet_shielding(r, 5.0)
    first, = torch.autograd.grad(value.sum(), r, create_graph=True)
    second, = torch.autograd.grad(first.sum(), r)
    assert abs(float(value.detach())) < 1e-15 and abs(float(first.detach())) < 1e-10 and abs(float(second)) < 1e-5
    # inside the switch it is not zero: half-way, (1 - 1/2)(1/sqrt(2.5^2 + 1) - 1/2.5)
    assert float(physnet_shielding(torch.tensor([2.5], dtype=torch.float64), 5.0)) == pytest.approx(0.5 * (7.25**-0.5 - 0.4), rel=1e-12)


def _rock_salt(a: float, R=None):
    """Conventional NaCl cell (8 ions) of edge ``a``: nearest-neighbour distance a/2."""
    base = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    frac = np.concatenate([base, base + [0.5, 0, 0]])
    cell = np.eye(3) * a
    pos = frac @ cell
    if R is not None:
        pos, cell = pos @ R.T, cell @ R.T
    return from_arrays([11] * 4 + [17] * 4, pos, cell=cell, dtype=torch.float64)


def _caesium_chloride(a: float):
    return from_arrays([55, 17], [[0, 0, 0], [a / 2, a / 2, a / 2]], cell=np.eye(3) * a, dtype=torch.float64)


@pytest.mark.parametrize("ewald_cutoff", [6.0, 9.0])
def test_madelung_constant_of_rock_salt(ewald_cutoff):
    pot = fixed_charge_potential([Coulomb(method="ewald", ewald_cutoff=ewald_cutoff, ewald_accuracy=1e-10)])
    R = random_rotation(4, reflection=None).numpy()
    for a, rotation in ((2.0, None), (5.64, R)):
        energy = _energy(pot, _rock_salt(a, rotation))
        madelung = -energy / 4 / COULOMB_CONSTANT * (a / 2)  # per ion pair, in units of k_e / d
        assert madelung == pytest.approx(NACL_MADELUNG, abs=1e-6)


def test_madelung_constant_of_caesium_chloride():
    pot = fixed_charge_potential([Coulomb(method="ewald", ewald_cutoff=8.0, ewald_accuracy=1e-10)], elements=(17, 55),
                                 charges=(-1.0, 1.0))
    a = 4.12
    madelung = -_energy(pot, _caesium_chloride(a)) / COULOMB_CONSTANT * (a * math.sqrt(3) / 2)
    assert madelung == pytest.approx(CSCL_MADELUNG, abs=1e-6)


def test_madelung_check_fails_for_a_wrong_constant():
    # the Madelung test must be able to fail: the uncharged self term alone changes it
    pot = fixed_charge_potential([Coulomb(method="ewald", ewald_cutoff=6.0, ewald_accuracy=1e-3)])
    madelung = -_energy(pot, _rock_salt(2.0)) / 4 / COULOMB_CONSTANT
    assert abs(madelung - NACL_MADELUNG) > 1e-6


def _random_cell(seed: int, n: int, total: float):
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(4.5, 6.0, 3)) + rng.uniform(-0.6, 0.6, (3, 3))
    while True:
        frac = rng.uniform(0, 1, (n, 3))
        data = from_arrays([1] * n, frac @ cell, cell=cell, dtype=torch.float64)
        nl = radius_graph(data.pos, 1.0, cell=data.cell, pbc=data.pbc)
        if nl.edge_index.shape[1] == 0:
            break
    charges = rng.normal(0, 0.6, n)
    charges += (total - charges.sum()) / n
    return data, torch.tensor(charges)


def _torch_pme_energy(data, charges, real_space_cutoff=7.0):
    """torch-pme's Ewald energy with its own converged settings (Gaussian smearing 1 Å, so that
    erfc(r_c / (sqrt(2) 1 Å)) ~ 1e-12 at 7 Å, and a wavelength of 0.25 Å)."""
    torchpme = pytest.importorskip("torchpme")
    nl = radius_graph(data.pos, real_space_cutoff, cell=data.cell, pbc=data.pbc)
    cell = data.cell[0]
    j, i = nl.edge_index
    distances = (data.pos[j] - data.pos[i] + nl.cell_shifts.double() @ cell).norm(dim=-1)
    calculator = torchpme.EwaldCalculator(torchpme.CoulombPotential(smearing=1.0), lr_wavelength=0.25, full_neighbor_list=True)
    potentials = calculator.to(torch.float64)(charges.unsqueeze(-1), cell, data.pos, torch.stack([i, j], dim=1), distances)  # [N, 1]
    return COULOMB_CONSTANT * float((charges.unsqueeze(-1) * potentials).sum())


@pytest.mark.parametrize("seed, total", [(0, 0.0), (1, 0.0), (2, 1.0), (3, -2.0)])
def test_ewald_matches_torch_pme(seed, total):
    data, charges = _random_cell(seed, 7, total)
    ours = _per_atom_charge_energy(data, charges, 6.0, 1e-12)
    reference = _torch_pme_energy(data, charges)
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-9)


def test_ewald_does_not_depend_on_the_choice_of_cell_vectors():
    data, charges = _random_cell(4, 6, 0.5)
    rebased = from_arrays(list(range(1, 7)), data.pos, cell=torch.tensor([[1.0, 1, 0], [0, 1, 0], [0, -1, 1]], dtype=torch.float64) @ data.cell[0],
                          dtype=torch.float64)
    original = from_arrays(list(range(1, 7)), data.pos, cell=data.cell[0], dtype=torch.float64)
    energies = [_per_atom_charge_energy(d, charges, 7.0, 1e-12) for d in (original, rebased)]
    assert energies[0] == pytest.approx(energies[1], rel=1e-10)


def _per_atom_charge_energy(data, charges, ewald_cutoff, accuracy):
    """Coulomb energy of ``data`` with charge ``charges[k]`` on atom k (each atom its own element)."""
    n = data.num_nodes
    elements = list(range(1, n + 1))
    pot = fixed_charge_potential([Coulomb(method="ewald", ewald_cutoff=ewald_cutoff, ewald_accuracy=accuracy)],
                                 elements=elements, charges=charges.tolist())
    relabelled = from_arrays(elements, data.pos, cell=data.cell[0], dtype=torch.float64)
    return _energy(pot, relabelled)


def test_charged_cell_energy_does_not_depend_on_the_splitting():
    data, charges = _random_cell(5, 6, 1.5)
    energies = [_per_atom_charge_energy(data, charges, cutoff, 1e-10) for cutoff in (5.0, 7.0, 9.0)]
    assert max(energies) - min(energies) < 1e-7 * abs(energies[0])
    # without the neutralising background the energy would move by pi Q^2 / (2 V) (1/alpha_1^2 - 1/alpha_2^2)
    volume = float(torch.linalg.det(data.cell[0]).abs())
    (a1, _), (a2, _) = ewald_parameters(5.0, 1e-10), ewald_parameters(9.0, 1e-10)
    assert COULOMB_CONSTANT * math.pi * 1.5**2 / (2 * volume) * abs(1 / a1**2 - 1 / a2**2) > 1e-3


def test_damped_shifted_force_against_ewald():
    """DSF (alpha 0.2 /Å, 15 Å) on a 64-ion rock-salt supercell: its error, stated in docs/physics.md."""
    a = 5.64
    cell = _rock_salt(a)
    pos = torch.cat([cell.pos + torch.tensor([i, j, k], dtype=torch.float64) * a for i in range(2) for j in range(2) for k in range(2)])
    z = cell.z.repeat(8)
    supercell = from_arrays(z, pos, cell=np.eye(3) * 2 * a, dtype=torch.float64)
    ewald = _energy(fixed_charge_potential([Coulomb(method="ewald", ewald_cutoff=9.0, ewald_accuracy=1e-10)]), supercell)
    dsf = _energy(fixed_charge_potential([Coulomb(method="dsf")]), supercell)
    per_ion = abs(dsf - ewald) / 64
    assert per_ion < 2e-3  # eV per ion; measured 1.2e-4 (2.6e-5 of the total)
    assert abs(dsf - ewald) / abs(ewald) < 1e-4


def _charged_system_potential(dtype="float64"):
    import equinnp

    torch.manual_seed(3)
    pot = equinnp.build_potential(
        "schnet", cutoff=3.0, elements=[1, 6, 8], hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=8,
        charge_head=True, charge_embedding=True, dtype=dtype,
        postprocessing={"transforms": ["scale_shift", "weighted_charges"], "energy_terms": [
            "reference_energies", {"name": "coulomb", "shielding": "physnet", "switch_radius": 1.5, "method": "ewald",
                                   "ewald_cutoff": 5.0, "ewald_accuracy": 1e-8}, "zbl",
            {"name": "d3", "functional": "pbe", "cutoff": 6.0, "cn_cutoff": 5.0, "s9": 1.0, "atm_cutoff": 4.0}]},
    )
    with torch.no_grad():
        for parameter in pot.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return pot.eval()


def test_forces_and_stress_match_finite_differences_with_every_term_on():
    pot = _charged_system_potential()
    rng = np.random.default_rng(7)
    cell = np.diag([4.3, 4.8, 5.1]) + rng.uniform(-0.4, 0.4, (3, 3))
    frac = np.array([[0.1, 0.1, 0.1], [0.35, 0.2, 0.15], [0.6, 0.55, 0.4], [0.2, 0.7, 0.8], [0.8, 0.3, 0.65]])
    crystal = from_arrays([6, 8, 1, 1, 8], frac @ cell, cell=cell, charge=1.0, dtype=torch.float64)
    out = pot(crystal)
    for term in ("coulomb", "zbl", "d3"):
        assert float(out.energy_terms[term].detach().abs().sum()) > 1e-3, term
    d3 = next(term for term in pot.energy_terms if term.name == "d3")
    assert d3.s9 == 1.0 and d3.atm_cutoff == 4.0  # the three-body term is on
    from equinnp.postprocessing import D3Dispersion

    three_body = [float(fixed_charge_potential([D3Dispersion([1, 6, 8], **{**d3.config(), "s9": s9})], elements=(1, 6, 8),
                                               charges=(0.0, 0.0, 0.0))(crystal, compute_forces=False).energy.detach())
                  for s9 in (0.0, 1.0)]
    assert abs(three_body[1] - three_body[0]) > 1e-6, three_body
    contract.check_finite_difference_forces(pot, crystal)
    contract.check_stress_finite_difference(pot, crystal)
    molecule = from_arrays([6, 8, 1, 1], [[0, 0, 0], [1.2, 0, 0], [-0.6, 0.9, 0], [-0.5, -0.9, 0.2]], charge=-1.0, dtype=torch.float64)
    contract.check_finite_difference_forces(pot, molecule)


def test_aimnet2_split_and_dsf_forces_match_finite_differences():
    for coulomb in (Coulomb(shielding="aimnet2", method="direct"), Coulomb(shielding="physnet", switch_radius=2.5, method="dsf", dsf_cutoff=6.0)):
        pot = fixed_charge_potential([coulomb], elements=(1, 6, 8), charges=(0.3, -0.4, -0.5))
        molecule = from_arrays([6, 8, 1, 1, 8], [[0, 0, 0], [1.2, 0, 0], [-0.6, 0.9, 0], [-0.5, -0.9, 0.2], [3.5, 1.0, -0.5]],
                               dtype=torch.float64)
        contract.check_finite_difference_forces(pot, molecule)


def test_batch_of_open_and_periodic_systems_equals_single():
    pot = _charged_system_potential()
    crystal = from_arrays([6, 8, 1], [[0.2, 0.1, 0.3], [1.5, 0.2, 0.1], [0.4, 2.0, 1.9]], cell=np.eye(3) * 4.2, charge=-1.0, dtype=torch.float64)
    molecule = from_arrays([6, 8], [[0, 0, 0], [1.2, 0, 0]], charge=1.0, dtype=torch.float64)
    molecule.cell, molecule.pbc = torch.zeros(1, 3, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.bool)
    contract.check_batch_consistency(pot, [crystal, molecule, crystal])


def test_clear_errors():
    pot = fixed_charge_potential([Coulomb(method="direct")])
    with pytest.raises(ValueError, match="method='direct' sums the pairs of open systems only"):
        pot(_rock_salt(3.0))
    slab = _rock_salt(3.0)
    slab.pbc = torch.tensor([[True, True, False]])
    with pytest.raises(ValueError, match=r"periodic in all three directions, got pbc=\[True, True, False\]"):
        fixed_charge_potential([Coulomb(method="ewald", ewald_cutoff=4.0)])(slab)
    with pytest.raises(ValueError, match="shielding must be one of"):
        Coulomb(shielding="yukawa")
    with pytest.raises(ValueError, match="Ewald accuracy must be between 0 and 1, got 2"):
        Coulomb(method="ewald", ewald_accuracy=2)
    import equinnp

    plain = equinnp.build_potential("schnet", cutoff=3.0, elements=[1, 8], hidden_channels=8, num_filters=8, num_interactions=1,
                                    num_gaussians=4, postprocessing={"energy_terms": ["reference_energies", "coulomb"]})
    with pytest.raises(ValueError, match="coulomb energy term needs partial charges: build the model with charge_head=True"):
        plain(Data(z=torch.tensor([1, 8]), pos=torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])))
