"""TensorNet: agreement with TorchMD-Net, equivariance of its internal tensors, variants.

``tests/data/tensornet_golden.pt`` holds energies and forces computed by
TorchMD-Net 3.1.0's TensorNet (pure-PyTorch ops, float64) on real rMD17
molecules with random weights, written by
``benchmarks/peers/export_tensornet_golden.py``. The same weights are mapped
onto equinnp's TensorNet here.
"""

import copy
import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import equinnp
from equinnp.models.base import Graph
from equinnp.models.tensornet import TensorNet
from equinnp.neighbors import radius_graph
from equinnp.nn.cartesian_tensors import (
    CARTESIAN_IRREPS,
    TENSORNET_IRREPS,
    change_of_basis,
    decompose,
    matmul,
    squared_norms,
    to_cartesian,
    to_irreps,
)
from equinnp.testing import contract
from equinnp.testing.strategies import molecules, random_molecule, rotations
from equinnp.testing.wigner import wigner_D

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "tensornet_golden.pt")
ELEMENTS = [1, 6, 7, 8]


# ------------------------------------------------------------------ helpers


def load_torchmdnet_weights(model: TensorNet, state: dict) -> None:
    """Copy a TorchMD-Net ``TorchMD_Net(TensorNet, Scalar)`` state_dict into ``model``."""
    rep = "representation_model."
    emb = rep + "tensor_embedding."

    def take(module, prefix):
        module.load_state_dict({k: state[prefix + k] for k in module.state_dict()})

    with torch.no_grad():  # the radial constants are not copied: test_radial_constants_equal_torchmdnets compares them
        e = model.embedding
        e.species_embedding.weight.copy_(state[emb + "emb.weight"][model.elements])
        take(e.pair_embedding, emb + "emb2.")
        e.distance_proj.weight.copy_(torch.cat([state[emb + f"distance_proj{k}.weight"] for k in (1, 2, 3)]))
        e.distance_proj.bias.copy_(torch.cat([state[emb + f"distance_proj{k}.bias"] for k in (1, 2, 3)]))
        take(e.norm, emb + "init_norm.")
        take(e.scalar_net[0], emb + "linears_scalar.0.")
        take(e.scalar_net[2], emb + "linears_scalar.1.")
        for part, k in zip((e.mix.scalar, e.mix.antisymmetric, e.mix.symmetric), range(3)):
            take(part, emb + f"linears_tensor.{k}.")
        for t, layer in enumerate(model.interactions):
            prefix = rep + f"layers.{t}."
            for position, k in zip((0, 2, 4), range(3)):
                take(layer.edge_net[position], prefix + f"linears_scalar.{k}.")
            mixes = (layer.mix_in.scalar, layer.mix_in.antisymmetric, layer.mix_in.symmetric,
                     layer.mix_out.scalar, layer.mix_out.antisymmetric, layer.mix_out.symmetric)
            for k, part in enumerate(mixes):
                take(part, prefix + f"linears_tensor.{k}.")
        take(model.out_norm, rep + "out_norm.")
        take(model.out_linear, rep + "linear.")
        take(model.readout[0], "output_model.output_network.layers.0.")
        take(model.readout[2], "output_model.output_network.layers.2.")


def graph_of(model: TensorNet, data, pos=None) -> Graph:
    """The ``Graph`` that ``Potential`` would hand to ``model`` for a molecule."""
    pos = data.pos if pos is None else pos
    edge_index = radius_graph(pos, model.cutoff).edge_index
    j, i = edge_index
    edge_vec = pos[j] - pos[i]  # [E, 3]
    species = torch.tensor([model.elements.index(int(z)) for z in data.z])
    return Graph(species, data.z, pos, edge_index, edge_vec, edge_vec.norm(dim=-1),
                 torch.zeros_like(data.z), 1)


def D_from_matrix(irreps, R):
    """D(R) of ``irreps``, exact in float64 (``equinnp.testing.wigner.wigner_D``, no Euler
    angles), and the relative tolerance of the comparisons: float64 rounding of the
    computation under test, far below the error of order 1 that a wrong basis gives."""
    return wigner_D(irreps, R), 1e-12


def tiny(group="O(3)", seed=0, **kw):
    torch.manual_seed(seed)
    model = TensorNet(cutoff=4.0, elements=ELEMENTS, equivariance_invariance_group=group, **{**TensorNet.tiny, **kw})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.double().eval()


