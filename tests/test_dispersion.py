"""The d3 energy term against simple-dftd3 (golden numbers, ``benchmarks/peers/export_dftd3_golden.py``)
and tad-dftd3 (live), with finite-difference forces and stress."""

import os

import numpy as np
import pytest
import torch

pytest.importorskip("tad_dftd3", reason="the d3 term reads its tables from tad-dftd3 (pip install 'equinnp[d3]')")

from charge_models import fixed_charge_potential  # noqa: E402
from equinnp.data import from_arrays  # noqa: E402
from equinnp.postprocessing import D3Dispersion  # noqa: E402
from equinnp.postprocessing.dispersion import BOHR, HARTREE  # noqa: E402
from equinnp.testing import contract  # noqa: E402

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "data", "dftd3_golden.npz"))
WB97M = dict(s8=0.3908, a1=0.5660, a2=3.1280, smoothing=0.0)  # sharp cutoffs, as the reference codes


def _d3_potential(elements, **options):
    elements = sorted(set(int(z) for z in elements))
    return fixed_charge_potential([D3Dispersion(elements, **options)], elements=elements, charges=[0.0] * len(elements))


@pytest.mark.parametrize("molecule", ["ethanol", "aspirin"])
@pytest.mark.parametrize("parameters", ["wb97m", "pbe0"])
def test_molecules_match_simple_dftd3(molecule, parameters):
    z, pos = GOLDEN[f"{molecule}_z"], GOLDEN[f"{molecule}_pos"]
    options = WB97M if parameters == "wb97m" else {"functional": "pbe0", "smoothing": 0.0}
    out = _d3_potential(z, **options)(from_arrays(z, pos, dtype=torch.float64))
    assert float(out.energy.detach()) == pytest.approx(float(GOLDEN[f"{molecule}_{parameters}_energy"]), rel=1e-9)
    assert np.abs(out.forces.detach().numpy() - GOLDEN[f"{molecule}_{parameters}_forces"]).max() < 1e-9


def test_periodic_cell_matches_simple_dftd3():
    z, pos, cell = GOLDEN["carbon_z"], GOLDEN["carbon_pos"], GOLDEN["carbon_cell"]
    crystal = from_arrays(z, pos, cell=cell, dtype=torch.float64)
    out = _d3_potential(z, **WB97M)(crystal)
    # measured: 8.8e-10 eV of 0.674 eV (1.3e-9 relative), unchanged by moving either cutoff by 1e-5 of itself
    # (so not a pair at a cutoff); the molecules agree to 1e-12
    assert float(out.energy.detach()) == pytest.approx(float(GOLDEN["carbon_energy"]), rel=5e-9)
    assert np.abs(out.forces.detach().numpy() - GOLDEN["carbon_forces"]).max() < 1e-8
    volume = abs(np.linalg.det(cell))
    assert np.abs(out.stress.detach().numpy()[0] * volume - GOLDEN["carbon_strain_derivative"]).max() < 1e-7


def test_parity_fails_for_a_changed_parameter():
    z, pos = GOLDEN["ethanol_z"], GOLDEN["ethanol_pos"]
    changed = _d3_potential(z, **{**WB97M, "a2": 3.1281})(from_arrays(z, pos, dtype=torch.float64))
    assert abs(float(changed.energy.detach()) / float(GOLDEN["ethanol_wb97m_energy"]) - 1) > 1e-6


def test_matches_tad_dftd3_on_random_molecules():
    import tad_dftd3

    from equinnp.testing.strategies import random_molecule

    params = {"s6": 1.0, "s8": 0.7875, "a1": 0.4289, "a2": 4.4407}  # PBE
    for seed in range(3):
        data = random_molecule(seed, [1, 6, 7, 8, 16], 12)
        ours = float(_d3_potential(data.z.tolist(), **params, smoothing=0.0)(data, compute_forces=False).energy.detach())
        reference = tad_dftd3.dftd3(data.z, data.pos.double() / BOHR, {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()})
        assert ours == pytest.approx(float(reference.sum()) * HARTREE, rel=1e-10)


