"""Tabulated radial networks (``Potential.tabulate_radial``): force error against the network,
smoothness, rebuild on weight changes, training mode, the contract, save/load and the ASE calculator."""

import copy

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.data import from_arrays
from equinnp.nn import hermite_table, tabulation
from equinnp.testing import contract
from equinnp.testing.strategies import random_rotation

TABULATED = ["schnet", "painn", "mace", "tensornet"]
#: Small sizes of each tabulated architecture, for the tests that train.
SMALL = {"schnet": dict(hidden_channels=16, num_interactions=2), "painn": dict(hidden_channels=16, num_interactions=2),
         "mace": dict(hidden_irreps="16x0e+16x1o", max_ell=2, num_interactions=2, radial_mlp=[16, 16]),
         "tensornet": dict(hidden_channels=16, num_layers=2, num_rbf=8)}
ELEMENTS = [1, 6, 7, 8]
BOUND = 1e-6  # relative force error of a tabulated potential against its network


def potential(name, dtype="float64", seed=0, **hyper):
    """A full-size potential (the architecture's defaults) with weights moved off their initialisation."""
    torch.manual_seed(seed)
    if name == "mace":
        hyper.setdefault("avg_num_neighbors", 8.0)
    pot = equinnp.build_potential(name, elements=ELEMENTS, dtype="float64", **hyper)
    with torch.no_grad():
        for parameter in pot.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    if dtype == "float32":
        state = pot.state_dict()
        pot = equinnp.build_potential(name, elements=ELEMENTS, dtype="float32", **hyper)
        pot.load_state_dict(state)
    return pot.eval()


def tabulated(pot, **options):
    return copy.deepcopy(pot).tabulate_radial(**options)


def relative_force_error(ours, reference, batch):
    f, f_ref = ours(batch).forces, reference(batch).forces
    return float((f.double() - f_ref.double()).abs().max() / f_ref.double().abs().max())


@pytest.fixture(scope="module")
def molecules(rmd17_frames):
    return Batch.from_data_list(rmd17_frames)


@pytest.mark.parametrize("name", TABULATED)
def test_force_error_below_bound_float64(name, molecules):
    network = potential(name)
    table = tabulated(network)
    error = relative_force_error(table, network, molecules)
    assert error <= BOUND, f"{name}: tabulated forces deviate by {error:.2e} (relative) from the network's"
    assert error > 0  # the table is in use
    measured = table.model.tabulation.current.error
    assert max(measured.values()) <= 1e-7, measured
    energy_error = (table(molecules).energy - network(molecules).energy).abs().max()
    assert energy_error <= BOUND * network(molecules).energy.abs().max()


@pytest.mark.parametrize("name", TABULATED)
def test_force_error_float32(name, molecules):
    """In float32 the table (built in float64, rounded) is as close to the float64 network as the float32 network."""
    exact = potential(name)
    network32 = potential(name, "float32")
    table32 = tabulated(network32)
    rounding = relative_force_error(network32, exact, molecules)
    error = relative_force_error(table32, exact, molecules)
    assert error <= max(3 * rounding, 1e-5), f"{name}: float32 table {error:.2e}, float32 network {rounding:.2e}"


@pytest.mark.parametrize("name", TABULATED)
def test_coarse_grid_exceeds_the_bound(name, molecules):
    """The bound test can fail: a cubic table on a 0.2 Å grid (8-16 times coarser than the default's) does."""
    network = potential(name)
    coarse = tabulated(network, spacing=0.2, degree=3)
    assert relative_force_error(coarse, network, molecules) > BOUND
    assert coarse.model.tabulation.table(coarse.model).error["derivative"] > 1e-7


def _knot_crossing_jump(pot, knot: float, delta: float = 1e-7):
    """Jump of the force on a C-O pair as its distance crosses ``knot``: the step across minus the
    mean of the steps on either side (cancels the smooth variation to O(delta^2))."""
    forces = []
    for r in (knot - 3 * delta, knot - delta, knot + delta, knot + 3 * delta):
        data = from_arrays([6, 8], np.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]]), dtype=torch.float64)
        forces.append(pot(data).forces[1, 0])
    f0, f1, f2, f3 = forces
    return float(abs((f2 - f1) - 0.5 * ((f1 - f0) + (f3 - f2))))