# ------------------------------------------------------- TorchMD-Net parity


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def potential_from_golden(golden, group: str) -> equinnp.Potential:
    """equinnp's TensorNet with the golden file's TorchMD-Net weights (its radial constants are its own)."""
    c = golden["config"]
    assert c["reduce_op"] == "sum" and c["output_model"] == "Scalar" and c["cutoff_lower"] == 0.0
    state = golden[group]["state_dict"]
    assert float(state["std"]) == 1.0 and float(state["mean"]) == 0.0  # no standardisation to undo
    model = TensorNet(
        cutoff=c["cutoff_upper"], elements=[1, 6, 8], hidden_channels=c["embedding_dimension"],
        num_layers=c["num_layers"], num_rbf=c["num_rbf"], activation=c["activation"],
        equivariance_invariance_group=group,
    ).double()
    load_torchmdnet_weights(model, state)
    return equinnp.Potential(model, architecture="tensornet").double().eval()


def compare_with_golden(pot, golden, group: str, rtol: float = 1e-11) -> None:
    for molecule in golden["molecules"]:
        ref = golden[group][molecule]
        batch = ref["batch"]
        data = type("Batch", (), dict(z=ref["z"], pos=ref["pos"], batch=batch, num_graphs=int(batch.max()) + 1))
        out = pot(data)
        energy_error = (out.energy - ref["energy"]).abs().max() / ref["energy"].abs().max()
        force_error = (out.forces - ref["forces"]).abs().max() / ref["forces"].abs().max()
        assert energy_error < rtol, f"{molecule}: energy deviates by {energy_error:.2e} (relative)"
        assert force_error < rtol, f"{molecule}: forces deviate by {force_error:.2e} (relative)"


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_matches_torchmdnet(golden, group):
    compare_with_golden(potential_from_golden(golden, group), golden, group)


def test_radial_constants_equal_torchmdnets(golden):
    """equinnp computes its exp-normal centers and widths itself; they equal TorchMD-Net's
    (both round the centers to float32 before use: 4e-10 from the exact float64 grid)."""
    c = golden["config"]
    rbf = potential_from_golden(golden, "O(3)").model.radial_basis
    state = golden["O(3)"]["state_dict"]
    torch.testing.assert_close(rbf.means, state["representation_model.distance_expansion.means"], rtol=0, atol=6e-8)
    torch.testing.assert_close(rbf.betas, state["representation_model.distance_expansion.betas"], rtol=1e-7, atol=0)
    assert rbf.alpha == 5.0 / (c["cutoff_upper"] - c["cutoff_lower"])


@pytest.mark.parametrize("change", ["centers shifted", "widths doubled"])
def test_parity_fails_with_a_wrong_radial_basis(golden, change):
    pot = potential_from_golden(golden, "O(3)")
    with torch.no_grad():
        if change == "centers shifted":
            pot.model.radial_basis.means.add_(0.01)
        else:
            pot.model.radial_basis.betas.mul_(0.25)
    with pytest.raises(AssertionError, match="deviate"):
        compare_with_golden(pot, golden, "O(3)")


def test_golden_groups_differ(golden):
    """The O(3) and SO(3) references are different functions (the group choice is exercised)."""
    e_o3, e_so3 = golden["O(3)"]["ethanol"]["energy"], golden["SO(3)"]["ethanol"]["energy"]
    assert (e_o3 - e_so3).abs().max() > 1e-6


# ------------------------------------------------------ Cartesian tensors


