"""SAKE: agreement with the authors' JAX code, its equations one by one, smoothness, periodicity.

``tests/data/sake_golden.npz`` holds energies, forces and every layer's h, x, v
computed by ``sake-gnn`` 0.0.2.post1 (the authors' code, ``DenseSAKEModel``,
float64, all pairs, perturbed weights) on two rMD17 molecules, written by
``benchmarks/peers/export_sake_golden.py``. The weights are mapped onto equinnp's
SAKE by :func:`load_reference_weights`; a cutoff of 1e8 Å makes every pair weight
1 to ~1e-15, where equinnp's radius-graph SAKE is the reference's all-pairs one.
"""

import math
import os

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import equinnp
from equinnp.data import from_arrays
from equinnp.models.base import Graph
from equinnp.models.sake import SAKE
from equinnp.nn import CosineCutoff
from equinnp.nn import sake_layers
from equinnp.nn.sake_layers import (
    CosinePairWeight,
    ExpNormalSmearing,
    combined_attention,
    sake_direction,
    sake_distance,
    smooth_neighbor_count,
    spatial_combinations,
)
from equinnp.testing import contract
from equinnp.testing.strategies import random_crystal

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "sake_golden.npz")
MOLECULES = ("ethanol", "aspirin")
ALL_PAIRS = 1e8  # Å: 1 - w(d) < 1e-15 for molecular distances


# ------------------------------------------------------------------ helpers
def golden():
    return np.load(GOLDEN, allow_pickle=False)


def load_reference_weights(model: SAKE, ref) -> set:
    """Copy the flax parameters of ``DenseSAKEModel`` (``param/<path>`` arrays) into ``model``.

    Parameter map (flax Dense kernels are [in, out]: transposed):

    - ``embedding_in/{kernel, bias}`` → ``embedding.weight`` = kernel + bias (a Dense on one-hot vectors)
    - ``d<l>/edge_model/kernel/{means, betas}`` → ``layers[l].edge_model.kernel.{means, betas}``
    - ``d<l>/edge_model/mlp_in`` → ``layers[l].edge_model.mlp_in``;
      ``d<l>/edge_model/mlp_out/layers_{0,2}`` → ``layers[l].edge_model.mlp_out[{0,2}]``
    - ``d<l>/semantic_attention_mlp/layers_0`` → ``layers[l].semantic_attention.linear``
    - ``d<l>/x_mixing/layers_0`` → ``layers[l].x_mixing``; ``d<l>/v_mixing`` → ``layers[l].v_mixing``
    - ``d<l>/{post_norm_mlp, node_mlp, velocity_mlp}/layers_{0,2}`` → ``layers[l].<same>[{0,2}]``
    - ``embedding_out/layers_{0,2}`` → ``readout[{0,2}]``

    Returns the reference parameters that were not used (they must be the ones
    equinnp leaves out: ``log_gamma`` and the last layer's velocity update).
    """
    params = {k[len("param/"):]: torch.from_numpy(ref[k]) for k in ref.files if k.startswith("param/")}
    unused = set(params)
    assigned = set()

    def put(tensor, path, transpose=False):
        value = params[path].t() if transpose else params[path]
        assert tensor.shape == value.shape, (path, tuple(tensor.shape), tuple(value.shape))
        tensor.copy_(value)
        unused.discard(path)
        assigned.add(id(tensor))

    def dense(linear, path):
        put(linear.weight, f"{path}/kernel", transpose=True)
        if linear.bias is not None:
            put(linear.bias, f"{path}/bias")

    with torch.no_grad():
        model.embedding.weight.copy_(params["embedding_in/kernel"] + params["embedding_in/bias"])
        unused -= {"embedding_in/kernel", "embedding_in/bias"}
        assigned.add(id(model.embedding.weight))
        for l, layer in enumerate(model.layers):
            p = f"d{l}"
            put(layer.edge_model.kernel.means, f"{p}/edge_model/kernel/means")
            put(layer.edge_model.kernel.betas, f"{p}/edge_model/kernel/betas")
            dense(layer.edge_model.mlp_in, f"{p}/edge_model/mlp_in")
            dense(layer.edge_model.mlp_out[0], f"{p}/edge_model/mlp_out/layers_0")
            dense(layer.edge_model.mlp_out[2], f"{p}/edge_model/mlp_out/layers_2")
            dense(layer.semantic_attention.linear, f"{p}/semantic_attention_mlp/layers_0")
            dense(layer.x_mixing, f"{p}/x_mixing/layers_0")
            for name in ("post_norm_mlp", "node_mlp"):
                dense(getattr(layer, name)[0], f"{p}/{name}/layers_0")
                dense(getattr(layer, name)[2], f"{p}/{name}/layers_2")
            if layer.update_positions:
                dense(layer.v_mixing, f"{p}/v_mixing")
            if hasattr(layer, "velocity_mlp"):
                dense(layer.velocity_mlp[0], f"{p}/velocity_mlp/layers_0")
                dense(layer.velocity_mlp[2], f"{p}/velocity_mlp/layers_2")
        dense(model.readout[0], "embedding_out/layers_0")
        dense(model.readout[2], "embedding_out/layers_2")
    missing = [name for name, t in model.named_parameters() if id(t) not in assigned]
    assert not missing, f"equinnp parameters without a reference value: {missing}"
    return unused


