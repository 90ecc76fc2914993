"""Hypothesis strategies for atomic structures and symmetry operations.

Structures are generated from a drawn integer seed (NumPy generator), with a
minimum interatomic distance enforced by rejection, so that every example is
physically sensible and reproducible from its seed.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from hypothesis import strategies as st
from torch_geometric.data import Data

from equinnp.data import from_arrays

__all__ = ["random_molecule", "random_crystal", "molecules", "crystals", "rotations"]


def _place_atoms(rng: np.random.Generator, n: int, box: float, min_distance: float, cell=None) -> np.ndarray:
    """Rejection-sample n points in a box (or cell) with pairwise distance >= min_distance."""
    points = []
    for _ in range(200 * n):
        if len(points) == n:
            break
        if cell is None:
            candidate = rng.uniform(0.0, box, size=3)
        else:
            candidate = rng.uniform(0.0, 1.0, size=3) @ cell
        ok = True
        for p in points:
            d = candidate - p
            if cell is not None:  # minimum-image check over neighboring images
                frac = np.linalg.solve(cell.T, d)
                d = (frac - np.round(frac)) @ cell
            if np.linalg.norm(d) < min_distance:
                ok = False
                break
        if ok:
            points.append(candidate)
    if len(points) < n:
        raise ValueError(f"could not place {n} atoms {min_distance} Å apart in the box")
    return np.array(points)


def random_molecule(
    seed: int, elements: Sequence[int], num_atoms: int, min_distance: float = 0.9, density: float = 0.08
) -> Data:
    """A random open molecule: ``num_atoms`` atoms at about ``density`` atoms/Å³."""
    rng = np.random.default_rng(seed)
    box = (num_atoms / density) ** (1 / 3)
    pos = _place_atoms(rng, num_atoms, box, min_distance)
    z = rng.choice(np.asarray(elements), size=num_atoms)
    return from_arrays(z, pos, dtype=torch.float64)


def random_crystal(
    seed: int, elements: Sequence[int], num_atoms: int, min_distance: float = 0.9, length: float = 4.0
) -> Data:
    """A random triclinic periodic cell of edge ~``length`` Å with ``num_atoms`` atoms."""
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * length + rng.uniform(-0.25, 0.25, size=(3, 3)) * length
    pos = _place_atoms(rng, num_atoms, length, min_distance, cell=cell)
    z = rng.choice(np.asarray(elements), size=num_atoms)
    return from_arrays(z, pos, cell=cell, pbc=True, dtype=torch.float64)


@st.composite
def molecules(draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 2, max_atoms: int = 8, min_distance: float = 0.9):
    """Strategy of random open molecules (float64 ``Data``)."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(min_atoms, max_atoms))
    return random_molecule(seed, elements, n, min_distance)


@st.composite
def crystals(draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 1, max_atoms: int = 4, length: Optional[float] = None):
    """Strategy of random periodic triclinic cells (float64 ``Data``), some shorter than the cutoff."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(min_atoms, max_atoms))
    length = length if length is not None else draw(st.floats(3.0, 6.0))
    return random_crystal(seed, elements, n, length=length)


@st.composite
def rotations(draw, reflections: bool = True):
    """Strategy of 3x3 orthogonal matrices (float64): uniform rotations, optionally times -1 (improper)."""
    q = np.array([draw(st.floats(-1.0, 1.0)) for _ in range(4)])
    if np.linalg.norm(q) < 1e-3:
        q = np.array([1.0, 0.0, 0.0, 0.0])
    w, x, y, z = q / np.linalg.norm(q)
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    if reflections and draw(st.booleans()):
        R = -R
    return torch.tensor(R, dtype=torch.float64)
