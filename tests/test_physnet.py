"""PhysNet: each equation against a NumPy evaluation of the paper's formula, the zero-initialised
gates, the module sum, charge conservation and the non-hierarchicality penalty.

There is no maintained PyTorch PhysNet to compare with; the references here are written from
the paper (Unke & Meuwly 2019, eq. 7-18) and the authors' TF code, in NumPy, reading only the
weights of the module under test.
"""

import math

import numpy as np
import pytest
import torch

import equinnp
from equinnp.data import from_arrays
from equinnp.models.physnet import PhysNet
from equinnp.nn.physnet_layers import (
    PhysNetShiftedSoftplus,
    PhysNetInteractionLayer,
    PhysNetOutputBlock,
    PhysNetRBF,
    PreActivationResidual,
    nonhierarchicality_penalty,
)

torch.set_num_threads(1)


def ssp(x):
    """Shifted softplus ln(1 + e^x) - ln 2."""
    return np.logaddexp(0.0, x) - math.log(2.0)


def softplus(x):
    return np.logaddexp(0.0, x)


def phi(r, cutoff):
    """PhysNet's cutoff (eq. 8)."""
    x = r / cutoff
    return np.where(x < 1.0, 1.0 - 6.0 * x**5 + 15.0 * x**4 - 10.0 * x**3, 0.0)


def dense(linear, x):
    """x W^T + b with the weights of ``linear`` (torch layout [out, in])."""
    out = x @ linear.weight.detach().numpy().T
    return out if linear.bias is None else out + linear.bias.detach().numpy()


def residual(layer, x):
    """Eq. 9: y = x + W2 σ(W1 σ(x) + b1) + b2."""
    return x + dense(layer.residual, ssp(dense(layer.dense, ssp(x))))