def reference_potential(dtype="float64", cutoff=ALL_PAIRS):
    ref = golden()
    torch.manual_seed(0)
    pot = equinnp.build_potential(
        "sake", cutoff=cutoff, elements=ref["config_elements"].tolist(), dtype=dtype,
        hidden_channels=int(ref["config_hidden_channels"]), num_layers=int(ref["config_num_layers"]),
        num_heads=int(ref["config_num_heads"]), num_rbf=int(ref["config_num_rbf"]),
    )
    unused = load_reference_weights(pot.model, ref)
    return pot.eval(), unused


def captured_graph(pot, data) -> Graph:
    """The ``Graph`` that ``pot`` hands its core network for ``data``."""
    graphs = []
    handle = pot.model.register_forward_pre_hook(lambda module, args: graphs.append(args[0]))
    try:
        pot(data, compute_forces=False)
    finally:
        handle.remove()
    return graphs[0]


def molecule(ref, name, dtype=torch.float64):
    return from_arrays(ref[f"{name}_z"], ref[f"{name}_pos"], dtype=dtype)


# --------------------------------------------------------- parity (JAX code)
def test_parameter_map_leaves_out_only_the_unused_reference_parameters():
    _, unused = reference_potential()
    depth = int(golden()["config_num_layers"])
    expected = {f"d{l}/log_gamma" for l in range(depth)}
    last = f"d{depth - 1}"
    expected |= {f"{last}/v_mixing/kernel", f"{last}/velocity_mlp/layers_0/kernel",
                 f"{last}/velocity_mlp/layers_0/bias", f"{last}/velocity_mlp/layers_2/kernel"}
    assert unused == expected


