"""AIMNet2 against the authors' ``aimnet`` package with the same weights (float64), and its equations one by one.

Golden file ``tests/data/aimnet2_golden.npz``: written by
``benchmarks/peers/export_aimnet2_golden.py`` in the ``.peers/aimnet`` venv
(aimnet 0.2.6, the packaged ``aimnet2.yaml`` with every trainable tensor
replaced by random values on a 4-bit grid; ``tests/data/README.md``). The
weights are mapped onto equinnp's AIMNet2 by ``aimnet2_golden_map``; the
potential adds the ``coulomb`` term with ``shielding: aimnet2``, as aimnet's
``LRCoulomb`` (its cutoff is aimnet's float32 4.6).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch

import equinnp
from aimnet2_golden_map import GOLDEN, aimnet2_from_golden
from equinnp.data import from_arrays
from equinnp.nn.aimnet2_layers import (
    AIMNet2AEV,
    NeighborSlots,
    ScalarVectorConvolution,
    aimnet_cosine_cutoff,
    aimnet_mlp,
    gaussian_shifts,
    neural_charge_equilibration,
)


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.fixture(scope="module")
def golden_potential(golden):
    return aimnet2_from_golden(golden)


def _system(golden, name):
    data = from_arrays(golden[f"{name}/z"], golden[f"{name}/pos"], dtype=torch.float64)
    data.charge = torch.tensor([float(golden[f"{name}/charge"])], dtype=torch.float64)
    return data


SYSTEMS = ["ethanol", "aspirin", "acetylene_na", "nacl", "acetate_ammonium", "acetate"]


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize("name", SYSTEMS)
def test_same_numbers_as_aimnet(golden, golden_potential, name):
    out = golden_potential(_system(golden, name))
    model = golden_potential.model
    energy, forces = float(golden[f"{name}/energy"]), golden[f"{name}/forces"]
    assert out.energy.item() == pytest.approx(energy, rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(out.forces.detach().numpy(), forces, rtol=0, atol=1e-10 * max(1.0, np.abs(forces).max()))
    np.testing.assert_allclose(out.charges.detach().numpy(), golden[f"{name}/charges"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch.stack(model.pass_charges).detach().numpy(), golden[f"{name}/pass_charges"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch.stack(model.raw_charges).detach().numpy(), golden[f"{name}/pass_raw_charges"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.aim.detach().numpy(), golden[f"{name}/aim"], rtol=0, atol=1e-10)
    assert out.energy_terms["coulomb"].item() == pytest.approx(float(golden[f"{name}/coulomb"]), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", ["aspirin", "acetylene_na", "acetate"])
def test_float32_agrees_to_float32_rounding(golden, name):
    # the grid weights are exact float32 numbers: the differences are float32 arithmetic only
    pot = aimnet2_from_golden(golden, dtype="float32")
    out = pot(_system(golden, name))
    forces = golden[f"{name}/forces"]
    assert out.energy.item() == pytest.approx(float(golden[f"{name}/energy"]), rel=1e-5, abs=1e-4)
    np.testing.assert_allclose(out.forces.detach().numpy(), forces, rtol=0, atol=1e-4 * max(1.0, np.abs(forces).max()))
    np.testing.assert_allclose(out.charges.detach().numpy(), golden[f"{name}/charges"], rtol=0, atol=1e-5)
    # aimnet's form leaves ε/(Σf + ε) of the excess (1.5e-4 e on acetylene·Na⁺), in float32 as in float64
    assert abs(out.charges.sum().item() - golden[f"{name}/charges"].sum()) < 1e-5


def test_the_golden_systems_exercise_the_charge_correction(golden):
    # the correction moves charge in every system (the raw charges do not sum to Q), and the charged ones are charged
    for name in SYSTEMS:
        excess = float(golden[f"{name}/charge"]) - golden[f"{name}/pass_raw_charges"].sum(-1)
        assert np.abs(excess).min() > 1e-2, name
    assert {float(golden[f"{n}/charge"]) for n in SYSTEMS} == {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("change", [
    ("afv.weight", 6 * 256 + 17, 0.01),             # the embedding row of carbon
    ("conv_a.agh", 100, 0.01),
    ("conv_q.agh", 7, 0.01),
    ("mlps.1.4.bias", 3, 0.01),
    ("mlps.2.6.weight", 1000, 0.01),
    ("outputs.energy_mlp.mlp.4.bias", 0, 1e-3),
    ("outputs.atomic_shift.shifts.weight", 8, 1e-3),  # the shift of oxygen
])
def test_a_changed_weight_breaks_the_comparison(golden, change):
    pot = aimnet2_from_golden(golden, change=change)
    out = pot(_system(golden, "ethanol"))
    energy_off = abs(out.energy.item() - float(golden["ethanol/energy"])) > 1e-8
    forces_off = np.abs(out.forces.detach().numpy() - golden["ethanol/forces"]).max() > 1e-8
    assert energy_off or forces_off


@pytest.mark.parametrize("options", [dict(float32_constants=False), dict(exact_charge_conservation=True)])
def test_a_changed_constant_breaks_the_comparison(golden, options):
    # exact float64 AEV shifts and η instead of aimnet's float32 ones; equinnp's exact charge correction
    pot = aimnet2_from_golden(golden, **options)
    out = pot(_system(golden, "nacl" if "exact_charge_conservation" in options else "ethanol"))
    name = "nacl" if "exact_charge_conservation" in options else "ethanol"
    assert abs(out.energy.item() - float(golden[f"{name}/energy"])) > 1e-9


def test_the_coulomb_cutoff_is_aimnets_float32_value(golden):
    pot = aimnet2_from_golden(golden)
    pot.energy_terms[0].switch_radius = 4.6  # the decimal value instead of float32(4.6)
    out = pot(_system(golden, "aspirin"))
    assert abs(out.energy.item() - float(golden["aspirin/energy"])) > 1e-9


def test_exact_conservation_against_aimnets_form(golden):
    # aimnet's nse leaves 1.6e-3 e of the excess on the Na+Cl- pair; equinnp's default conserves it
    assert abs(golden["nacl/charges"].sum()) > 1e-3
    out = aimnet2_from_golden(golden, exact_charge_conservation=True)(_system(golden, "nacl"))
    assert abs(out.charges.sum().item()) < 1e-12
    np.testing.assert_allclose(out.charges.detach().numpy(), golden["nacl/charges"], atol=5e-3)


# --------------------------------------------------------------- equations
def test_cosine_cutoff_values():
    d = torch.tensor([0.0, 1e-7, 2.5, 5.0, 6.0], dtype=torch.float64)
    fc = aimnet_cosine_cutoff(d, 5.0)
    expected = [0.5 * (math.cos(math.pi * 1e-6 / 5.0) + 1.0)] * 2 + [0.5, 0.0, 0.0]  # clamp at 1e-6 Å
    np.testing.assert_allclose(fc.numpy(), expected, rtol=0, atol=1e-15)


def test_gaussian_shifts_are_aimnets_float32_numbers(golden):
    # the numbers aimnet stores (torch's float32 linspace; numpy's float32 linspace rounds 4 of them differently)
    shifts, eta = gaussian_shifts(5.0, 16, 0.8, float32=True)
    np.testing.assert_array_equal(shifts.numpy(), golden["const/aev.shifts_s"])
    assert eta.item() == float(golden["const/aev.eta_s"]) == float(np.float32((16 / 4.2) ** 2))
    exact_shifts, exact_eta = gaussian_shifts(5.0, 16, 0.8, float32=False)
    np.testing.assert_allclose(exact_shifts.numpy(), 0.8 + 0.2625 * np.arange(16), rtol=0, atol=1e-15)
    assert exact_eta.item() == pytest.approx((16 / 4.2) ** 2, rel=1e-15)
    assert exact_eta.item() != eta.item()


def test_aev_radial_and_vector_parts():
    aev = AIMNet2AEV(4.0, 5, rmin=0.5, float32_constants=False).double()
    vec = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1], [3.0, 3.0, 3.0]], dtype=torch.float64)
    length = vec.norm(dim=-1)
    g = aev(vec, length)
    assert g.shape == (3, 5, 4)
    eta = (5 / 3.5) ** 2
    for e in range(3):
        d = length[e].item()
        fc = 0.5 * (math.cos(math.pi * min(d, 4.0) / 4.0) + 1.0)
        for k in range(5):
            radial = math.exp(-eta * (d - (0.5 + 0.7 * k)) ** 2) * fc
            assert g[e, k, 0].item() == pytest.approx(radial, rel=1e-13, abs=1e-300)
            np.testing.assert_allclose(g[e, k, 1:].numpy(), radial * vec[e].numpy() / d, rtol=1e-13, atol=1e-300)
    assert torch.all(g[2] == 0)  # 5.2 Å: beyond the cutoff


@pytest.mark.parametrize("per_shift", [True, False])
def test_scalar_vector_convolution_against_a_loop(per_shift):
    torch.manual_seed(3)
    channels, shifts, combos, n = 3, 4, 2, 5
    conv = ScalarVectorConvolution(channels, shifts, combos, per_shift=per_shift).double()
    x = torch.randn(n, channels * shifts if per_shift else channels, dtype=torch.float64)
    edge_index = torch.tensor([[1, 2, 0, 3, 4, 0], [0, 0, 1, 1, 1, 4]])
    g = torch.randn(edge_index.shape[1], shifts, 4, dtype=torch.float64)
    slots = NeighborSlots.of(edge_index, n)
    assert slots.num_slots == 3
    out = conv(x, slots, slots.scatter(g)).detach().numpy()
    w = conv.agh.detach().numpy()
    xs = x.numpy().reshape(n, channels, shifts) if per_shift else np.repeat(x.numpy()[:, :, None], shifts, axis=2)
    for i in range(n):
        c = np.zeros((channels, shifts, 4))
        for e in range(edge_index.shape[1]):
            if edge_index[1, e] == i:
                c += xs[edge_index[0, e]][:, :, None] * g[e].numpy()[None]
        vector = np.einsum("agh,agx->ahx", w, c[..., 1:])
        expected = np.concatenate([c[..., 0].reshape(-1), (vector**2).sum(-1).reshape(-1)])
        np.testing.assert_allclose(out[i], expected, rtol=1e-12, atol=1e-12)
    assert conv.output_size == channels * (shifts + combos)


def test_neighbor_slots_do_not_depend_on_the_edge_order():
    torch.manual_seed(5)
    conv = ScalarVectorConvolution(2, 3, 2, per_shift=True).double()
    edge_index = torch.tensor([[1, 2, 0, 3, 0, 2, 1], [0, 0, 1, 1, 2, 3, 3]])
    x = torch.randn(4, 6, dtype=torch.float64)
    g = torch.randn(edge_index.shape[1], 3, 4, dtype=torch.float64)
    slots = NeighborSlots.of(edge_index, 4)
    assert slots.num_slots == 2 and slots.neighbor[2].tolist() == [0, 4]  # atom 2 has one neighbour, then padding
    shuffled = torch.randperm(edge_index.shape[1])
    other = NeighborSlots.of(edge_index[:, shuffled], 4)
    torch.testing.assert_close(conv(x, other, other.scatter(g[shuffled])), conv(x, slots, slots.scatter(g)), rtol=1e-14, atol=1e-14)


def test_charge_equilibration_forms():
    raw = torch.tensor([[0.2], [-0.5], [0.1], [0.4], [0.05]], dtype=torch.float64)
    f = torch.tensor([[0.3], [0.01], [0.5], [0.0], [0.2]], dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 1, 1])
    total = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    eps = 1e-3  # large, so that the two forms differ visibly
    aimnet = neural_charge_equilibration(raw, f, total, batch, 2, eps, exact=False)
    exact = neural_charge_equilibration(raw, f, total, batch, 2, eps, exact=True)
    for b, atoms in ((0, [0, 1, 2]), (1, [3, 4])):
        excess = total[b, 0].item() - raw[atoms, 0].sum().item()
        fs = f[atoms, 0].numpy()
        np.testing.assert_allclose(aimnet[atoms, 0].numpy(), raw[atoms, 0].numpy() + fs / (fs.sum() + eps) * excess, rtol=1e-14)
        np.testing.assert_allclose(exact[atoms, 0].numpy(), raw[atoms, 0].numpy() + (fs + eps) / (fs + eps).sum() * excess, rtol=1e-14)
        assert exact[atoms, 0].sum().item() == pytest.approx(total[b, 0].item(), abs=1e-14)
        assert abs(aimnet[atoms, 0].sum().item() - total[b, 0].item()) > 1e-4


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), total=st.integers(-3, 3), zero=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_exact_equilibration_conserves_any_total(n, total, zero, seed):
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    f = torch.zeros(n, 1, dtype=torch.float64) if zero else torch.rand(n, 1, generator=generator, dtype=torch.float64) ** 4
    q = neural_charge_equilibration(raw, f, torch.tensor([[float(total)]], dtype=torch.float64), torch.zeros(n, dtype=torch.long), 1)
    assert abs(q.sum().item() - total) < 1e-12


def test_mlp_layout():
    mlp = aimnet_mlp([6, 5, 4, 3], last_linear=True)
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert mlp[1].approximate == "none"
    assert [type(m).__name__ for m in aimnet_mlp([6, 5, 3], last_linear=False)] == ["Linear", "GELU", "Linear", "GELU"]
    assert all(float(m.bias.abs().max()) == 0 for m in mlp if isinstance(m, torch.nn.Linear))


# ------------------------------------------------------------------ model
def _tiny(**options):
    torch.manual_seed(0)
    pot = equinnp.build_potential("aimnet2", elements=[1, 6, 8], dtype="float64", **{**equinnp.ARCHITECTURES["aimnet2"].tiny, **options})
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return pot.eval()


def _frame(rmd17_frames, k, charge=0.0, spin=None):
    data = rmd17_frames[k].clone()
    data.charge = torch.tensor([charge], dtype=torch.float64)
    if spin is not None:
        data.spin = torch.tensor([spin], dtype=torch.float64)
    return data


def test_network_is_local_before_the_charge_correction(rmd17_frames):
    # Far-apart fragments of one system: the raw charges of pass 0 are each fragment's own; the
    # correction then shares the joint excess between both, so the energy is not the sum (xfail in the contract).
    pot = _tiny()
    ethanol = _frame(rmd17_frames, 0)
    alone = pot(ethanol)
    raw_alone = pot.model.raw_charges[0].detach().clone()
    far = rmd17_frames[1].pos + torch.tensor([40.0, 0.0, 0.0], dtype=torch.float64)
    joined = from_arrays(torch.cat([ethanol.z, rmd17_frames[1].z]), torch.cat([ethanol.pos, far]), dtype=torch.float64)
    joined.charge = torch.tensor([0.0], dtype=torch.float64)
    out = pot(joined)
    torch.testing.assert_close(pot.model.raw_charges[0][:9], raw_alone, rtol=0, atol=1e-13)
    assert abs(out.charges.sum().item()) < 1e-12
    assert abs(out.energy.item() - alone.energy.item() - pot(_frame(rmd17_frames, 1)).energy.item()) > 1e-9


def test_two_spin_channels(rmd17_frames):
    pot = _tiny(num_charge_channels=2)
    assert pot.model.requires_spin
    out = pot(_frame(rmd17_frames, 0, charge=1.0, spin=2.0))
    assert out.charges.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert pot.model.spin_charges.sum().item() == pytest.approx(1.0, abs=1e-12)  # M - 1 unpaired electrons
    triplet = pot(_frame(rmd17_frames, 0, charge=1.0, spin=4.0))
    assert abs(triplet.energy.item() - out.energy.item()) > 1e-6
    with pytest.raises(ValueError, match="spin"):
        pot(_frame(rmd17_frames, 0, charge=1.0))


def test_total_charge_changes_energy_and_is_required(rmd17_frames):
    pot = _tiny(charge_required=True)
    neutral, cation = pot(_frame(rmd17_frames, 0, 0.0)), pot(_frame(rmd17_frames, 0, 1.0))
    assert cation.charges.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert abs(cation.energy.item() - neutral.energy.item()) > 1e-6
    with pytest.raises(ValueError, match="total charge"):
        pot(rmd17_frames[0])


def test_batch_of_charged_systems(rmd17_frames):
    pot = _tiny()
    systems = [_frame(rmd17_frames, 0, 1.0), _frame(rmd17_frames, 2, -1.0)]
    batched = pot(Batch.from_data_list(systems))
    singles = [pot(s) for s in systems]
    np.testing.assert_allclose(batched.energy.detach().numpy(), [s.energy.item() for s in singles], rtol=1e-12)
    np.testing.assert_allclose(batched.charges.detach().numpy(), torch.cat([s.charges for s in singles]).detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("options, message", [
    (dict(num_charge_channels=3), "num_charge_channels"),
    (dict(hidden=[[8]]), "at least 2 passes"),
    (dict(num_shifts=0), "num_shifts"),
    (dict(charge_epsilon=0.0), "charge_epsilon"),
    (dict(rmin=6.0), "rmin"),
])
def test_bad_hyperparameters(options, message):
    with pytest.raises(ValueError, match=message):
        equinnp.build_potential("aimnet2", elements=[1, 6], **{**equinnp.ARCHITECTURES["aimnet2"].tiny, **options})


def test_packaged_sizes():
    model = equinnp.build_potential("aimnet2", elements=list(range(1, 64))).model
    # aimnet2.yaml: 2,205,557 trainable numbers with 64 embedding/shift rows (the padding row included)
    count = sum(p.numel() for p in model.parameters())
    assert count == 2_205_557 - 257 * (64 - 63)
    assert [m.in_features for m in model.passes[0] if isinstance(m, torch.nn.Linear)][0] == 704
    assert [m.in_features for m in model.passes[1] if isinstance(m, torch.nn.Linear)][0] == 733
    assert model.passes[-1][-1].__class__.__name__ == "GELU"