@pytest.mark.parametrize("name", TABULATED)
def test_forces_continuous_across_knots(name, monkeypatch):
    """Forces are continuous where the distance crosses a knot; a C0 (piecewise linear) table is not."""
    network = potential(name)
    table = tabulated(network, spacing=0.05, degree=3)
    interpolant = table.model.tabulation.table(table.model).interpolant
    knot = interpolant.start + 30 * interpolant.spacing  # 1.55 Å
    scale = float(network(from_arrays([6, 8], np.array([[0.0, 0, 0], [knot, 0, 0]]), dtype=torch.float64)).forces.abs().max())
    # a C1 energy: the force is continuous, its slope may step (a residue of O(delta))
    assert _knot_crossing_jump(table, knot) <= max(10 * _knot_crossing_jump(network, knot), 1e-9 * scale)

    linear = [[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    monkeypatch.setitem(hermite_table.HERMITE_BASIS, 3, linear)
    table.model.tabulation.current = None  # rebuilt with the linear basis
    jump = _knot_crossing_jump(table, knot)
    assert jump > 1e-4 * scale, jump / scale


@pytest.mark.parametrize("name", TABULATED)
def test_rebuilt_after_an_optimizer_step(name, rmd17_frames):
    pot = potential(name, **SMALL[name]).tabulate_radial()
    batch = Batch.from_data_list(rmd17_frames[:2])
    before = pot(batch).forces
    assert pot.model.tabulation.builds == 1
    pot.train()
    optimizer = torch.optim.SGD(pot.parameters(), lr=1e-2)
    out = pot(batch)
    loss = out.energy.square().sum() + out.forces.square().sum()
    loss.backward()
    assert pot.model.tabulation.builds == 1  # training mode runs the network
    radial = pot.model.radial_modules()
    gradients = [p.grad for module in radial for p in module.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in gradients), "weights of the radial network get no gradient in training"
    optimizer.step()
    pot.eval()
    after = pot(batch).forces
    assert pot.model.tabulation.builds == 2
    network = copy.deepcopy(pot).tabulate_radial(False)
    expected = network(batch).forces
    assert (after - before).abs().max() > 1e3 * (after - expected).abs().max()
    assert (after - expected).abs().max() <= BOUND * expected.abs().max()
    pot(batch)
    assert pot.model.tabulation.builds == 2  # unchanged weights: the same table


def test_rebuilt_after_load_state_dict_and_dtype_change(rmd17_frames):
    pot = potential("schnet", hidden_channels=16, num_interactions=2).tabulate_radial()
    other = potential("schnet", seed=1, hidden_channels=16, num_interactions=2)
    data = rmd17_frames[0]
    pot(data)
    pot.load_state_dict(other.state_dict())
    assert relative_force_error(pot, other, data) <= BOUND
    assert pot.model.tabulation.builds == 2
    pot.float()
    assert pot(data).forces.dtype == torch.float32
    assert pot.model.tabulation.current.interpolant.coefficients.dtype == torch.float32
    assert pot.model.tabulation.builds == 3
    assert relative_force_error(pot, other, data) <= 1e-5


@pytest.mark.parametrize("name", TABULATED)
def test_contract_on_a_tabulated_model(name, rmd17_frames):
    from test_contract import tiny_potential

    pot = copy.deepcopy(tiny_potential(name, "float64")).tabulate_radial()
    for k, data in enumerate(rmd17_frames[:3]):
        contract.check_rotation(pot, data, random_rotation(k, reflection=None))
        contract.check_translation(pot, data, torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64))
        contract.check_permutation(pot, data, torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(k)))
    contract.check_batch_consistency(pot, rmd17_frames[:3])
    contract.check_no_cross_talk(pot, rmd17_frames[:2])
    contract.check_finite_difference_forces(pot, rmd17_frames[0])
    contract.check_cutoff_continuity(pot)
    contract.check_isolated_atoms_add(pot)
    assert pot.model.tabulation.builds == 1


def test_save_and_load_rebuild_the_table(tmp_path, rmd17_frames):
    pot = tabulated(potential("painn", hidden_channels=16, num_interactions=2))
    data = rmd17_frames[3]
    expected = pot(data).forces
    pot.save(tmp_path / "model.pt")
    assert set(torch.load(tmp_path / "model.pt")["state_dict"]) == set(pot.state_dict())
    loaded = equinnp.load_potential(tmp_path / "model.pt").eval()
    assert getattr(loaded.model, "tabulation", None) is None  # an inference option, not saved
    loaded.tabulate_radial()
    torch.testing.assert_close(loaded(data).forces, expected, rtol=0, atol=0)


def test_ase_calculator_with_tabulation(rmd17_frames):
    from ase import Atoms

    from equinnp.calculators import EquinnpCalculator

    network = potential("schnet", hidden_channels=32, num_interactions=3)
    data = rmd17_frames[0]
    atoms = Atoms(numbers=data.z.numpy(), positions=data.pos.numpy())
    atoms.calc = EquinnpCalculator(copy.deepcopy(network), tabulate=True)
    forces = atoms.get_forces()
    assert atoms.calc.potential.model.tabulation.builds == 1
    reference = network(data).forces.numpy()
    assert np.abs(forces - reference).max() <= BOUND * np.abs(reference).max()


def test_hessian_of_a_tabulated_model(rmd17_frames):
    network = potential("painn", hidden_channels=16, num_interactions=2)
    table = tabulated(network)
    data = rmd17_frames[0]
    h_table, h_network = table.hessian(data), network.hessian(data)
    assert (h_table - h_network).abs().max() <= 1e-4 * h_network.abs().max()