def randomise(module, seed=0, scale=0.3):
    """Add noise to every parameter, so that zero-initialised gates and biases are exercised."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return module


def molecule(seed=0, n=6):
    rng = np.random.default_rng(seed)
    z = rng.choice([1, 6, 8], size=n)
    pos = rng.uniform(-1.6, 1.6, size=(n, 3))
    return z, pos


def pairs(pos, cutoff):
    """All ordered pairs (j → i), i ≠ j, within the cutoff, and their distances."""
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    i, j = np.nonzero((d < cutoff) & ~np.eye(len(pos), dtype=bool))
    return i, j, d[i, j]


# ------------------------------------------------------------------ radial basis and cutoff
def test_cutoff_is_the_quintic_polynomial_and_vanishes_smoothly():
    rbf = PhysNetRBF(4, 5.0).double()
    r = torch.tensor([0.0, 0.7, 2.5, 4.2, 4.999, 5.0, 6.3], dtype=torch.float64)
    np.testing.assert_allclose(rbf.cutoff_fn(r).numpy(), phi(r.numpy(), 5.0), rtol=0, atol=1e-14)
    r = torch.tensor([0.5, 2.5, 4.9, 5.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(rbf.cutoff_fn(r).sum(), r)
    x = r.detach().numpy() / 5.0
    np.testing.assert_allclose(grad.numpy(), -30.0 * x**2 * (1.0 - x) ** 2 / 5.0, rtol=1e-12, atol=1e-15)  # 0 at r_c


def test_rbf_initial_centres_and_widths_follow_the_tf_code():
    K, cutoff = 64, 10.0
    rbf = PhysNetRBF(K, cutoff).double()
    rbf.reset_parameters()  # in float64: the values built at construction are rounded to the default dtype
    tail = math.exp(-cutoff)
    np.testing.assert_allclose(rbf.centers.detach().numpy(), np.linspace(1.0, tail, K), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rbf.widths.detach().numpy(), np.full(K, (K / (2.0 * (1.0 - tail))) ** 2), rtol=1e-12)
    assert rbf.centers[0] > rbf.centers[-1]  # descending


def test_rbf_is_the_exponential_basis_of_softplus_parameters():
    rbf = PhysNetRBF(5, 4.0).double()
    with torch.no_grad():
        rbf.raw_centers.copy_(torch.tensor([-1.0, -0.3, 0.2, 0.5, 1.1], dtype=torch.float64))
        rbf.raw_widths.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    r = np.array([0.3, 1.0, 2.2, 3.9, 4.5])
    mu = softplus(np.array([-1.0, -0.3, 0.2, 0.5, 1.1]))
    beta = softplus(np.array([0.5, 1.0, 2.0, 3.0, 4.0]))
    expected = phi(r, 4.0)[:, None] * np.exp(-beta * (np.exp(-r)[:, None] - mu) ** 2)
    np.testing.assert_allclose(rbf(torch.tensor(r)).detach().numpy(), expected, rtol=1e-13, atol=1e-15)
    assert rbf.raw_centers.requires_grad and rbf.raw_widths.requires_grad


# ------------------------------------------------------------------ layers
def test_shifted_softplus_is_exact_in_float64_beyond_torch_threshold():
    x = np.array([-30.0, -1.0, 0.0, 2.0, 19.0, 21.0, 25.0, 33.0, 45.0])
    np.testing.assert_allclose(PhysNetShiftedSoftplus()(torch.tensor(x)).numpy(), ssp(x), rtol=1e-15, atol=1e-16)


def test_residual_layer_is_pre_activation():
    layer = randomise(PreActivationResidual(7).double(), seed=1)
    x = np.random.default_rng(1).normal(size=(5, 7))
    np.testing.assert_allclose(layer(torch.tensor(x)).detach().numpy(), residual(layer, x), rtol=1e-12, atol=1e-13)


def interaction_reference(layer, x, i, j, rbf):
    """Eq. 10-12 pair by pair."""
    xa = ssp(x)
    v = ssp(dense(layer.dense_i, xa))
    hj = ssp(dense(layer.dense_j, xa))
    gate = rbf @ layer.distance_gate.weight.detach().numpy().T  # [E, F]
    for e in range(len(i)):
        v[i[e]] += gate[e] * hj[j[e]]
    for res in layer.residuals:
        v = residual(res, v)
    return layer.u.detach().numpy() * x + dense(layer.dense, ssp(v))


def test_interaction_layer_against_the_pairwise_formula():
    layer = randomise(PhysNetInteractionLayer(6, 4, num_residual=2).double(), seed=2)
    z, pos = molecule(2)
    i, j, r = pairs(pos, 3.0)
    rbf = np.random.default_rng(3).uniform(size=(len(i), 4))
    x = np.random.default_rng(4).normal(size=(len(z), 6))
    edge_index = torch.tensor(np.stack([j, i]))
    out = layer(torch.tensor(x), edge_index, torch.tensor(rbf)).detach().numpy()
    np.testing.assert_allclose(out, interaction_reference(layer, x, i, j, rbf), rtol=1e-12, atol=1e-12)


def test_distance_gate_starts_at_zero_and_the_update_gate_at_one():
    layer = PhysNetInteractionLayer(6, 4, num_residual=1).double()
    assert torch.all(layer.distance_gate.weight == 0) and layer.distance_gate.bias is None
    assert torch.all(layer.u == 1)
    x = torch.randn(3, 6, dtype=torch.float64)
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])
    with_neighbours = layer(x, edge_index, torch.rand(3, 4, dtype=torch.float64))
    alone = layer(x, edge_index[:, :0], torch.rand(0, 4, dtype=torch.float64))
    torch.testing.assert_close(with_neighbours, alone, rtol=0, atol=0)


def test_output_block_starts_at_zero_and_follows_the_formula():
    block = PhysNetOutputBlock(5, num_residual=1).double()
    x = np.random.default_rng(5).normal(size=(4, 5))
    assert torch.all(block(torch.tensor(x)) == 0)
    randomise(block, seed=5)
    expected = dense(block.dense, ssp(residual(block.residuals[0], x)))
    np.testing.assert_allclose(block(torch.tensor(x)).detach().numpy(), expected, rtol=1e-12, atol=1e-13)


def test_nonhierarchicality_penalty_by_hand():
    y1 = torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    y2 = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    y3 = torch.tensor([[0.5, 0.0], [1.0, 2.0]], dtype=torch.float64)
    eps = 1e-7
    by_hand = np.mean([1 / (2 + eps), 1 / (1 + eps), 0.0, 1 / (2 + eps)]) + np.mean([0.25 / (1.25 + eps), 0.0, 1 / (1 + eps), 4 / (5 + eps)])
    assert nonhierarchicality_penalty([y1, y2, y3]).item() == pytest.approx(by_hand, rel=1e-12)
    assert nonhierarchicality_penalty([y1]).item() == 0.0


# ------------------------------------------------------------------ the whole network
def physnet_reference(model, z, pos, charge):
    """PhysNet (paper eq. 7-14) in NumPy from the weights of ``model``: energy and corrected charges."""
    species = np.array([model.elements.index(int(a)) for a in z])
    i, j, r = pairs(pos, model.cutoff)
    mu = softplus(model.rbf.raw_centers.detach().numpy())
    beta = softplus(model.rbf.raw_widths.detach().numpy())
    rbf = phi(r, model.cutoff)[:, None] * np.exp(-beta * (np.exp(-r)[:, None] - mu) ** 2)
    x = model.embedding.weight.detach().numpy()[species]
    energy, raw = np.zeros(len(z)), np.zeros(len(z))
    for block, out_block in zip(model.interactions, model.output_blocks):
        x = interaction_reference(block.interaction, x, i, j, rbf)
        for res in block.residuals:
            x = residual(res, x)
        y = x
        for res in out_block.residuals:
            y = residual(res, y)
        y = dense(out_block.dense, ssp(y))
        energy += y[:, 0]
        raw += y[:, 1]
    raw = model.charge_scale.detach().numpy()[species] * raw + model.charge_shift.detach().numpy()[species]
    return energy.sum(), raw + (charge - raw.sum()) / len(z)


@pytest.fixture(scope="module")
def randomised_potential():
    torch.manual_seed(0)
    pot = equinnp.build_potential("physnet", cutoff=3.5, elements=[1, 6, 8], dtype="float64",
                                  postprocessing={"transforms": ["scale_shift", "uniform_charges"]},
                                  hidden_channels=8, num_rbf=6, num_modules=3, num_residual_atomic=2,
                                  num_residual_interaction=2, num_residual_output=1)
    randomise(pot.model, seed=7)
    return pot.eval()


def _evaluate(pot, z, pos, charge):
    data = from_arrays(z, pos, dtype=torch.float64)
    data.charge = torch.tensor([float(charge)], dtype=torch.float64)
    out = pot(data, compute_forces=False)
    return out.energy.item(), out.charges.detach().numpy()


def test_physnet_sums_the_modules_as_the_paper(randomised_potential):
    z, pos = molecule(11, n=7)
    energy, charges = _evaluate(randomised_potential, z, pos, charge=-1)
    expected_energy, expected_charges = physnet_reference(randomised_potential.model, z, pos, -1.0)
    assert energy == pytest.approx(expected_energy, rel=1e-11, abs=1e-11)
    np.testing.assert_allclose(charges, expected_charges, rtol=1e-11, atol=1e-12)
    assert abs(expected_energy) > 1e-3 and np.ptp(expected_charges) > 1e-3  # the comparison is not between zeros


@pytest.mark.parametrize("parameter", ["rbf.raw_widths", "interactions.1.interaction.distance_gate.weight",
                                       "output_blocks.2.dense.weight", "charge_shift"])
def test_a_changed_weight_breaks_the_comparison(randomised_potential, parameter):
    z, pos = molecule(11, n=7)
    expected_energy, expected_charges = physnet_reference(randomised_potential.model, z, pos, -1.0)
    changed = equinnp.build_potential("physnet", cutoff=3.5, elements=[1, 6, 8], dtype="float64",
                                      postprocessing={"transforms": ["scale_shift", "uniform_charges"]},
                                      **{k: v for k, v in randomised_potential.model.hyperparameters.items()
                                         if k not in ("cutoff", "elements")})
    changed.load_state_dict(randomised_potential.state_dict())
    with torch.no_grad():
        changed.model.get_parameter(parameter).view(-1)[0] += 0.05
    energy, charges = _evaluate(changed.eval(), z, pos, charge=-1)
    energy_off = abs(energy - expected_energy) > 1e-8
    charges_off = np.abs(charges - expected_charges).max() > 1e-8
    assert energy_off or charges_off


def test_uniform_correction_conserves_the_total_charge_of_each_system(randomised_potential):
    from torch_geometric.data import Batch

    systems = []
    for seed, (n, charge) in enumerate([(3, -2), (7, 1), (5, 0)]):
        z, pos = molecule(20 + seed, n=n)
        data = from_arrays(z, pos, dtype=torch.float64)
        data.charge = torch.tensor([float(charge)], dtype=torch.float64)
        systems.append(data)
    batch = Batch.from_data_list(systems)
    out = randomised_potential(batch, compute_forces=False)
    totals = torch.zeros(3, dtype=torch.float64).index_add_(0, batch.batch, out.charges.detach())
    torch.testing.assert_close(totals, torch.tensor([-2.0, 1.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)


def test_nonhierarchicality_is_exposed_after_forward(randomised_potential):
    z, pos = molecule(3)
    data = from_arrays(z, pos, dtype=torch.float64)
    randomised_potential(data, compute_forces=False)
    penalty = randomised_potential.model.nonhierarchicality
    assert penalty.dim() == 0 and 0.0 < penalty.item() < len(randomised_potential.model.interactions) - 1 + 1e-9


def test_paper_defaults_and_outputs():
    model = PhysNet()
    assert (model.hidden_channels, model.rbf.num_rbf, len(model.interactions), model.cutoff) == (128, 64, 5, 10.0)
    block = model.interactions[0]
    assert (len(block.residuals), len(block.interaction.residuals), len(model.output_blocks[0].residuals)) == (2, 3, 1)
    assert "charges" in model.outputs
    assert PhysNet(charge_head=False).outputs == ("energy",)


def test_energy_only_physnet_predicts_no_charges():
    pot = equinnp.build_potential("physnet", cutoff=3.0, elements=[1, 8], charge_head=False, **PhysNet.tiny)
    out = pot(from_arrays([8, 1, 1], np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])), compute_forces=False)
    assert out.charges is None


@pytest.mark.parametrize("name, value", [("num_modules", 0), ("num_rbf", 0), ("hidden_channels", 2.5)])
def test_bad_hyperparameters_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"{name}.*{value}"):
        PhysNet(**{name: value})



def test_config_pipeline_adds_the_shielded_coulomb_of_the_corrected_charges(randomised_potential):
    """configs/physnet.yaml's pipeline: E_el = k_e/2 Σ_i Σ_{j≠i} q_i q_j χ(r_ij) over all pairs (paper eq. 13)."""
    from equinnp.train.config import load_config

    config = load_config("physnet")["model"]
    pipeline = config["postprocessing"]
    hyper = {k: v for k, v in randomised_potential.model.hyperparameters.items() if k not in ("cutoff", "elements")}
    pot = equinnp.build_potential("physnet", cutoff=3.5, elements=[1, 6, 8], dtype="float64", postprocessing=pipeline,
                                  reference_energies={1: 0.0, 6: 0.0, 8: 0.0}, **hyper)
    pot.model.load_state_dict(randomised_potential.model.state_dict())
    z, pos = molecule(11, n=7)
    pos = pos * 2.5  # pairs on both sides of the 5 Å switch radius
    data = from_arrays(z, pos, dtype=torch.float64)
    data.charge = torch.tensor([1.0], dtype=torch.float64)
    out = pot.eval()(data, compute_forces=False)
    q = out.charges.detach().numpy()
    assert abs(q.sum() - 1.0) < 1e-12
    r = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert (r[~np.eye(len(z), dtype=bool)] > 5.0).any() and (r[~np.eye(len(z), dtype=bool)] < 5.0).any()
    y = r / 5.0
    s = np.where(r < 5.0, 6 * y**5 - 15 * y**4 + 10 * y**3, 1.0)
    off = ~np.eye(len(z), dtype=bool)
    chi = (1 - s[off]) / np.sqrt(r[off] ** 2 + 1) + s[off] / r[off]
    expected = 7.199822675975274 * np.sum(np.outer(q, q)[off] * chi)
    assert out.energy_terms["coulomb"].item() == pytest.approx(expected, rel=1e-12)