def test_forces_and_stress_match_finite_differences_and_the_default_switch_is_smooth():
    from equinnp.testing.strategies import random_crystal

    crystal = random_crystal(3, [1, 6, 8], 4, length=4.0)
    pot = _d3_potential([1, 6, 8], functional="b3lyp", cutoff=8.0, cn_cutoff=6.0)  # many pairs in the switch regions
    contract.check_finite_difference_forces(pot, crystal)
    contract.check_stress_finite_difference(pot, crystal)
    sharp = _d3_potential([1, 6, 8], functional="b3lyp", cutoff=8.0, cn_cutoff=6.0, smoothing=0.0)
    with pytest.raises(AssertionError, match="forces against finite differences"):
        contract.check_finite_difference_forces(sharp, crystal)


def test_default_smoothing_changes_molecules_by_nothing_and_the_carbon_cell_by_little():
    z, pos = GOLDEN["aspirin_z"], GOLDEN["aspirin_pos"]
    smooth = _d3_potential(z, functional="wb97m")(from_arrays(z, pos, dtype=torch.float64), compute_forces=False)
    assert float(smooth.energy.detach()) == pytest.approx(float(GOLDEN["aspirin_wb97m_energy"]), rel=1e-9)
    z, pos, cell = GOLDEN["carbon_z"], GOLDEN["carbon_pos"], GOLDEN["carbon_cell"]
    crystal = from_arrays(z, pos, cell=cell, dtype=torch.float64)
    smooth = float(_d3_potential(z, functional="wb97m")(crystal, compute_forces=False).energy.detach())
    assert abs(smooth / float(GOLDEN["carbon_energy"]) - 1) < 1e-4  # measured 3.6e-5 (docs/physics.md)


def test_posthoc_switch_adds_d3_only_in_evaluation_mode():
    z, pos = GOLDEN["ethanol_z"], GOLDEN["ethanol_pos"]
    pot = _d3_potential(z, **WB97M, during_training=False)
    data = from_arrays(z, pos, dtype=torch.float64)
    assert float(pot.train()(data, compute_forces=False).energy.detach()) == 0.0
    assert float(pot.eval()(data, compute_forces=False).energy.detach()) == pytest.approx(float(GOLDEN["ethanol_wb97m_energy"]), rel=1e-9)
    always = _d3_potential(z, **WB97M).train()
    assert float(always(data, compute_forces=False).energy.detach()) == pytest.approx(float(GOLDEN["ethanol_wb97m_energy"]), rel=1e-9)


def test_rebuilt_from_its_config():
    term = D3Dispersion([1, 6, 8], functional="wb97m", s8=0.4, s9=1.0, atm_cutoff=9.0)
    again = D3Dispersion([1, 6, 8], **term.config())
    assert again.params == term.params == {"s6": 1.0, "s8": 0.4, "a1": 0.5660, "a2": 3.1280}
    assert (again.s9, again.alp, again.atm_cutoff) == (1.0, 14.0, 9.0)


def test_clear_errors():
    for bad in (-1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match=r"s9 \(the three-body scaling\) must be a finite number >= 0 .*got s9="):
            D3Dispersion([1, 6], functional="pbe", s9=bad)
    with pytest.raises(ValueError, match=r"alp \(the three-body damping exponent\) must be a positive number, got alp=0"):
        D3Dispersion([1, 6], functional="pbe", s9=1.0, alp=0)
    with pytest.raises(ValueError, match="atm_cutoff must be positive, got atm_cutoff=-1"):
        D3Dispersion([1, 6], functional="pbe", s9=1.0, atm_cutoff=-1)
    with pytest.raises(ValueError, match=r"give functional= or the BJ parameters \['s8', 'a1', 'a2'\]"):
        D3Dispersion([1, 6])
    with pytest.raises(ValueError, match="no D3\\(BJ\\) parameters for functional 'not-a-functional'"):
        D3Dispersion([1, 6], functional="not-a-functional")


# ------------------------------------------------------------------ three-body (ATM) term, s9 = 1
ATM_CELL_CUTOFF = float(GOLDEN["atm_cell_cutoff_bohr"]) * BOHR  # 15 bohr (Å), as in the golden export


