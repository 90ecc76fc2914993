"""The zbl energy term: the bare nuclear repulsion at short range, the switch-off, finite-difference forces."""

import math

import pytest
import torch

from charge_models import fixed_charge_potential
from equinnp.data import from_arrays
from equinnp.postprocessing import ZBLRepulsion
from equinnp.postprocessing.zbl import ZBL_COEFFICIENTS
from equinnp.testing import contract

K_E = 14.399645351950548


def _pair_energy(term, r, z=(6, 8)):
    r = torch.as_tensor(r, dtype=torch.float64).reshape(-1)
    zi, zj = torch.full_like(r, z[0], dtype=torch.long), torch.full_like(r, z[1], dtype=torch.long)
    from ase.data import covalent_radii

    return term.pair_energy(r, zi, zj, torch.full_like(r, covalent_radii[z[0]]), torch.full_like(r, covalent_radii[z[1]]))


def test_the_screening_function_is_normalised():
    assert sum(ZBL_COEFFICIENTS) == pytest.approx(1.0, abs=1e-12)


def test_short_range_limit_is_the_bare_nuclear_repulsion():
    term = ZBLRepulsion([6, 8])
    for r in (1e-5, 1e-4):
        assert float(_pair_energy(term, r)) * r / (K_E * 6 * 8) == pytest.approx(1.0, abs=50 * r / 0.02)
    # at 0.3 Å the screening already removes most of it, by the universal function
    a = 0.46850 / (6**0.23 + 8**0.23)
    x = 0.3 / a
    phi = 0.18175 * math.exp(-3.19980 * x) + 0.50986 * math.exp(-0.94229 * x) + 0.28022 * math.exp(-0.40290 * x) + 0.02817 * math.exp(-0.20162 * x)
    assert float(_pair_energy(term, 0.3)) == pytest.approx(K_E * 48 / 0.3 * phi, rel=1e-12)  # below the switch: S = 1


def test_switch_off_is_smooth_and_complete():
    term = ZBLRepulsion([6, 8])
    off = 0.76 + 0.66  # covalent radii of C and O (ase)
    beyond = _pair_energy(term, torch.tensor([off, off + 0.01, 3.0], dtype=torch.float64))
    assert torch.equal(beyond, torch.zeros(3, dtype=torch.float64))
    for edge in (0.5 * off, off):  # both ends of the switch: value, first and second derivative continuous
        r = torch.tensor([edge - 1e-7, edge + 1e-7], dtype=torch.float64, requires_grad=True)
        energy = _pair_energy(term, r)
        first, = torch.autograd.grad(energy.sum(), r, create_graph=True)
        second, = torch.autograd.grad(first.sum(), r)
        energy, first = energy.detach(), first.detach()
        assert abs(float(energy[1] - energy[0])) < 1e-5 * float(energy.abs().max() + 1)
        assert abs(float(first[1] - first[0])) < 1e-4 * float(first.abs().max() + 1)
        assert abs(float(second[1] - second[0])) < 1e-2 * float(second.abs().max() + 1)
    inside = float(_pair_energy(term, 0.75 * off))
    assert 0 < inside < float(_pair_energy(term, 0.4 * off))


def test_cutoff_is_the_largest_switch_off_radius():
    assert ZBLRepulsion([1, 6, 8]).cutoff == pytest.approx(2 * 0.76)
    assert ZBLRepulsion([1, 6], switch_off=1.5).cutoff == pytest.approx(1.5 * 2 * 0.76)


def test_forces_match_finite_differences():
    pot = fixed_charge_potential([ZBLRepulsion([1, 6, 8])], elements=(1, 6, 8), charges=(0.0, 0.0, 0.0))
    molecule = from_arrays([6, 8, 1, 1], [[0, 0, 0], [1.05, 0, 0], [-0.4, 0.6, 0], [-0.5, -0.7, 0.2]], dtype=torch.float64)
    assert float(pot(molecule).energy_terms["zbl"].detach()) > 1.0
    contract.check_finite_difference_forces(pot, molecule)
    contract.check_rotation(pot, molecule, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64))


def test_float32_network_keeps_the_radii_in_float64():
    term = ZBLRepulsion([1, 6]).to(torch.float32)
    assert term.radii.dtype == torch.float64


def test_clear_errors():
    with pytest.raises(ValueError, match=r"switch_on must be in \[0, 1\), got 1.2"):
        ZBLRepulsion([1], switch_on=1.2)
    with pytest.raises(ValueError, match="switch_off must be positive, got 0"):
        ZBLRepulsion([1], switch_off=0)
