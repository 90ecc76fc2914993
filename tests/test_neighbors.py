"""Tests of equinnp.neighbors: every backend against the brute force and ASE."""

import math
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from equinnp.neighbors import NeighborList, RadiusGraph, brute_force_radius_graph, radius_graph
from equinnp.neighbors import torch_cluster_backend, vesin_backend

BACKENDS = ["auto", "cell_list", "brute_force", "dense"]  # dense: open systems; periodic ones fall back to auto
if vesin_backend.is_available():
    BACKENDS.append("vesin")
if torch_cluster_backend.is_available():
    BACKENDS.append("torch_cluster")

DTYPE = torch.float64


def edge_set(nl: NeighborList) -> set:
    """Edges as a set of (center i, neighbor j, shift) tuples."""
    shifts = nl.cell_shifts.round().long().tolist()
    return set(zip(nl.edge_index[1].tolist(), nl.edge_index[0].tolist(), map(tuple, shifts)))


def edge_vectors(nl, pos, batch, cell):
    j, i = nl.edge_index
    vec = pos[j] - pos[i]
    if cell is not None:
        vec = vec + (nl.cell_shifts.unsqueeze(-1) * cell[batch[i]]).sum(dim=1)
    return vec


def full_cell(cell, batch_size):
    if cell is None:
        return None
    cell = torch.as_tensor(cell, dtype=DTYPE)
    return cell.expand(batch_size, 3, 3) if cell.dim() == 2 else cell


def check_backend(backend, pos, cutoff, batch=None, cell=None, pbc=None):
    """Compare a backend with the brute force, and check the edge invariants."""
    ref = brute_force_radius_graph(pos, cutoff, batch, cell, pbc)
    got = radius_graph(pos, cutoff, batch, cell, pbc, backend=backend)
    assert got.edge_index.dtype == torch.long and got.edge_index.shape[0] == 2
    assert got.cell_shifts.dtype == pos.dtype and got.cell_shifts.shape == (got.edge_index.shape[1], 3)
    edges = edge_set(got)
    assert len(edges) == got.edge_index.shape[1], "duplicate edges"
    assert edges == edge_set(ref)
    # Same deterministic order as the reference.
    assert torch.equal(got.edge_index, ref.edge_index)
    assert torch.equal(got.cell_shifts, ref.cell_shifts)
    # Every edge within the cutoff, no zero-shift self edge, both directions present.
    b = torch.zeros(pos.shape[0], dtype=torch.long) if batch is None else batch
    vec = edge_vectors(got, pos, b, full_cell(cell, int(b.max()) + 1 if len(b) else 1))
    assert bool((vec.norm(dim=1) <= cutoff + 1e-9).all())
    for i, j, s in edges:
        assert (j, i, tuple(-x for x in s)) in edges
        assert i != j or any(s)
    if batch is not None:
        assert torch.equal(batch[got.edge_index[0]], batch[got.edge_index[1]])
    return got


def random_cell(gen, skew=1.0):
    cell = torch.eye(3, dtype=DTYPE) * (4.0 + 4.0 * torch.rand(3, generator=gen, dtype=DTYPE))
    return cell + skew * torch.randn(3, 3, generator=gen, dtype=DTYPE)


def in_cell(gen, n, cell):
    return torch.rand(n, 3, generator=gen, dtype=DTYPE) @ cell


# ----------------------------------------------------------------- structures
def case_open_molecule():
    gen = torch.Generator().manual_seed(0)
    return dict(pos=torch.rand(30, 3, generator=gen, dtype=DTYPE) * 8, cutoff=3.0)


def case_batch():
    gen = torch.Generator().manual_seed(1)
    sizes = [7, 1, 12, 0, 9]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    cell = torch.stack([random_cell(gen) for _ in sizes])
    pbc = torch.tensor([[True] * 3, [True] * 3, [False] * 3, [True] * 3, [True, True, False]])
    pos = torch.cat([in_cell(gen, n, cell[b]) for b, n in enumerate(sizes)])
    return dict(pos=pos, cutoff=4.0, batch=batch, cell=cell, pbc=pbc)


