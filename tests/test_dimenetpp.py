"""equinnp DimeNet++ gives torch_geometric's DimeNetPlusPlus numbers given the same weights (live, float64).

PyG 2.8's ``DimeNet.forward`` calls two module-level functions of
``torch_geometric.nn.models.dimenet`` that need compiled packages not installable
here: ``radius_graph`` (pyg-lib) and ``triplets`` (torch-sparse). Inside these
tests only, they are replaced by the pure-PyTorch functions below, written from
PyG's documented behaviour: the radius graph raises when an atom has more than
PyG's ``max_num_neighbors`` neighbors (so that PyG's silent truncation cannot
hide a mismatch), and the triplets are PyG's (every k → j → i with k ≠ i by atom
index), enumerated by brute force, independently of equinnp's triplet code.
PyG's zero-initialised output layers are randomised, and every other weight
perturbed, so that nothing is compared at zero.
"""

import copy

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.data import from_arrays
from equinnp.neighbors import radius_graph
from equinnp.neighbors.reverse import reverse_edges
from equinnp.neighbors.triplets import triplets
from equinnp.testing.parity import pyg_dimenetpp_twin, pyg_dimenetpp_weights

HYPER = dict(hidden_channels=32, out_emb_channels=48, int_emb_size=16, basis_emb_size=8, num_blocks=2,
             num_spherical=7, num_radial=6, cutoff=5.0)
ELEMENTS = [1, 6, 8]


def pure_radius_graph(x, r, batch=None, loop=False, max_num_neighbors=32, flow="source_to_target", **_):
    """PyG's ``radius_graph`` by brute force; raises where PyG would silently drop neighbors."""
    assert flow == "source_to_target" and not loop
    batch = torch.zeros(x.shape[0], dtype=torch.long) if batch is None else batch
    distance = torch.cdist(x, x)
    close = (distance <= r) & (batch[:, None] == batch[None, :])
    close.fill_diagonal_(False)
    count = close.sum(dim=1)
    if int(count.max()) > max_num_neighbors:
        raise RuntimeError(f"an atom has {int(count.max())} neighbors, more than PyG's cap {max_num_neighbors}")
    target, source = close.nonzero(as_tuple=True)
    return torch.stack([source, target])  # [0] = j (source), [1] = i (target)


def pure_pyg_triplets(edge_index, num_nodes):
    """PyG's ``triplets``: every (k -> j, j -> i) with k != i by atom index, ordered by ji then kj."""
    row, col = edge_index  # j -> i
    joins = (col[None, :] == row[:, None]) & (row[None, :] != col[:, None])  # [E_ji, E_kj]
    idx_ji, idx_kj = joins.nonzero(as_tuple=True)
    return col, row, col[idx_ji], row[idx_ji], row[idx_kj], idx_kj, idx_ji


@pytest.fixture
def patched_pyg(monkeypatch):
    import torch_geometric.nn.models.dimenet as pyg_dimenet

    monkeypatch.setattr(pyg_dimenet, "radius_graph", pure_radius_graph)
    monkeypatch.setattr(pyg_dimenet, "triplets", pure_pyg_triplets)
    return pyg_dimenet


@pytest.fixture(scope="module")
def model_and_twin():
    torch.manual_seed(0)
    pot = equinnp.build_potential("dimenetpp", elements=ELEMENTS, dtype="float64", **HYPER).eval()
    with torch.no_grad():
        for name, p in pot.model.named_parameters():
            if name.endswith("lin.weight") and "output_blocks" in name:
                p.copy_(0.1 * torch.randn_like(p))  # PyG initialises these to zero
            elif name != "rbf.freq":
                p.add_(0.05 * torch.randn_like(p))
        pot.model.rbf.freq.mul_(1.0 + 0.02 * torch.randn_like(pot.model.rbf.freq))
    return pot, pyg_dimenetpp_twin(pot.model, exact_normalizer=True)


def pyg_energy_forces(twin, batch, dtype=torch.float64):
    pos = batch.pos.to(dtype).clone().requires_grad_(True)
    energy = twin(batch.z, pos, batch.batch).squeeze(-1)  # [B]
    forces = -torch.autograd.grad(energy.sum(), pos)[0]
    return energy, forces


