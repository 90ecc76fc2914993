"""The contract's strategies draw what they claim: Haar-random rotations, physical and diverse structures."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given

from equinnp.neighbors import radius_graph
from equinnp.testing.strategies import (
    _size,
    molecules,
    periodic_structures,
    random_crystal,
    random_molecule,
    random_periodic,
    random_permutation,
    random_rotation,
    random_slab,
    random_wire,
    rotations,
)

ELEMENTS = [1, 6, 7, 8]
SIGNED_PERMUTATIONS = torch.stack(
    [
        torch.eye(3, dtype=torch.float64)[list(p)] * torch.tensor(s, dtype=torch.float64)[:, None]
        for p in itertools.permutations(range(3))
        for s in itertools.product((1.0, -1.0), repeat=3)
    ]
)  # [48, 3, 3]: the octahedral group with reflections


def _distance_to_signed_permutations(R):
    return (SIGNED_PERMUTATIONS - R).abs().amax(dim=(1, 2)).min().item()


def test_rotations_are_orthogonal_and_never_signed_permutations():
    matrices = torch.stack([random_rotation(seed, reflection=None) for seed in range(500)])
    eye = torch.eye(3, dtype=torch.float64)
    assert (matrices @ matrices.transpose(1, 2) - eye).abs().max() < 1e-12
    det = torch.linalg.det(matrices)
    assert ((det.abs() - 1).abs() < 1e-12).all()
    assert 200 < int((det < 0).sum()) < 300  # half of them improper
    assert min(_distance_to_signed_permutations(R) for R in matrices) > 1e-3
    # Haar: |R_ab| > 1 - 1e-3 has probability 1e-3 per entry, about 1 % per matrix (the former
    # strategy of rounded quaternion components drew 0 and ±1 often: 1/8 to 1/4 of its matrices).
    near_axis = (matrices.abs() > 1 - 1e-3).flatten(1).any(dim=1).float().mean().item()
    assert near_axis < 0.04
    # Haar: every entry has mean 0 and variance 1/3.
    assert matrices.mean(dim=0).abs().max() < 0.1
    assert (matrices.var(dim=0) - 1 / 3).abs().max() < 0.08
    proper = torch.stack([random_rotation(seed) for seed in range(50)])
    assert torch.allclose(torch.linalg.det(proper), torch.ones(50, dtype=torch.float64))


@given(R=rotations())
def test_drawn_rotations_are_far_from_the_octahedral_group(R):
    assert (R @ R.T - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-12
    assert _distance_to_signed_permutations(R) > 1e-3


def test_first_draw_is_not_trivial():
    # Hypothesis starts from seed 0: it must be an ordinary example, not the smallest one.
    assert random_rotation(0, reflection=None).diagonal().abs().max() < 0.99
    assert _size(0, 2, 20) > 5
    assert _size(0, 1, 16) > 4


def test_permutations_are_never_the_identity():
    for n in (2, 3, 10):
        for seed in range(50):
            assert not torch.equal(random_permutation(seed, n), torch.arange(n))


def _min_distance(data):
    """Shortest distance between atoms, periodic images included."""
    cell = getattr(data, "cell", None)
    nl = radius_graph(data.pos, 2.5, cell=cell, pbc=None if cell is None else data.pbc)
    j, i = nl.edge_index
    vec = data.pos[j] - data.pos[i]
    if cell is not None:
        vec = vec + nl.cell_shifts.to(vec.dtype) @ cell[0]
    return vec.norm(dim=-1).min().item() if vec.numel() else float("inf")


def test_molecules_are_connected_physical_and_varied():
    sizes = []
    for seed in range(60):
        n = _size(seed, 2, 20)
        data = random_molecule(seed, ELEMENTS, n)
        sizes.append(n)
        distances = torch.cdist(data.pos, data.pos) + 1e3 * torch.eye(n, dtype=torch.float64)
        assert distances.min() >= 0.9
        assert (distances.min(dim=1).values <= 1.8).all()  # every atom bonded
    assert min(sizes) <= 4 and max(sizes) >= 18
    assert random_molecule(0, ELEMENTS, 1).num_nodes == 1


@pytest.mark.parametrize("build, periodic", [(random_crystal, 3), (random_slab, 2), (random_wire, 1)])
def test_periodic_structures_are_physical_sheared_and_small(build, periodic):
    angles, lengths = [], []
    for seed in range(40):
        data = build(seed, ELEMENTS, _size(seed, 1, 16))
        assert int(data.pbc.sum()) == periodic
        assert _min_distance(data) >= 0.9 - 1e-9
        cell = data.cell[0]
        for a, b in itertools.combinations(range(3), 2):
            cosine = (cell[a] @ cell[b]) / (cell[a].norm() * cell[b].norm())
            angles.append(torch.rad2deg(torch.arccos(cosine)).item())
        lengths.extend(cell.norm(dim=1).tolist())
    assert min(angles) < 55 and max(angles) > 125  # strongly sheared cells
    assert min(lengths) < 3.0  # shorter than a 4 Å cutoff: several images of each atom
    assert 44.9 < min(angles) and max(angles) < 135.1


def test_cells_are_not_lower_triangular():
    cell = random_periodic(1, ELEMENTS, 4).cell[0]
    assert cell[0, 1:].abs().min() > 1e-6


@given(data=periodic_structures(ELEMENTS, 1, 16))
def test_drawn_periodic_structures_have_physical_distances(data):
    assert _min_distance(data) >= 0.9 - 1e-9


@given(data=molecules(ELEMENTS, 2, 20))
def test_drawn_molecules_have_physical_distances(data):
    assert torch.pdist(data.pos).min() >= 0.9
    assert np.isfinite(data.pos.numpy()).all()