def case_open_batch():
    gen = torch.Generator().manual_seed(2)
    batch = torch.tensor([0] * 10 + [1] * 15 + [2] * 5)
    # All systems overlap in space: atoms of different systems must not connect.
    return dict(pos=torch.rand(30, 3, generator=gen, dtype=DTYPE) * 6, cutoff=3.5, batch=batch)


def case_cubic():
    gen = torch.Generator().manual_seed(3)
    cell = torch.eye(3, dtype=DTYPE) * 9.0
    return dict(pos=in_cell(gen, 40, cell), cutoff=4.0, cell=cell)


def case_triclinic():
    gen = torch.Generator().manual_seed(4)
    cell = random_cell(gen, skew=1.5)
    return dict(pos=in_cell(gen, 25, cell), cutoff=4.5, cell=cell)


def case_skewed():
    gen = torch.Generator().manual_seed(5)
    cell = torch.tensor([[6.0, 0.0, 0.0], [5.7, 0.9, 0.0], [-5.5, 0.4, 1.3]], dtype=DTYPE)
    return dict(pos=in_cell(gen, 8, cell), cutoff=4.0, cell=cell)


def case_small_cell():
    gen = torch.Generator().manual_seed(6)
    cell = torch.tensor([[2.0, 0.0, 0.0], [0.3, 1.8, 0.0], [0.2, -0.4, 2.2]], dtype=DTYPE)
    return dict(pos=in_cell(gen, 3, cell), cutoff=5.0, cell=cell)


def case_slab():
    gen = torch.Generator().manual_seed(7)
    cell = torch.tensor([[5.0, 0.0, 0.0], [1.5, 4.5, 0.0], [0.0, 0.0, 0.0]], dtype=DTYPE)
    pos = in_cell(gen, 20, cell) + torch.tensor([0.0, 0.0, 1.0]) * torch.rand(20, 1, generator=gen) * 10
    return dict(pos=pos, cutoff=4.0, cell=cell, pbc=torch.tensor([True, True, False]))