@pytest.mark.parametrize("molecule", ["ethanol", "aspirin"])
def test_three_body_molecules_match_simple_dftd3(molecule):
    z, pos = GOLDEN[f"{molecule}_z"], GOLDEN[f"{molecule}_pos"]
    out = _d3_potential(z, **WB97M, s9=1.0)(from_arrays(z, pos, dtype=torch.float64))
    energy, reference = float(out.energy.detach()), float(GOLDEN[f"{molecule}_atm_energy"])
    assert energy == pytest.approx(reference, rel=1e-9)  # measured 2.2e-10 (ethanol), 9.3e-11 (aspirin)
    # the three-body part alone (0.08 and 0.56 meV): measured 5.6e-7 and 1.5e-7 relative apart (docs/physics.md)
    two_body = float(GOLDEN[f"{molecule}_wb97m_energy"])
    assert energy - two_body == pytest.approx(reference - two_body, rel=2e-6)
    assert np.abs(out.forces.detach().numpy() - GOLDEN[f"{molecule}_atm_forces"]).max() < 1e-9  # measured 4e-10


def test_three_body_periodic_cell_matches_simple_dftd3():
    z, pos, cell = GOLDEN["carbon_z"], GOLDEN["carbon_pos"], GOLDEN["carbon_cell"]
    crystal = from_arrays(z, pos, cell=cell, dtype=torch.float64)
    out = _d3_potential(z, **WB97M, s9=1.0, atm_cutoff=ATM_CELL_CUTOFF)(crystal)
    reference = float(GOLDEN["carbon_atm_energy"])
    assert float(out.energy.detach()) == pytest.approx(reference, rel=5e-9)  # measured 1.9e-9
    three_body = reference - float(GOLDEN["carbon_energy"])  # +32 meV
    assert float(out.energy.detach()) - float(GOLDEN["carbon_energy"]) == pytest.approx(three_body, rel=1e-6)
    assert np.abs(out.forces.detach().numpy() - GOLDEN["carbon_atm_forces"]).max() < 1e-9  # measured 2.1e-11
    volume = abs(np.linalg.det(cell))
    assert np.abs(out.stress.detach().numpy()[0] * volume - GOLDEN["carbon_atm_strain_derivative"]).max() < 1e-7  # measured 1.7e-8


def test_three_body_parity_fails_for_a_changed_constant():
    z, pos = GOLDEN["aspirin_z"], GOLDEN["aspirin_pos"]
    data = from_arrays(z, pos, dtype=torch.float64)
    reference = float(GOLDEN["aspirin_atm_energy"]) - float(GOLDEN["aspirin_wb97m_energy"])
    for changed in ({"s9": 1.0, "alp": 14.01}, {"s9": 1.001}):
        energy = float(_d3_potential(z, **WB97M, **changed)(data, compute_forces=False).energy.detach())
        assert abs((energy - float(GOLDEN["aspirin_wb97m_energy"])) / reference - 1) > 1e-5, changed


def test_three_body_by_hand_for_an_equilateral_triangle():
    """Three neon atoms far apart (undamped, C6 at the isolated-atom reference): E = C9 (3/8 + 1) / r^9 with
    C9 = C6^(3/2), so the ATM term is repulsive; the two-body term is switched off (s6 = s8 = 0)."""
    side = 6.0  # Å
    pos = np.array([[0.0, 0.0, 0.0], [side, 0.0, 0.0], [side / 2, side * np.sqrt(3) / 2, 0.0]])
    term = D3Dispersion([10], s6=0.0, s8=0.0, a1=0.4, a2=4.0, s9=1.0, smoothing=0.0)
    pot = fixed_charge_potential([term], elements=[10], charges=[0.0])
    energy = float(pot(from_arrays([10, 10, 10], pos, dtype=torch.float64), compute_forces=False).energy.detach())
    cn = term.coordination_numbers(torch.zeros(6, dtype=torch.long), torch.tensor([0, 0, 1, 1, 2, 2]),
                                   torch.tensor([1, 2, 0, 2, 0, 1]), torch.full((6,), side / BOHR, dtype=torch.float64), 3)
    weights = term.reference_weights(torch.zeros(3, dtype=torch.long), cn)
    c6 = float(weights[0] @ term.ref_c6[0, 0] @ weights[0])  # hartree bohr^6
    r = side / BOHR
    r0 = 4.0 / 3.0 * float(term.rvdw[0, 0])
    damping = 1.0 / (1.0 + 6.0 * (r0 / r) ** 16)
    by_hand = c6**1.5 * (3.0 * 0.5**3 + 1.0) / r**9 * damping * HARTREE
    assert energy > 0
    assert energy == pytest.approx(by_hand, rel=1e-12)


