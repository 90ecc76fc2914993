"""Hypothesis strategies for atomic structures and symmetry operations.

Every structure, rotation, translation and permutation is built by a plain
function from an integer seed (``numpy.random.default_rng(seed)``); the
strategies draw only that seed. So an example is reproducible from its seed,
sizes and shapes are spread over their whole range from the first example on
(Hypothesis starts from minimal draws, which here is seed 0: an ordinary
random structure, not the smallest one), and shrinking, which cannot simplify
a seed, is pointless.

Structures keep every interatomic distance, periodic images included, at or
above ``min_distance`` (0.9 Å by default; ``equinnp.Potential`` refuses pairs
closer than 0.1 Å).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from hypothesis import strategies as st
from torch_geometric.data import Data

from equinnp.data import from_arrays

__all__ = [
    "random_molecule",
    "random_crystal",
    "random_slab",
    "random_wire",
    "random_periodic",
    "random_rotation",
    "random_translation",
    "random_permutation",
    "molecules",
    "crystals",
    "slabs",
    "wires",
    "periodic_structures",
    "rotations",
    "translations",
    "seeds",
]

MAX_TRIES = 500  # rejection-sampling attempts per atom


def seeds() -> st.SearchStrategy:
    """Strategy of 32-bit integer seeds, the only thing the other strategies draw."""
    return st.integers(0, 2**32 - 1)


def _rng(seed: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def _size(seed: int, low: int, high: int) -> int:
    """Number of atoms in ``[low, high]``, uniform, from its own stream of ``seed``."""
    if not 1 <= low <= high:
        raise ValueError(f"need 1 <= min_atoms <= max_atoms, got {low} and {high}")
    return int(_rng(seed, 1).integers(low, high + 1))


# ----------------------------------------------------------------- operations
def _haar_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform (Haar) proper rotation from a normalised Gaussian quaternion."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def random_rotation(seed: int, reflection: Optional[bool] = False) -> torch.Tensor:
    """A Haar-random orthogonal 3x3 matrix (float64) from ``seed``.

    Parameters
    ----------
    seed : int
    reflection : bool or None
        False: a proper rotation (det +1). True: the rotation times -1 (det -1,
        an improper rotation: a rotation combined with the inversion). None:
        improper with probability 1/2, decided by the seed.

    Returns
    -------
    Tensor, [3, 3] float64
        Uniform over SO(3) (or its coset); the identity, the signed
        permutations and every other finite set of matrices have probability zero.
    """
    rng = _rng(seed)
    R = _haar_rotation(rng)
    flip = bool(rng.integers(2)) if reflection is None else bool(reflection)
    return torch.tensor(-R if flip else R, dtype=torch.float64)


def random_translation(seed: int, max_length: float = 10.0) -> torch.Tensor:
    """A translation [3] (float64, Å) in a uniform direction, length uniform in [0.1, max_length] Å."""
    rng = _rng(seed)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    return torch.tensor(direction * rng.uniform(0.1, max_length), dtype=torch.float64)


def random_permutation(seed: int, n: int) -> torch.Tensor:
    """A random permutation of ``n`` atoms [n] (long), never the identity when n >= 2."""
    permutation = _rng(seed).permutation(n)
    if n >= 2 and (permutation == np.arange(n)).all():
        permutation[[0, 1]] = permutation[[1, 0]]
    return torch.as_tensor(permutation, dtype=torch.long)


# ----------------------------------------------------------------- molecules
def random_molecule(
    seed: int, elements: Sequence[int], num_atoms: int, min_distance: float = 0.9, max_bond: float = 1.8
) -> Data:
    """A random connected open molecule of ``num_atoms`` atoms (float64 ``Data``).

    Grown atom by atom: each new atom is bonded, at a distance uniform in
    ``[max(min_distance, 0.95), max_bond]`` Å and in a uniform direction, to a
    randomly chosen earlier atom, and kept only when it is at least
    ``min_distance`` from every other atom. The result is a random branched
    tree, from chain-like to compact; every atom has a neighbor within
    ``max_bond`` (so every atom has edges under any cutoff above ``max_bond``).

    Parameters
    ----------
    seed : int
    elements : sequence of int
        Atomic numbers, drawn uniformly per atom.
    num_atoms : int
    min_distance : float
        Smallest interatomic distance (Å).
    max_bond : float
        Longest bond to the atom each new atom is attached to (Å).

    Returns
    -------
    Data
        ``z`` [N] long and ``pos`` [N, 3] float64 (Å, centred on the origin).
    """
    rng = _rng(seed)
    shortest = max(min_distance, 0.95)
    if max_bond < shortest:
        raise ValueError(f"max_bond ({max_bond} Å) must be at least {shortest} Å")
    points = [np.zeros(3)]
    while len(points) < num_atoms:
        placed = np.array(points)
        for _ in range(MAX_TRIES):
            direction = rng.standard_normal(3)
            candidate = placed[rng.integers(len(points))] + direction / np.linalg.norm(direction) * rng.uniform(shortest, max_bond)
            if np.linalg.norm(placed - candidate, axis=1).min() >= min_distance:
                points.append(candidate)
                break
        else:
            raise ValueError(f"could not grow a molecule of {num_atoms} atoms {min_distance} Å apart (seed {seed})")
    pos = np.array(points)
    pos -= pos.mean(axis=0)
    z = rng.choice(np.asarray(elements), size=num_atoms)
    return from_arrays(z, pos, dtype=torch.float64)


# ---------------------------------------------------------- periodic systems
def _cell_from_parameters(lengths, angles_deg) -> Optional[np.ndarray]:
    """Rows a, b, c from lengths and angles (alpha = b^c, beta = a^c, gamma = a^b); None if impossible."""
    alpha, beta, gamma = np.radians(angles_deg)
    ca, cb, cg, sg = np.cos(alpha), np.cos(beta), np.cos(gamma), np.sin(gamma)
    cx = cb
    cy = (ca - cb * cg) / sg
    cz2 = 1.0 - cx**2 - cy**2
    if cz2 <= 0.05:  # nearly flat or impossible combination of angles
        return None
    a, b, c = lengths
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [c * cx, c * cy, c * np.sqrt(cz2)]])


def _image_offsets(cell: np.ndarray, pbc: np.ndarray, reach: float) -> np.ndarray:
    """Integer image offsets [M, 3] covering every lattice translation (along periodic axes) shorter than ``reach``."""
    volume = abs(np.linalg.det(cell))
    counts = []
    for axis in range(3):
        if not pbc[axis]:
            counts.append(0)
            continue
        others = np.cross(cell[(axis + 1) % 3], cell[(axis + 2) % 3])
        spacing = volume / np.linalg.norm(others)  # distance between lattice planes
        counts.append(int(np.ceil(reach / spacing)) + 1)
    ranges = [np.arange(-n, n + 1) for n in counts]
    return np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)


def random_periodic(
    seed: int,
    elements: Sequence[int],
    num_atoms: int,
    pbc: Sequence[bool] = (True, True, True),
    min_distance: float = 0.9,
    length: Optional[float] = None,
    min_angle: float = 45.0,
) -> Data:
    """A random triclinic cell with ``num_atoms`` atoms and periodicity ``pbc`` (float64 ``Data``).

    The cell has random lengths and angles in ``[min_angle, 180 - min_angle]``
    degrees (strongly sheared for the default 45°), in a random orientation.
    Its volume is 9-20 Å³ per atom, so that small cells are shorter than
    typical cutoffs and the potential must use several images of each atom;
    with ``length`` the edges are about ``length`` Å instead. Along a
    non-periodic axis (``pbc`` False: slabs, wires) the cell row only bounds
    where atoms are placed. Atoms are placed uniformly (rejection sampling) at
    least ``min_distance`` from every other atom and periodic image.

    Parameters
    ----------
    seed : int
    elements : sequence of int
        Atomic numbers, drawn uniformly per atom.
    num_atoms : int
    pbc : three bool
        Periodicity along each cell vector.
    min_distance : float
        Smallest distance between atoms, images included (Å).
    length : float, optional
        Approximate edge length (Å) instead of a volume of 9-20 Å³ per atom.
    min_angle : float
        Smallest angle between cell vectors (degrees).

    Returns
    -------
    Data
        ``z`` [N] long, ``pos`` [N, 3] float64 (Å, inside the cell), ``cell``
        [1, 3, 3] float64 (rows are the cell vectors) and ``pbc`` [1, 3] bool.
    """
    rng = _rng(seed)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    for _ in range(1000):
        angles = rng.uniform(min_angle, 180.0 - min_angle, size=3)
        ratios = np.exp(rng.uniform(-0.3, 0.3, size=3))
        cell = _cell_from_parameters(ratios, angles)
        if cell is None:
            continue
        if length is None:
            volume = num_atoms * rng.uniform(9.0, 20.0)
            cell = cell * (volume / abs(np.linalg.det(cell))) ** (1 / 3)
        else:
            cell = cell * length
        offsets = _image_offsets(cell, pbc, min_distance)
        lattice = offsets[np.abs(offsets).sum(axis=1) > 0] @ cell
        if not len(lattice) or np.linalg.norm(lattice, axis=1).min() >= min_distance:
            break
    else:
        raise ValueError(f"no cell with images at least {min_distance} Å apart for {num_atoms} atoms (seed {seed})")
    cell = cell @ _haar_rotation(rng).T  # a general orientation, not lower-triangular
    images = _image_offsets(cell, pbc, min_distance) @ cell  # [M, 3]
    points = []
    for _ in range(MAX_TRIES * num_atoms):
        if len(points) == num_atoms:
            break
        candidate = rng.uniform(0.0, 1.0, size=3) @ cell
        if points:
            d = candidate[None, None, :] - np.array(points)[:, None, :] - images[None, :, :]  # [P, M, 3]
            if np.linalg.norm(d, axis=-1).min() < min_distance:
                continue
        points.append(candidate)
    if len(points) < num_atoms:
        raise ValueError(f"could not place {num_atoms} atoms {min_distance} Å apart in the cell (seed {seed})")
    z = rng.choice(np.asarray(elements), size=num_atoms)
    return from_arrays(z, np.array(points), cell=cell, pbc=pbc, dtype=torch.float64)


def random_crystal(
    seed: int,
    elements: Sequence[int],
    num_atoms: int,
    min_distance: float = 0.9,
    length: Optional[float] = None,
    min_angle: float = 45.0,
) -> Data:
    """A random bulk crystal: :func:`random_periodic` periodic along all three cell vectors."""
    return random_periodic(seed, elements, num_atoms, (True, True, True), min_distance, length, min_angle)


def _mixed_pbc(seed: int, periodic_axes: int) -> Tuple[bool, bool, bool]:
    axes = _rng(seed, 2).permutation(3)[:periodic_axes]
    return tuple(bool(a in axes) for a in range(3))


def random_slab(seed: int, elements: Sequence[int], num_atoms: int, min_distance: float = 0.9, **kwargs) -> Data:
    """A random slab: :func:`random_periodic` periodic along two cell vectors (which two, from the seed)."""
    return random_periodic(seed, elements, num_atoms, _mixed_pbc(seed, 2), min_distance, **kwargs)


def random_wire(seed: int, elements: Sequence[int], num_atoms: int, min_distance: float = 0.9, **kwargs) -> Data:
    """A random wire: :func:`random_periodic` periodic along one cell vector (which one, from the seed)."""
    return random_periodic(seed, elements, num_atoms, _mixed_pbc(seed, 1), min_distance, **kwargs)


# ----------------------------------------------------------------- strategies
@st.composite
def molecules(draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 2, max_atoms: int = 20, min_distance: float = 0.9):
    """Strategy of random connected molecules (:func:`random_molecule`) of ``min_atoms``..``max_atoms`` atoms."""
    seed = draw(seeds())
    return random_molecule(seed, elements, _size(seed, min_atoms, max_atoms), min_distance)


@st.composite
def crystals(
    draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 1, max_atoms: int = 16, length: Optional[float] = None,
    min_angle: float = 45.0,
):
    """Strategy of random bulk crystals (:func:`random_crystal`), many shorter than a 4-5 Å cutoff."""
    seed = draw(seeds())
    return random_crystal(seed, elements, _size(seed, min_atoms, max_atoms), length=length, min_angle=min_angle)


@st.composite
def slabs(draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 1, max_atoms: int = 16):
    """Strategy of random slabs (:func:`random_slab`, two periodic axes)."""
    seed = draw(seeds())
    return random_slab(seed, elements, _size(seed, min_atoms, max_atoms))


@st.composite
def wires(draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 1, max_atoms: int = 16):
    """Strategy of random wires (:func:`random_wire`, one periodic axis)."""
    seed = draw(seeds())
    return random_wire(seed, elements, _size(seed, min_atoms, max_atoms))


@st.composite
def periodic_structures(draw, elements: Sequence[int] = (1, 6, 8), min_atoms: int = 1, max_atoms: int = 16):
    """Strategy of bulk crystals, slabs and wires (1/2, 1/4, 1/4), the kind chosen by the seed."""
    seed = draw(seeds())
    n = _size(seed, min_atoms, max_atoms)
    kind = int(_rng(seed, 3).integers(4))
    build = (random_crystal, random_crystal, random_slab, random_wire)[kind]
    return build(seed, elements, n)


@st.composite
def rotations(draw, reflections: bool = True):
    """Strategy of Haar-random 3x3 orthogonal matrices (float64, :func:`random_rotation`).

    With ``reflections`` half of them are improper (det -1).
    """
    return random_rotation(draw(seeds()), None if reflections else False)


@st.composite
def translations(draw, max_length: float = 10.0):
    """Strategy of rigid translations [3] (float64, Å; :func:`random_translation`)."""
    return random_translation(draw(seeds()), max_length)