@pytest.mark.parametrize("frames", [[0], [3], [0, 1, 2, 3, 4]], ids=["ethanol", "aspirin", "batch"])
def test_energies_and_forces_match_pyg(model_and_twin, patched_pyg, rmd17_frames, frames):
    pot, twin = model_and_twin
    batch = Batch.from_data_list([rmd17_frames[k] for k in frames])
    ours = pot(batch)
    energy, forces = pyg_energy_forces(twin, batch)
    assert energy.abs().min() > 1e-2 and forces.abs().max() > 1e-2  # nothing compared at zero
    # Round-off only: PyG's sympy forms print their constants to 15 digits and sum the
    # closed-form terms of j_l in another order (measured: <= 1.1e-12 on these frames).
    print(f"energy rel {float(((ours.energy - energy) / energy).detach().abs().max()):.1e}, "
          f"forces rel-to-max {float((ours.forces - forces).abs().max() / forces.abs().max()):.1e}")
    torch.testing.assert_close(ours.energy, energy, rtol=5e-12, atol=0.0)
    torch.testing.assert_close(ours.forces, forces, rtol=0.0, atol=5e-11 * float(forces.abs().max()))


def test_bases_match_pygs(model_and_twin):
    """RBF and SBF (PyG's [T, L·R] basis, rebuilt from equinnp's per-edge and per-triplet factors)."""
    pot, twin = model_and_twin
    model = pot.model
    data = Batch.from_data_list([from_arrays([8, 1, 1, 6], [[0, 0, 0], [0.96, 0, 0], [-0.3, 0.9, 0.1], [0.2, -0.4, 1.3]],
                                             dtype=torch.float64)])
    edge_index = pure_radius_graph(data.pos, 5.0)
    j, i = edge_index
    vec = data.pos[j] - data.pos[i]
    dist = vec.norm(dim=-1)
    trip = triplets(edge_index, reverse_edges(edge_index, torch.zeros_like(vec), 4), 4)
    x = dist / model.cutoff
    env = model.envelope(x)
    torch.testing.assert_close(model.rbf(env, x), twin.rbf(dist), rtol=1e-13, atol=1e-13)
    unit = vec / dist[:, None]
    cos = (unit[trip.idx_ji] * unit[trip.idx_kj]).sum(-1)
    ours = (model.sbf_radial(env, x)[trip.idx_kj] * model.sbf_angular(cos).unsqueeze(-1)).flatten(1)  # [T, L*R]
    _, _, idx_i, idx_j, idx_k, idx_kj, idx_ji = pure_pyg_triplets(edge_index, 4)
    assert torch.equal(idx_kj, trip.idx_kj) and torch.equal(idx_ji, trip.idx_ji)
    pos = data.pos
    a = ((pos[idx_i] - pos[idx_j]) * (pos[idx_j] - pos[idx_k])).sum(-1)
    b = torch.cross(pos[idx_i] - pos[idx_j], pos[idx_j] - pos[idx_k], dim=1).norm(dim=-1)
    theirs = twin.sbf(dist, torch.atan2(b, a), idx_kj)
    # j_6 at the shortest bond (0.96 Å) is a cancellation in both closed forms: ~2e-12 of the largest value
    torch.testing.assert_close(ours, theirs, rtol=0.0, atol=5e-12 * float(theirs.abs().max()))


def test_parity_fails_with_a_changed_weight_or_constant(model_and_twin, patched_pyg, rmd17_frames):
    pot, twin = model_and_twin
    batch = Batch.from_data_list(rmd17_frames[:1])
    reference = pot(batch, compute_forces=False).energy
    torch.testing.assert_close(reference, twin(batch.z, batch.pos, batch.batch).squeeze(-1), rtol=1e-12, atol=0.0)
    changes = [
        (twin.interaction_blocks[1].lin_sbf1.weight, (0, 40)),  # a weight of the l = 6 spherical channel
        (twin.output_blocks[2].lin.weight, (0, 5)),
    ]
    for tensor, index in changes:
        with torch.no_grad():
            tensor[index] += 1e-4
        try:
            changed = twin(batch.z, batch.pos, batch.batch).squeeze(-1)
            assert not torch.allclose(reference, changed, rtol=1e-10, atol=0.0)
        finally:
            with torch.no_grad():
                tensor[index] -= 1e-4
    roots = pot.model.sbf_radial.roots
    saved = roots.clone()
    try:
        roots[6, 0] = float(np.float64(saved[6, 0]) * (1 + 1e-7))  # a Bessel root not rounded to float32
        changed = pot(batch, compute_forces=False).energy
        assert not torch.allclose(reference, changed, rtol=1e-12, atol=0.0)
    finally:
        roots.copy_(saved)