@pytest.mark.parametrize("name", MOLECULES)
def test_energy_forces_and_layers_match_the_jax_reference(name):
    ref = golden()
    pot, _ = reference_potential()
    data = molecule(ref, name)
    out = pot(data)
    torch.testing.assert_close(out.energy, torch.tensor([float(ref[f"{name}_energy"])], dtype=torch.float64),
                               rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(out.forces, torch.from_numpy(ref[f"{name}_forces"]), rtol=1e-9, atol=1e-12)
    states = pot.model.states(captured_graph(pot, data))
    for l, state in enumerate(states):
        torch.testing.assert_close(state.h, torch.from_numpy(ref[f"{name}_h{l}"]), rtol=1e-10, atol=1e-12)
        if l < len(states) - 1:  # the last layer's position update is not computed (nothing reads it)
            torch.testing.assert_close(state.x, torch.from_numpy(ref[f"{name}_x{l}"]), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(state.v, torch.from_numpy(ref[f"{name}_v{l}"]), rtol=1e-10, atol=1e-12)
        else:
            assert state.x is None and state.v is None
    moved = np.abs(ref[f"{name}_x{len(states) - 2}"] - ref[f"{name}_pos"]).max()
    assert moved > 1e-2, "the reference positions must move between layers for this test to mean anything"


def test_float32_agrees_with_the_jax_reference():
    ref = golden()
    pot, _ = reference_potential("float32")
    for name in MOLECULES:
        out = pot(molecule(ref, name, torch.float32))
        assert abs(out.energy.item() - float(ref[f"{name}_energy"])) < 1e-5 * abs(float(ref[f"{name}_energy"])) + 1e-6
        torch.testing.assert_close(out.forces.double(), torch.from_numpy(ref[f"{name}_forces"]), rtol=1e-4, atol=2e-6)


def _mismatch(pot, ref) -> float:
    """Largest relative difference of energy or forces from the reference, over both molecules."""
    worst = 0.0
    for name in MOLECULES:
        out = pot(molecule(ref, name))
        e_ref, f_ref = float(ref[f"{name}_energy"]), torch.from_numpy(ref[f"{name}_forces"])
        worst = max(worst, abs(out.energy.item() - e_ref) / abs(e_ref),
                    ((out.forces.detach() - f_ref).abs().max() / f_ref.abs().max()).item())
    return worst


@pytest.mark.parametrize("change", ["radial width", "velocity gate", "last node layer", "distance epsilon",
                                    "direction epsilon", "cutoff"])
def test_parity_fails_when_a_weight_or_constant_changes(change, monkeypatch):
    ref = golden()
    pot, _ = reference_potential()
    assert _mismatch(pot, ref) < 1e-9
    model = pot.model
    with torch.no_grad():
        if change == "radial width":
            model.layers[1].edge_model.kernel.betas[7] *= 1.001
        elif change == "velocity gate":
            model.layers[2].velocity_mlp[2].weight[0, 3] += 1e-3
        elif change == "last node layer":
            model.layers[-1].node_mlp[2].bias[0] += 1e-3
    if change == "distance epsilon":
        monkeypatch.setattr(sake_layers, "DISTANCE_EPSILON", 2e-5)
    elif change == "direction epsilon":
        monkeypatch.setattr(sake_layers, "DIRECTION_EPSILON", 2e-5)
    elif change == "cutoff":  # pair weights of 0.95-0.99 instead of 1
        pot, _ = reference_potential(cutoff=25.0)
    assert _mismatch(pot, ref) > 1e-7


# ------------------------------------------------------- equations one by one
def test_distance_and_direction():
    vec = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    d = sake_distance(vec)
    torch.testing.assert_close(d[:, 0], torch.tensor([math.sqrt(25 + 1e-5), math.sqrt(1e-5)], dtype=torch.float64))
    u = sake_direction(vec, d)
    torch.testing.assert_close(u[0], vec[0] / (math.sqrt(25 + 1e-5) + 1e-5))
    assert torch.equal(u[1], torch.zeros(3, dtype=torch.float64))


def test_exp_normal_smearing_initial_values():
    rbf = ExpNormalSmearing(num_rbf=4, upper=5.0).double()
    start = math.exp(-5.0)
    torch.testing.assert_close(rbf.means.detach(), torch.linspace(start, 1.0, 4, dtype=torch.float64))
    beta = (2.0 / 4 * (1 - start)) ** -2
    d = torch.tensor([[1.3]], dtype=torch.float64)
    expected = torch.exp(-beta * (math.exp(-1.3) - torch.linspace(start, 1.0, 4, dtype=torch.float64)) ** 2)
    torch.testing.assert_close(rbf(d)[0], expected)
    assert {n for n, _ in rbf.named_parameters()} == {"means", "betas"}  # trainable, as in the reference


def test_pair_weight_is_the_cosine_cutoff_and_stays_accurate_in_float32():
    r = torch.linspace(0.0, 4.5, 1001, dtype=torch.float64)
    torch.testing.assert_close(CosinePairWeight(4.0)(r), CosineCutoff(4.0)(r), rtol=0, atol=1e-15)
    near = torch.tensor([4.0 - 3e-4, 4.0 - 1e-4])
    exact = CosineCutoff(4.0)(near.double())
    torch.testing.assert_close(CosinePairWeight(4.0)(near).double(), exact, rtol=1e-2, atol=0)
    assert (CosinePairWeight(4.0)(near) > 0).all()


def test_combined_attention_is_the_softmax_with_unit_weights():
    torch.manual_seed(1)
    center = torch.tensor([0, 0, 0, 1, 1, 2])
    logits = torch.randn(6, 3, dtype=torch.float64)
    attention = combined_attention(logits, torch.ones(6, 1, dtype=torch.float64), center, 3)
    for i in range(3):
        torch.testing.assert_close(attention[center == i], torch.softmax(logits[center == i], dim=0))


def test_combined_attention_with_weights():
    torch.manual_seed(2)
    center = torch.tensor([0, 0, 0, 1])
    logits = torch.randn(4, 2, dtype=torch.float64)
    weight = torch.tensor([[0.9], [0.3], [0.0], [0.2]], dtype=torch.float64)
    attention = combined_attention(logits, weight, center, 2)
    a = torch.softmax(logits[:3], dim=0)
    c = weight[:3] * a / (weight[:3] * a).sum(0)
    torch.testing.assert_close(attention[:3], weight[:3] * c)
    torch.testing.assert_close(attention[3], weight[3].expand(2))  # a lone neighbour: its weight
    assert torch.equal(attention[2], torch.zeros(2, dtype=torch.float64))
    zero = combined_attention(logits[3:], torch.zeros(1, 1, dtype=torch.float64), center[3:] * 0, 1)
    assert torch.equal(zero, torch.zeros(1, 2, dtype=torch.float64))  # all weights 0: no NaN


def test_smooth_neighbor_count():
    center = torch.tensor([0, 0, 2])
    weight = torch.tensor([[1.0], [0.25], [0.5]], dtype=torch.float64)
    torch.testing.assert_close(smooth_neighbor_count(weight, center, 3)[:, 0],
                               torch.tensor([2.25, 1.0, 1.5], dtype=torch.float64))


def test_spatial_combinations():
    mixing = torch.nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        mixing.weight.copy_(torch.tensor([[1.0, 0.5], [-2.0, 0.0]]))
    attended = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    direction = torch.tensor([[0.0, 0.6, 0.8]], dtype=torch.float64)
    k = torch.tanh(torch.tensor([0.3 - 0.2, -0.6], dtype=torch.float64))
    torch.testing.assert_close(spatial_combinations(attended, direction, mixing)[0], k[:, None] * direction[0][None, :])


def test_first_layer_has_no_velocity_gate_and_last_layer_does_not_move_atoms():
    model = SAKE(cutoff=4.0, elements=[1, 6], hidden_channels=4, num_layers=3, num_heads=2, num_rbf=4)
    assert not hasattr(model.layers[0], "velocity_mlp") and model.layers[0].update_positions
    assert hasattr(model.layers[1], "velocity_mlp") and model.layers[1].update_positions
    assert not model.layers[2].update_positions and not hasattr(model.layers[2], "v_mixing")
    frozen = SAKE(cutoff=4.0, elements=[1, 6], hidden_channels=4, num_layers=3, num_heads=2, num_rbf=4,
                  update_positions=False)
    assert not any(layer.update_positions for layer in frozen.layers)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_heads=0), "num_heads"), (dict(hidden_channels=2.5), "hidden_channels"), (dict(rbf_upper=-1.0), "rbf_upper"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAKE(cutoff=4.0, elements=[1, 6], **kwargs)


# ------------------------------------------------------------- radius graph
def _trained_like(cutoff, **kwargs):
    torch.manual_seed(3)
    pot = equinnp.build_potential("sake", cutoff=cutoff, elements=[1, 6, 7, 8], dtype="float64",
                                  hidden_channels=8, num_layers=3, num_heads=2, num_rbf=8, **kwargs)
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return pot.eval()


def test_smooth_as_an_atom_crosses_the_cutoff_of_a_real_molecule(rmd17_frames):
    pot = _trained_like(3.0)
    data = rmd17_frames[3]  # aspirin: several pairs cross 3 Å while the rest of the molecule stays connected
    crossings = contract.cutoff_crossings(data, 3.0)
    assert len(crossings) >= 2
    for atom, partner in crossings[:2]:
        contract.check_cutoff_crossing(pot, data, atom, partner)


def test_without_pair_weights_the_energy_would_jump():
    # control: the same molecule and crossing with every pair weight 1 inside the cutoff
    pot = _trained_like(3.0)
    pot.model.pair_weight = _StepWeight(3.0)
    data = Data(z=torch.tensor([6, 8, 1]), pos=torch.tensor([[0.0, 0, 0], [1.2, 0, 0], [3.0, 0.5, 0]], dtype=torch.float64))
    with pytest.raises(AssertionError, match="jumps"):
        contract.check_cutoff_crossing(pot, data, 2, 0)


class _StepWeight(torch.nn.Module):
    def __init__(self, cutoff):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, r):
        return (r < self.cutoff).to(r.dtype)