def case_wire():
    gen = torch.Generator().manual_seed(8)
    cell = torch.tensor([[3.0, 1.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=DTYPE)
    pos = torch.rand(10, 3, generator=gen, dtype=DTYPE) * 6
    return dict(pos=pos, cutoff=4.0, cell=cell, pbc=torch.tensor([True, False, False]))


def case_unwrapped():
    gen = torch.Generator().manual_seed(9)
    cell = random_cell(gen, skew=1.0)
    pos = in_cell(gen, 20, cell) + torch.randint(-3, 4, (20, 3), generator=gen).to(DTYPE) @ cell
    return dict(pos=pos, cutoff=4.0, cell=cell)


CASES = {
    name[len("case_"):]: fn for name, fn in dict(globals()).items() if name.startswith("case_")
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_backend_matches_brute_force(case, backend):
    check_backend(backend, **CASES[case]())


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_images_in_cell_shorter_than_cutoff(backend):
    # One atom in a 2 A cube, cutoff 5 A: images at |S| * 2 <= 5, i.e.
    # |S|^2 <= 6, S != 0: 6 + 12 + 8 + 6 + 24 + 24 = 80 integer vectors.
    pos = torch.zeros(1, 3, dtype=DTYPE)
    cell = torch.eye(3, dtype=DTYPE) * 2.0
    nl = check_backend(backend, pos, 5.0, cell=cell)
    assert nl.edge_index.shape[1] == 80
    assert bool((nl.edge_index == 0).all())
    assert not bool((nl.cell_shifts == 0).all(dim=1).any())


@pytest.mark.parametrize("backend", BACKENDS)
def test_unwrapped_positions_give_same_edges(backend):
    gen = torch.Generator().manual_seed(10)
    cell = random_cell(gen, skew=1.0)
    pos = in_cell(gen, 15, cell)
    image = torch.randint(-4, 5, (15, 3), generator=gen)  # [N, 3]
    moved = pos + image.to(DTYPE) @ cell
    wrapped_nl = radius_graph(pos, 4.0, cell=cell, backend=backend)
    moved_nl = radius_graph(moved, 4.0, cell=cell, backend=backend)
    # pos_j - pos_i + S @ cell is unchanged when S absorbs the image offsets.
    image_list = image.tolist()
    expected = {
        (i, j, tuple(s_k + a - b for s_k, a, b in zip(s, image_list[i], image_list[j])))
        for i, j, s in edge_set(wrapped_nl)
    }
    assert edge_set(moved_nl) == expected
    batch = torch.zeros(15, dtype=torch.long)
    vec_a = edge_vectors(wrapped_nl, pos, batch, cell.unsqueeze(0))
    vec_b = edge_vectors(moved_nl, moved, batch, cell.unsqueeze(0))
    key_a = sorted(zip(wrapped_nl.edge_index[1].tolist(), wrapped_nl.edge_index[0].tolist(), vec_a.tolist()))
    key_b = sorted(zip(moved_nl.edge_index[1].tolist(), moved_nl.edge_index[0].tolist(), vec_b.tolist()))
    assert len(key_a) == len(key_b)
    for (ia, ja, va), (ib, jb, vb) in zip(key_a, key_b):
        assert (ia, ja) == (ib, jb)
        assert np.allclose(va, vb, atol=1e-9)


def test_float32_positions_and_empty_inputs():
    gen = torch.Generator().manual_seed(11)
    cell = random_cell(gen)
    pos = in_cell(gen, 20, cell).float()
    for backend in BACKENDS:
        nl = radius_graph(pos, 4.0, cell=cell.float(), backend=backend)
        assert nl.cell_shifts.dtype == torch.float32
        assert edge_set(nl) == edge_set(brute_force_radius_graph(pos, 4.0, cell=cell.float()))
    for backend in BACKENDS:
        nl = radius_graph(torch.zeros(0, 3), 5.0, backend=backend)
        assert nl.edge_index.shape == (2, 0) and nl.cell_shifts.shape == (0, 3)
        nl = radius_graph(torch.zeros(1, 3), 5.0, backend=backend)  # a lone open atom
        assert nl.edge_index.shape == (2, 0)


def test_empty_periodic_inputs():
    cell = torch.eye(3, dtype=DTYPE) * 3
    for backend in BACKENDS:
        nl = radius_graph(torch.zeros(0, 3, dtype=DTYPE), 5.0, cell=cell, backend=backend)
        assert nl.edge_index.shape == (2, 0) and nl.cell_shifts.shape == (0, 3)


def test_auto_choice():
    from equinnp.neighbors.radius_graph import _auto_backend, prepare_systems

    gen = torch.Generator().manual_seed(16)
    molecules = torch.rand(64 * 20, 3, generator=gen, dtype=DTYPE) * 6
    batch = torch.arange(64).repeat_interleave(20)
    assert _auto_backend(prepare_systems(molecules, 5.0, batch)) == "brute_force"
    big = torch.rand(20_000, 3, generator=gen, dtype=DTYPE) * 58
    assert _auto_backend(prepare_systems(big, 5.0)) == "cell_list"
    assert _auto_backend(prepare_systems(big, 5.0, cell=torch.eye(3, dtype=DTYPE) * 58)) == "cell_list"
    crystal = torch.rand(64, 3, generator=gen, dtype=DTYPE) * 9
    expected = "vesin" if "vesin" in BACKENDS else "brute_force"
    assert _auto_backend(prepare_systems(crystal, 5.0, cell=torch.eye(3, dtype=DTYPE) * 9)) == expected


def test_auto_takes_the_dense_search_for_one_small_open_system(monkeypatch):
    from equinnp.neighbors import dense

    calls = []
    original = dense.compute_open
    monkeypatch.setattr(dense, "compute_open", lambda pos, cutoff: calls.append(pos.shape[0]) or original(pos, cutoff))
    gen = torch.Generator().manual_seed(17)
    small = torch.rand(dense.MAX_ATOMS, 3, generator=gen, dtype=DTYPE) * 16
    check_backend("auto", small, 4.0)
    assert calls == [dense.MAX_ATOMS]
    big = torch.rand(dense.MAX_ATOMS + 1, 3, generator=gen, dtype=DTYPE) * 16
    check_backend("auto", big, 4.0)  # the general backends
    check_backend("auto", small, 4.0, batch=torch.zeros(dense.MAX_ATOMS, dtype=torch.long))
    assert calls == [dense.MAX_ATOMS]


@given(seed=st.integers(0, 2**31 - 1), num_atoms=st.integers(0, 40), cutoff=st.floats(0.5, 6.0),
       systems=st.integers(1, 3), float32=st.booleans())
def test_property_dense_equals_brute_force_at_the_cutoff(seed, num_atoms, cutoff, systems, float32):
    """Random molecules, some pairs exactly at the cutoff (on a coordinate axis), one system or a batch."""
    gen = torch.Generator().manual_seed(seed)
    pos = torch.rand(num_atoms, 3, generator=gen, dtype=DTYPE) * 8
    if num_atoms >= 2:
        pos[1] = pos[0] + torch.tensor([cutoff, 0.0, 0.0], dtype=DTYPE)
    if float32:
        pos = pos.float()
    batch = None if systems == 1 else torch.randint(0, systems, (num_atoms,), generator=gen)
    got = check_backend("dense", pos, cutoff, batch=batch)
    if batch is None:
        assert torch.equal(got.edge_index, radius_graph(pos, cutoff).edge_index)


def test_unsorted_batch_and_no_grad():
    gen = torch.Generator().manual_seed(12)
    pos = (torch.rand(24, 3, generator=gen, dtype=DTYPE) * 7).requires_grad_()
    batch = torch.randint(0, 3, (24,), generator=gen)
    for backend in BACKENDS:
        nl = check_backend(backend, pos.detach(), 3.0, batch=batch)
        nl = radius_graph(pos, 3.0, batch=batch, backend=backend)
        assert not nl.cell_shifts.requires_grad


def test_cutoff_boundary_is_inclusive():
    # Simple cubic lattice with the cutoff exactly at the lattice constant.
    pos = torch.zeros(1, 3, dtype=DTYPE)
    cell = torch.eye(3, dtype=DTYPE) * 3.0
    for backend in BACKENDS:
        nl = radius_graph(pos, 3.0, cell=cell, backend=backend)
        assert nl.edge_index.shape[1] == 6
    two = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5]], dtype=DTYPE)
    for backend in BACKENDS:
        assert radius_graph(two, 1.5, backend=backend).edge_index.shape[1] == 2