def test_float32_agrees_with_pyg_float32(model_and_twin, patched_pyg, rmd17_frames):
    pot, twin = model_and_twin
    pot32 = copy.deepcopy(pot).float()
    twin32 = pyg_dimenetpp_weights(copy.deepcopy(twin).float(), pot32.model)
    batch = Batch.from_data_list(rmd17_frames)
    ours = pot32(batch)
    energy, forces = pyg_energy_forces(twin32, batch, torch.float32)
    assert (ours.energy - energy.double()).abs().max() <= 1e-5 * energy.abs().max()
    assert (ours.forces - forces).abs().max() <= 1e-4 * forces.abs().max()


def test_pyg_normalizer_is_float32_round_off(model_and_twin):
    """PyG's own (float32-arithmetic) normalisers and float32 roots against equinnp's, at x = 0.5."""
    from torch_geometric.nn.models.dimenet_utils import Jn_zeros, bessel_basis
    import sympy as sym

    pot, _ = model_and_twin
    L, R = 3, 4  # a small basis: sympy's simplify of the full 7 x 6 one takes half a minute
    ours = type(pot.model.sbf_radial)(L, R)
    torch.testing.assert_close(ours.roots, torch.from_numpy(Jn_zeros(L, R).astype(np.float64)), rtol=0, atol=0)
    forms = bessel_basis(L, R)
    x = sym.symbols("x")
    theirs = torch.tensor([[sym.lambdify([x], forms[l][n], "math")(0.5) for n in range(R)] for l in range(L)], dtype=torch.float64)
    half = torch.tensor([0.5], dtype=torch.float64)
    mine = ours(torch.ones_like(half), half)[0]  # [L, R], envelope 1
    torch.testing.assert_close(mine, theirs, rtol=4e-7, atol=0)
    assert not torch.allclose(mine, theirs, rtol=1e-12, atol=0)  # PyG's float32 normaliser is visible


# ------------------------------------------------------------------ triplets


def brute_force_triplets(edge_index, cell_shifts):
    """Every (kj, ji) with dst(kj) = src(ji), except kj = (i -> j, -shift_ji), by loops."""
    found = []
    E = edge_index.shape[1]
    for ji in range(E):
        for kj in range(E):
            if int(edge_index[1, kj]) != int(edge_index[0, ji]):
                continue
            back = int(edge_index[0, kj]) == int(edge_index[1, ji]) and torch.equal(cell_shifts[kj], -cell_shifts[ji])
            if not back:
                found.append((kj, ji))
    return found


def test_triplets_equal_brute_force_on_a_molecule_batch(rmd17_frames):
    batch = Batch.from_data_list(rmd17_frames[:2])
    nl = radius_graph(batch.pos, 3.0, batch=batch.batch)
    trip = triplets(nl.edge_index, reverse_edges(nl.edge_index, nl.cell_shifts, batch.num_nodes), batch.num_nodes)
    expected = brute_force_triplets(nl.edge_index, nl.cell_shifts)
    assert sorted(zip(trip.idx_kj.tolist(), trip.idx_ji.tolist())) == sorted(expected)
    assert len(expected) > 100
    assert bool((trip.idx_ji[1:] >= trip.idx_ji[:-1]).all())
    # without periodicity, the same set as PyG's k != i rule
    _, _, _, _, _, pyg_kj, pyg_ji = pure_pyg_triplets(nl.edge_index, batch.num_nodes)
    assert sorted(zip(pyg_kj.tolist(), pyg_ji.tolist())) == sorted(expected)