def test_bad_options(monkeypatch):
    pot = potential("painn", hidden_channels=16, num_interactions=2)
    with pytest.raises(ValueError, match="spacing must be positive.*-0.1"):
        pot.tabulate_radial(spacing=-0.1)
    with pytest.raises(ValueError, match="degree must be 3.*or 5.*got 4"):
        pot.tabulate_radial(degree=4)
    with pytest.raises(ValueError, match="tolerance must be positive.*0"):
        pot.tabulate_radial(tolerance=0)
    dimenet = equinnp.build_potential("dimenetpp", elements=ELEMENTS, **equinnp.ARCHITECTURES["dimenetpp"].tiny)
    with pytest.raises(TypeError, match="DimeNetPlusPlus has no radial network that equinnp can tabulate"):
        dimenet.tabulate_radial()
    monkeypatch.setattr(tabulation, "MAX_TABLE_ENTRIES", 100_000)
    tight = potential("schnet", hidden_channels=16, num_interactions=2).tabulate_radial(tolerance=1e-30)
    with pytest.raises(ValueError, match="needs a spacing below .* pass a larger tolerance"):
        tight(from_arrays([6, 8], np.array([[0.0, 0, 0], [1.2, 0, 0]]), dtype=torch.float64))


@pytest.mark.parametrize("degree", [3, 5])
def test_hermite_table_reproduces_its_knots_and_both_evaluations_agree(degree, monkeypatch):
    """At the knots the interpolant and its derivatives equal the knot data; the blocked matrix
    products and the per-distance gather give the same values, forces and second derivatives."""
    torch.manual_seed(0)
    per_knot = (degree + 1) // 2
    spacing = 0.1
    knots = torch.randn(40, per_knot, 5, dtype=torch.float64)
    table = hermite_table.HermiteTable.from_knots(knots, 0.05, spacing, 0.05 + 39 * spacing)
    at = 0.05 + spacing * torch.arange(39, dtype=torch.float64)
    for order in range(per_knot):
        torch.testing.assert_close(table(at, order) * spacing**order, knots[:39, order], rtol=1e-12, atol=1e-12)
    r = 0.05 + torch.rand(700, dtype=torch.float64) * 4.0
    weights = torch.randn(5, dtype=torch.float64)
    results = []
    for few in (10**9, 0):
        monkeypatch.setattr(hermite_table, "FEW", few)
        x = r.clone().requires_grad_()
        value = table(x)
        (grad,) = torch.autograd.grad((value * weights).sum(), x, create_graph=True)
        (second,) = torch.autograd.grad(grad.sum(), x)
        results.append((value.detach(), grad.detach(), second))
        torch.testing.assert_close(grad.detach(), (table(r, 1) * weights).sum(-1), rtol=1e-12, atol=1e-12)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("few", [10**9, 0])
def test_table_parts_equal_the_split_table_and_their_gradients(few, monkeypatch):
    """``table(r, size=...)`` gives the split of ``table(r)`` as separate tensors, and the gradient in r
    of any combination of them (parts unused included), first and second order, by both evaluations."""
    monkeypatch.setattr(hermite_table, "FEW", few)
    torch.manual_seed(1)
    spacing = 0.1
    table = hermite_table.HermiteTable.from_knots(torch.randn(40, 3, 6, dtype=torch.float64), 0.05, spacing,
                                                  0.05 + 39 * spacing)
    r = 0.05 + torch.rand(300, dtype=torch.float64) * 4.0
    weights = torch.randn(300, 6, dtype=torch.float64)
    for used in ([0, 1, 2], [1]):  # every part, or one of three (the others get no gradient)
        x = r.clone().requires_grad_()
        parts = table(x, size=2)
        assert len(parts) == 3 and all(p.is_contiguous() and p.shape == (300, 2) for p in parts)
        torch.testing.assert_close(torch.cat(parts, -1), table(r), rtol=0, atol=0)
        energy = sum((parts[k] * weights[:, 2 * k:2 * k + 2]).sum() for k in used)
        (grad,) = torch.autograd.grad(energy, x, create_graph=True)
        (second,) = torch.autograd.grad(grad.sum(), x)
        y = r.clone().requires_grad_()
        whole = table(y)
        mask = torch.zeros(6, dtype=torch.float64)
        for k in used:
            mask[2 * k:2 * k + 2] = 1
        (grad_ref,) = torch.autograd.grad((whole * weights * mask).sum(), y, create_graph=True)
        (second_ref,) = torch.autograd.grad(grad_ref.sum(), y)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(second, second_ref, rtol=1e-12, atol=1e-10)
    with pytest.raises(ValueError, match="cannot split 6 table channels into parts of 4"):
        table(r, size=4)