# ------------------------------------------------------------------ against ASE
@pytest.mark.parametrize("case", ["open_molecule", "cubic", "triclinic", "skewed", "small_cell", "unwrapped"])
def test_matches_ase(case):
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    kwargs = CASES[case]()
    pos, cutoff, cell = kwargs["pos"], kwargs["cutoff"], kwargs.get("cell")
    if cell is None:
        atoms = Atoms(positions=pos.numpy(), pbc=False)
    else:
        atoms = Atoms(positions=pos.numpy(), cell=cell.numpy(), pbc=True)
    # ASE: i is the center, j the neighbor, D = pos[j] - pos[i] + S @ cell.
    i, j, shifts = neighbor_list("ijS", atoms, cutoff, self_interaction=False)
    expected = set(zip(i.tolist(), j.tolist(), map(tuple, shifts.tolist())))
    for backend in BACKENDS:
        assert edge_set(radius_graph(pos, cutoff, cell=cell, backend=backend)) == expected


def test_matches_ase_slab():
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    kwargs = case_slab()
    cell = kwargs["cell"].clone()
    cell[2, 2] = 30.0  # ASE wants a full cell; the third row is not periodic
    atoms = Atoms(positions=kwargs["pos"].numpy(), cell=cell.numpy(), pbc=[True, True, False])
    i, j, shifts = neighbor_list("ijS", atoms, kwargs["cutoff"], self_interaction=False)
    expected = set(zip(i.tolist(), j.tolist(), map(tuple, shifts.tolist())))
    for backend in BACKENDS:
        nl = radius_graph(kwargs["pos"], kwargs["cutoff"], cell=cell, pbc=kwargs["pbc"], backend=backend)
        assert edge_set(nl) == expected