def test_triplets_through_periodic_images_survive_in_a_small_cell():
    """One atom in a 3 Å cubic cell, cutoff 3.5 Å: its six images at 3 Å are its only neighbors.

    Every triplet has k = i by atom index, so PyG's rule would keep none; the
    back-tracking rule keeps 6 x 5 = 30 (each edge, with every other image).
    """
    cell = 3.0 * torch.eye(3, dtype=torch.float64)
    pos = torch.zeros(1, 3, dtype=torch.float64)
    nl = radius_graph(pos, 3.5, cell=cell.unsqueeze(0), pbc=torch.ones(1, 3, dtype=torch.bool))
    assert nl.edge_index.shape[1] == 6
    trip = triplets(nl.edge_index, reverse_edges(nl.edge_index, nl.cell_shifts, 1), 1)
    assert trip.num_triplets == 30
    assert sorted(zip(trip.idx_kj.tolist(), trip.idx_ji.tolist())) == sorted(
        brute_force_triplets(nl.edge_index, nl.cell_shifts))
    kept_shift_pairs = {(tuple(nl.cell_shifts[a].long().tolist()), tuple(nl.cell_shifts[b].long().tolist()))
                        for a, b in zip(trip.idx_kj.tolist(), trip.idx_ji.tolist())}
    assert all(kj != tuple(-s for s in ji) for kj, ji in kept_shift_pairs)
    assert pure_pyg_triplets(nl.edge_index, 1)[5].numel() == 0


def test_angles_through_images_reach_the_energy():
    """Two cells that differ only in angles beyond one bond give different DimeNet++ energies."""
    torch.manual_seed(1)
    pot = equinnp.build_potential("dimenetpp", elements=[6], dtype="float64", cutoff=3.5,
                                  **equinnp.ARCHITECTURES["dimenetpp"].tiny).eval()
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.1 * torch.randn_like(p))
    energies = []
    for angle in (90.0, 75.0):
        c = np.cos(np.radians(angle))
        cell = 3.0 * np.array([[1.0, 0, 0], [c, np.sqrt(1 - c * c), 0], [0, 0, 1.0]])
        data = from_arrays([6], [[0.0, 0.0, 0.0]], cell=cell, pbc=[True] * 3, dtype=torch.float64)
        energies.append(pot(Batch.from_data_list([data]), compute_forces=False).energy)
    assert not torch.allclose(energies[0], energies[1], rtol=1e-6)


def test_missing_reverse_edges_are_refused():
    model = equinnp.ARCHITECTURES["dimenetpp"](elements=[1], **equinnp.ARCHITECTURES["dimenetpp"].tiny)
    from equinnp.models import Graph

    graph = Graph(species=torch.zeros(2, dtype=torch.long), z=torch.ones(2, dtype=torch.long),
                                 pos=torch.zeros(2, 3), edge_index=torch.tensor([[0, 1], [1, 0]]),
                                 edge_vec=torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]), edge_length=torch.ones(2),
                                 batch=torch.zeros(2, dtype=torch.long), num_graphs=1)
    with pytest.raises(ValueError, match="reverse_edge"):
        model(graph)


def test_per_atom_contraction_equals_the_triplet_sum(rmd17_frames):
    """The dense per-atom product of ``triplet_contract`` against a plain gather-and-sum over triplets."""
    from equinnp.nn.triplet_contraction import dense_angular, triplet_contract, triplet_layout

    batch = Batch.from_data_list(rmd17_frames[:2])
    nl = radius_graph(batch.pos, 3.0, batch=batch.batch)
    reverse = reverse_edges(nl.edge_index, nl.cell_shifts, batch.num_nodes)
    trip = triplets(nl.edge_index, reverse, batch.num_nodes)
    layout = triplet_layout(nl.edge_index, reverse, trip, batch.num_nodes)
    g = torch.Generator().manual_seed(0)
    E, T, L, C = nl.edge_index.shape[1], trip.num_triplets, 3, 5
    Y = torch.randn(T, L, generator=g, dtype=torch.float64, requires_grad=True)
    M = torch.randn(E, L, C, generator=g, dtype=torch.float64, requires_grad=True)
    ours = triplet_contract(dense_angular(Y, layout), M, layout)
    plain = torch.zeros(E, C, dtype=torch.float64).index_add(0, trip.idx_ji, (Y.unsqueeze(-1) * M[trip.idx_kj]).sum(1))
    torch.testing.assert_close(ours, plain, rtol=1e-13, atol=1e-13)
    weight = torch.randn(E, C, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((ours * weight).sum(), (Y, M))
    expected = torch.autograd.grad((plain * weight).sum(), (Y, M))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