def test_three_body_forces_and_stress_match_finite_differences():
    from equinnp.testing.strategies import random_crystal

    crystal = random_crystal(5, [1, 6, 8], 4, length=4.0)  # triangles through periodic images, many in the switch
    pot = _d3_potential([1, 6, 8], functional="b3lyp", s9=1.0, cutoff=4.0, cn_cutoff=3.5, atm_cutoff=3.5)
    contract.check_finite_difference_forces(pot, crystal)
    contract.check_stress_finite_difference(pot, crystal)


def test_three_body_edge_pairs_are_each_unordered_pair_once_in_any_chunking():
    from equinnp.postprocessing.dispersion_atm import chunks_of_edge_pairs, edge_pairs_in_chunk, plan_edge_pairs

    centre = torch.tensor([2, 0, 2, 1, 2, 0, 2, 3, 0])  # degrees 3, 1, 4, 1
    expected = {(e1, e2) for e1 in range(9) for e2 in range(9) if e1 < e2 and centre[e1] == centre[e2]}
    plan = plan_edge_pairs(centre, 5)
    assert plan.total == len(expected) == 3 + 6
    for chunk_size in (1, 2, 4, 100):
        chunks = chunks_of_edge_pairs(plan, chunk_size)
        found = [tuple(sorted(p)) for a, b in chunks for p in zip(*[t.tolist() for t in edge_pairs_in_chunk(plan, a, b)])]
        assert sorted(found) == sorted(expected), chunk_size
        assert max(b - a for a, b in chunks) <= chunk_size + 3  # at most chunk_size + largest degree - 1 pairs
        assert (len(chunks) > 1) == (chunk_size < plan.total), chunk_size


def test_three_body_in_many_chunks_equals_one_chunk_with_forces_stress_and_hessian():
    from equinnp.testing.strategies import random_crystal

    crystal = random_crystal(5, [1, 6, 8], 4, length=4.0)  # triangles through periodic images
    options = dict(functional="b3lyp", s9=1.0, cutoff=4.0, cn_cutoff=3.5, atm_cutoff=3.5)
    one, many = (_d3_potential([1, 6, 8], **options, atm_chunk_size=size) for size in (10**9, 50))
    calls = {}
    for name, pot in (("one", one), ("many", many)):
        term = pot.energy_terms[-1]
        chunk = term._triangles
        term._triangles = lambda *args, _chunk=chunk, _name=name: calls.update({_name: calls.get(_name, 0) + 1}) or _chunk(*args)
    out_one, out_many = one(crystal), many(crystal)
    # one chunk: evaluated once; many: each chunk in forward and again (checkpoint) in backward
    assert calls["one"] == 1 and calls["many"] > 10 and calls["many"] % 2 == 0, calls
    assert torch.allclose(out_many.energy_terms["d3"], out_one.energy_terms["d3"], rtol=1e-12, atol=0)  # per atom
    assert float(out_one.energy.detach()) == pytest.approx(float(out_many.energy.detach()), rel=1e-13)
    assert torch.allclose(out_one.forces, out_many.forces, rtol=0, atol=1e-12 * float(out_one.forces.detach().abs().max()))
    assert torch.allclose(out_one.stress, out_many.stress, rtol=0, atol=1e-12 * float(out_one.stress.detach().abs().max()))
    hessian_one, hessian_many = one.hessian(crystal), many.hessian(crystal)  # double backward through the checkpoints
    assert float(hessian_one.abs().max()) > 1e-3
    assert torch.allclose(hessian_one, hessian_many, rtol=0, atol=1e-11 * float(hessian_one.abs().max()))
    with torch.no_grad():  # no checkpoint without gradients
        energy = float(many(crystal, compute_forces=False).energy)
    assert energy == pytest.approx(float(out_one.energy.detach()), rel=1e-13)


def test_three_body_chunk_size_is_checked_and_kept_in_the_config():
    for bad in (0, -5, 2.5, True, "8"):
        with pytest.raises(ValueError, match=r"atm_chunk_size \(edge pairs per chunk of the three-body term\) must be an "
                                             r"integer >= 1, got atm_chunk_size="):
            D3Dispersion([1, 6], functional="pbe", s9=1.0, atm_chunk_size=bad)
    term = D3Dispersion([1, 6], functional="pbe", s9=1.0, atm_chunk_size=1000)
    assert D3Dispersion([1, 6], **term.config()).atm_chunk_size == 1000