# ------------------------------------------------------------------- property
@given(
    seed=st.integers(0, 2**31 - 1),
    num_atoms=st.integers(1, 12),
    cutoff=st.floats(0.5, 6.0),
    skew=st.floats(0.0, 3.0),
    pbc=st.lists(st.booleans(), min_size=3, max_size=3),
    outside=st.booleans(),
)
def test_property_random_cells(seed, num_atoms, cutoff, skew, pbc, outside):
    gen = torch.Generator().manual_seed(seed)
    cell = torch.eye(3, dtype=DTYPE) * (1.5 + 6 * torch.rand(3, generator=gen, dtype=DTYPE))
    cell = cell + skew * torch.randn(3, 3, generator=gen, dtype=DTYPE)
    if abs(float(torch.linalg.det(cell))) < 0.5:
        cell = cell + torch.eye(3, dtype=DTYPE) * 2.0
    frac = torch.rand(num_atoms, 3, generator=gen, dtype=DTYPE)
    if outside:
        frac = frac * 6 - 3
    pos = frac @ cell
    for backend in BACKENDS:
        if backend != "brute_force":
            check_backend(backend, pos, cutoff, cell=cell, pbc=torch.tensor(pbc))


# --------------------------------------------------------------------- errors
def test_error_messages():
    pos = torch.rand(4, 3, dtype=DTYPE)
    cell = torch.eye(3, dtype=DTYPE) * 5
    bad = pos.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="position of atom 2 is not finite"):
        radius_graph(bad, 3.0)
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="position of atom 2 is not finite"):
        radius_graph(bad, 3.0, cell=cell)
    for cutoff in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"cutoff must be a positive finite number, got {cutoff}"):
            radius_graph(pos, cutoff)
    with pytest.raises(ValueError, match=r"pos must have shape \[N, 3\], got \[4, 2\]"):
        radius_graph(pos[:, :2], 3.0)
    with pytest.raises(ValueError, match=r"batch must have shape \[N\] = \[4\].*got \[3\]"):
        radius_graph(pos, 3.0, batch=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"cell must have shape \[B, 3, 3\].*got \[3, 2\]"):
        radius_graph(pos, 3.0, cell=cell[:, :2])
    with pytest.raises(ValueError, match=r"B=1 systems.*system index 1"):
        radius_graph(pos, 3.0, batch=torch.tensor([0, 0, 1, 1]), cell=cell.unsqueeze(0))
    with pytest.raises(ValueError, match=r"pbc must have shape \[B, 3\]"):
        radius_graph(pos, 3.0, cell=cell, pbc=torch.tensor([True, True]))
    flat = cell.clone()
    flat[2] = flat[0] + flat[1]
    with pytest.raises(ValueError, match="cell of system 0 has zero volume"):
        radius_graph(pos, 3.0, cell=flat)
    with pytest.raises(ValueError, match="cell of system 0 has zero volume"):
        radius_graph(pos, 3.0, cell=torch.zeros(3, 3))
    nan_cell = cell.clone()
    nan_cell[1, 1] = float("nan")
    with pytest.raises(ValueError, match="cell of system 0 is not finite in its periodic directions"):
        radius_graph(pos, 3.0, cell=nan_cell)
    # The same degenerate / NaN rows are fine along non-periodic directions.
    nan_cell[1] = float("nan")
    radius_graph(pos, 3.0, cell=nan_cell, pbc=torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="no cell was given"):
        radius_graph(pos, 3.0, pbc=torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match="unknown neighbor-list backend 'kd_tree'"):
        radius_graph(pos, 3.0, backend="kd_tree")
    with pytest.raises(ValueError, match="cutoff must be a positive finite number"):
        brute_force_radius_graph(pos, -2.0)