@given(R=rotations(reflections=True), seed=st.integers(0, 2**16))
def test_change_of_basis_is_e3nn_irreps(R, seed):
    """R X R^T in Cartesian form is D(R) x in irreps form (0e + 1e + 2e), and norms agree."""
    X = torch.randn(4, 3, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    Q = change_of_basis()
    rotated = torch.einsum("ab,nbcf,dc->nadf", R, X, R)
    D, tol = D_from_matrix(CARTESIAN_IRREPS, R)
    torch.testing.assert_close(to_irreps(rotated, Q), torch.einsum("kl,nlf->nkf", D, to_irreps(X, Q)), rtol=0, atol=tol * X.abs().max().item())
    torch.testing.assert_close(to_cartesian(to_irreps(X, Q), Q), X, rtol=0, atol=1e-12)
    I, A, S = decompose(X)
    x = to_irreps(X, Q)
    expected = torch.stack([(P * P).sum((1, 2)) for P in (I, A, S)], dim=1)  # [4, 3, 5]
    torch.testing.assert_close(squared_norms(x), expected, rtol=1e-12, atol=1e-12)
    for P, k in zip((I, A, S), (slice(0, 1), slice(1, 4), slice(4, 9))):  # each part lives in its own slice
        part = to_irreps(P, Q)
        assert part[:, k].abs().max() > 0 and torch.cat([part[:, :k.start], part[:, k.stop:]], 1).abs().max() < 1e-12
    Y = torch.randn(4, 3, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(matmul(X, Y), torch.einsum("nabf,nbcf->nacf", X, Y))


# ------------------------------------------------- internal equivariance


def _features(model, data, R):
    g = graph_of(model, data)
    g_rot = graph_of(model, data, pos=data.pos @ R.T)
    return model.features(g), model.features(g_rot)


@given(data=molecules(ELEMENTS, 2, 7), R=rotations(reflections=True))
def test_o3_features_transform_as_irreps(data, R):
    """O(3) TensorNet: every layer's I, A, S (as e3nn irreps 0e + 1o + 2e) follow D(R), reflections included."""
    model = tiny("O(3)")
    D, tol = D_from_matrix(TENSORNET_IRREPS, R)
    for x, x_rot in zip(*_features(model, data, R)):
        expected = torch.einsum("kl,nlf->nkf", D, x)
        scale = max(x.abs().max().item(), 1e-12)
        assert (x_rot - expected).abs().max() <= tol * scale


def test_antisymmetric_part_is_polar_not_axial(rmd17_frames):
    """Under inversion TensorNet's A flips sign: ``1o`` is right, the ``1e`` of a generic Cartesian tensor is not."""
    model = tiny("O(3)")
    x, x_inv = _features(model, rmd17_frames[0], -torch.eye(3, dtype=torch.float64))
    for a, b in zip(x, x_inv):
        torch.testing.assert_close(b[:, 1:4], -a[:, 1:4], rtol=0, atol=1e-12)
        torch.testing.assert_close(b[:, [0, 4, 5, 6, 7, 8]], a[:, [0, 4, 5, 6, 7, 8]], rtol=0, atol=1e-12)
        assert a[:, 1:4].abs().max() > 1e-3  # nonzero, so the sign flip is a real check


@given(data=molecules(ELEMENTS, 2, 7), R=rotations(reflections=False))
def test_so3_features_transform_under_rotations(data, R):
    model = tiny("SO(3)")
    D, tol = D_from_matrix(TENSORNET_IRREPS, R)
    for x, x_rot in zip(*_features(model, data, R)):
        scale = max(x.abs().max().item(), 1e-12)
        assert (x_rot - torch.einsum("kl,nlf->nkf", D, x)).abs().max() <= tol * scale


# ------------------------------------------------------------- variants


def _potential(model):
    return equinnp.Potential(model, architecture="tensornet").double().eval()


@given(data=molecules(ELEMENTS, 3, 8), R=rotations(reflections=False))
def test_so3_energy_invariant_under_rotations(data, R):
    contract.check_rotation(_potential(tiny("SO(3)")), data, R)


def test_so3_energy_changes_under_reflection_o3_does_not(rmd17_frames):
    """A chiral-sensitive SO(3) model distinguishes a molecule from its mirror image; O(3) does not."""
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    data = rmd17_frames[3]  # aspirin
    reflected = copy.copy(data)
    reflected.pos = data.pos @ mirror
    so3, o3_ = _potential(tiny("SO(3)")), _potential(tiny("O(3)"))
    assert (so3(reflected).energy - so3(data).energy).abs().item() > 1e-6
    contract.check_rotation(o3_, data, mirror)


def test_self_loops_matter_and_can_be_switched_off():
    data = random_molecule(3, ELEMENTS, 5)
    with_loops, without = _potential(tiny(self_loops=True)), _potential(tiny(self_loops=False))
    without.load_state_dict(with_loops.state_dict())
    assert (with_loops(data).energy - without(data).energy).abs().item() > 1e-6
    contract.check_finite_difference_forces(without, data)


def test_isolated_atom_has_finite_energy():
    data = random_molecule(1, ELEMENTS, 1)
    out = _potential(tiny())(data)
    assert torch.isfinite(out.energy).all() and out.forces.abs().max() == 0


@pytest.mark.parametrize(
    "bad", [dict(equivariance_invariance_group="O3"), dict(activation="relu6"), dict(num_rbf=0)]
)
def test_bad_hyperparameters_raise(bad):
    with pytest.raises(ValueError, match=str(list(bad.values())[0]).replace("(", r"\(").replace(")", r"\)")):
        TensorNet(cutoff=4.0, elements=ELEMENTS, **bad)


# ------------------------------------------------------- message kernels


def test_fused_messages_match_pyg_propagate(rmd17_frames):
    """The chunked message sums give PyG ``propagate`` of ``message()`` to round-off (forces included)."""
    from equinnp.testing.strategies import random_crystal

    fused, plain = _potential(tiny()), _potential(tiny())
    for layer in plain.model.interactions:
        layer.fused = False
    for data in (rmd17_frames[3], random_crystal(5, ELEMENTS, 3, length=3.0)):  # a molecule, a small crystal
        a, b = fused(data), plain(data)
        torch.testing.assert_close(a.energy, b.energy, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.forces, b.forces, rtol=1e-10, atol=1e-12)


def test_message_ops_derivatives_of_all_orders():
    from equinnp.nn.tensor_messages import EdgeSet, edge_inner, segment_sum, weighted_aggregate

    g = torch.Generator().manual_seed(0)
    N, E, F = 6, 30, 2
    src, dst = torch.randint(0, N, (E,), generator=g), torch.randint(0, N, (E,), generator=g)
    edges = EdgeSet.from_index(src, dst)
    y = torch.randn(N, 9, F, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(N, 9, F, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(E, 3, F, dtype=torch.float64, generator=g, requires_grad=True)
    expanded = torch.cat([w[:, :1], w[:, 1:2].expand(E, 3, F), w[:, 2:3].expand(E, 5, F)], 1)
    reference = torch.zeros(N, 9, F, dtype=torch.float64).index_add(0, dst, expanded * y[src])
    torch.testing.assert_close(weighted_aggregate(y, w, edges, N), reference)
    products = y[src] * b[dst]
    torch.testing.assert_close(edge_inner(y, b, edges), torch.stack(
        [products[:, 0], products[:, 1:4].sum(1), products[:, 4:9].sum(1)], 1))
    for fn, args in [
        (lambda y, w: weighted_aggregate(y, w, edges, N), (y, w)),
        (lambda y, b: edge_inner(y, b, edges), (y, b)),
        (lambda y: segment_sum(y[src] ** 2, dst, N), (y,)),
    ]:
        assert torch.autograd.gradcheck(fn, args) and torch.autograd.gradgradcheck(fn, args)


def test_reverse_pairs_pair_images_and_refuse_non_pairings():
    from equinnp.neighbors.reverse import reverse_edges
    from equinnp.nn.tensor_messages import reverse_pairs

    # sorted by center, neighbor, shift: atom 0 sees itself through images -x and +x, and atom 1
    edge_index = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1]])
    shifts = torch.tensor([[-1.0, 0, 0], [1.0, 0, 0], [0, 0, 0], [0, 0, 0]])
    reverse = reverse_edges(edge_index, shifts, 2)
    assert reverse.tolist() == [1, 0, 3, 2]
    pairs = reverse_pairs(reverse)
    assert pairs.first.tolist() == [0, 2] and pairs.second.tolist() == [1, 3] and pairs.pair.tolist() == [0, 0, 1, 1]
    empty = reverse_pairs(torch.zeros(0, dtype=torch.long))
    assert empty.first.numel() == empty.pair.numel() == 0
    for bad in ([0, 1, 3, 2], [1, 2, 3, 0]):  # an edge its own reverse; not a pairing
        with pytest.raises(ValueError, match="reverse_edge"):
            reverse_pairs(torch.tensor(bad))


def test_pair_sharing_in_a_periodic_cell_shorter_than_the_cutoff():
    """In a 2.5 Å cell with a 4 Å cutoff (several images of every pair, atoms their own
    neighbors) the radial networks still run once per pair, with the numbers of the
    per-edge evaluation; forces and stress are the derivatives of the energy."""
    from equinnp.testing.strategies import random_crystal

    data = random_crystal(2, ELEMENTS, 3, length=2.5)
    shared, per_edge = _potential(tiny()), _potential(tiny())
    per_edge.load_state_dict(shared.state_dict())
    per_edge.model.needs_reverse_edges = False  # the graph comes without reverse edges: nothing shared
    seen = {}
    shared.model.register_forward_pre_hook(lambda module, args: seen.update(graph=args[0]))
    shared.model.radial_basis.register_forward_hook(lambda module, args, out: seen.setdefault("rbf", []).append(args[0].shape[0]))
    a, b = shared(data), per_edge(data)

    graph = seen["graph"]
    j, i = graph.edge_index
    E = j.shape[0]
    assert (i == j).any() and torch.unique(i * data.num_nodes + j).numel() < E  # self-images, several images per pair
    assert graph.reverse_edge is not None and max(seen["rbf"]) == E // 2  # one radial evaluation per pair
    torch.testing.assert_close(a.energy, b.energy, rtol=1e-13, atol=0)
    torch.testing.assert_close(a.forces, b.forces, rtol=0, atol=1e-12 * b.forces.abs().max().item())
    torch.testing.assert_close(a.stress, b.stress, rtol=0, atol=1e-12 * b.stress.abs().max().item())
    contract.check_finite_difference_forces(shared, data)
    contract.check_stress_finite_difference(shared, data)


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_float32_matches_torchmdnet_to_float32_round_off(golden, group):
    pot = potential_from_golden(golden, group).float()
    for molecule in golden["molecules"]:
        ref = golden[group][molecule]
        batch = ref["batch"]
        data = type("Batch", (), dict(z=ref["z"], pos=ref["pos"], batch=batch, num_graphs=int(batch.max()) + 1))
        out = pot(data)
        assert (out.energy - ref["energy"]).abs().max() <= 2e-6 * ref["energy"].abs().max()
        assert (out.forces.double() - ref["forces"]).abs().max() <= 2e-5 * ref["forces"].abs().max()