def test_periodic_positions_move_with_the_fixed_shifts():
    # a cell and its 2x1x1 supercell: every layer's positions of an atom and of its copy
    # differ by the lattice vector, so the moved pair vectors used the neighbor list's shifts
    pot = _trained_like(4.0)
    crystal = random_crystal(5, [1, 6, 7, 8], 3, length=3.5)
    cell = crystal.cell.reshape(3, 3)
    n = crystal.num_nodes
    supercell = from_arrays(crystal.z.repeat(2), torch.cat([crystal.pos, crystal.pos + cell[0]]),
                            cell=torch.diag(torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)) @ cell,
                            dtype=torch.float64)
    small = pot.model.states(captured_graph(pot, crystal))
    large = pot.model.states(captured_graph(pot, supercell))
    moved = 0.0
    for a, b in zip(small[:-1], large[:-1]):
        torch.testing.assert_close(b.x[:n], a.x, rtol=0, atol=1e-10)
        torch.testing.assert_close(b.x[n:], a.x + cell[0], rtol=0, atol=1e-10)
        torch.testing.assert_close(b.h[:n], a.h, rtol=0, atol=1e-10)
        moved = max(moved, (a.x - crystal.pos).abs().max().item())
    assert moved > 1e-3
    e_small, e_large = pot(crystal).energy, pot(supercell).energy
    torch.testing.assert_close(e_large, 2 * e_small, rtol=1e-10, atol=1e-10)