# ------------------------------------------------------------------ transform
def test_radius_graph_transform_with_dataloader():
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    gen = torch.Generator().manual_seed(13)
    transform = RadiusGraph(4.0)
    records = []
    for n, periodic in [(5, True), (8, False), (6, True)]:
        cell = random_cell(gen)
        pos = in_cell(gen, n, cell)
        data = Data(z=torch.ones(n, dtype=torch.long), pos=pos, cell=cell.unsqueeze(0),
                    pbc=torch.tensor([[periodic] * 3]))
        records.append(transform(data))
    assert "cell_shifts" in records[0] and records[0].edge_index.shape[0] == 2
    batch = next(iter(DataLoader(records, batch_size=3)))
    assert batch.cell.shape == (3, 3, 3) and batch.pbc.shape == (3, 3)
    offsets = [0, 5, 13]
    expected_index = torch.cat([r.edge_index + o for r, o in zip(records, offsets)], dim=1)
    assert torch.equal(batch.edge_index, expected_index)
    # Same as a neighbor list of the whole batch at once.
    whole = radius_graph(batch.pos, 4.0, batch=batch.batch, cell=batch.cell, pbc=batch.pbc)
    assert torch.equal(whole.edge_index, batch.edge_index)
    assert torch.equal(whole.cell_shifts, batch.cell_shifts)
    # And the transform applied to the batch itself.
    again = RadiusGraph(4.0, backend="cell_list")(batch)
    assert torch.equal(again.edge_index, batch.edge_index)


# -------------------------------------------------------------- torch_cluster
def test_torch_cluster_wrapper_never_truncates(monkeypatch):
    """The torch_cluster wrapper, run against a stand-in that truncates like torch_cluster."""
    calls = []

    def fake_radius_graph(x, r, batch=None, loop=False, max_num_neighbors=32, flow="source_to_target"):
        calls.append(max_num_neighbors)
        assert not loop and flow == "source_to_target"
        assert bool((batch[1:] >= batch[:-1]).all()), "torch_cluster needs a sorted batch"
        dist = torch.cdist(x, x)
        close = (dist < r) & (batch[:, None] == batch[None, :])
        close.fill_diagonal_(False)
        rows = []
        for i in range(x.shape[0]):
            j = torch.nonzero(close[i]).flatten()[:max_num_neighbors]
            rows.append(torch.stack([j, torch.full_like(j, i)]))  # [neighbor, center]
        return torch.cat(rows, dim=1)

    monkeypatch.setitem(sys.modules, "torch_cluster", types.SimpleNamespace(radius_graph=fake_radius_graph))
    monkeypatch.setattr(torch_cluster_backend, "_FIRST_CAP", 4)
    gen = torch.Generator().manual_seed(14)
    pos = torch.rand(60, 3, generator=gen, dtype=DTYPE) * 5
    batch = torch.randint(0, 2, (60,), generator=gen)  # unsorted on purpose
    check_backend("torch_cluster", pos, 3.0, batch=batch)
    assert calls[0] == 4 and calls[-1] > 4  # the cap was raised until nothing was cut
    # Periodic systems go to another backend.
    cell = torch.eye(3, dtype=DTYPE) * 5
    calls.clear()
    check_backend("torch_cluster", pos, 3.0, cell=cell)
    assert calls == []


def test_cell_list_larger_system_against_vesin_or_brute_force():
    gen = torch.Generator().manual_seed(15)
    length = (3000 / 0.1) ** (1 / 3)
    cell = torch.eye(3, dtype=DTYPE) * length
    pos = torch.rand(3000, 3, generator=gen, dtype=DTYPE) * length
    reference = "vesin" if "vesin" in BACKENDS else "brute_force"
    for kwargs in (dict(cell=cell), dict()):
        a = radius_graph(pos, 5.0, backend="cell_list", **kwargs)
        b = radius_graph(pos, 5.0, backend=reference, **kwargs)
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.cell_shifts, b.cell_shifts)
        assert math.isclose(a.edge_index.shape[1] / 3000, 0.1 * 4 / 3 * math.pi * 125, rel_tol=0.2)


def test_backends_are_listed_in_one_table():
    import importlib

    module = importlib.import_module("equinnp.neighbors.radius_graph")
    assert set(module.BACKENDS) == set(module._BACKENDS) | {"auto"}
    assert not module._BACKENDS["torch_cluster"].periodic and module._BACKENDS["cell_list"].periodic
