"""The symmetry and consistency contract every potential passes.

Each ``check_*`` function takes a ``Potential`` (float64 or float32) and
``Data`` records, and raises ``AssertionError`` with the size of the violation
when the property does not hold. The test suite runs them over every entry of
``equinnp.ARCHITECTURES`` in both dtypes; users run them on their own layers.

Energies are compared after subtracting their constant per-element part,
and every tolerance depends on the potential's dtype and on the magnitude of
the terms summed: see ``equinnp.testing.evaluation`` (``FLOAT64``, ``FLOAT32``).

Parameters shared by the checks
-------------------------------
potential : Potential or nn.Module
    Called as ``potential(data, compute_forces=True, compute_stress=None)``;
    returns ``energy`` [B], ``forces`` [N, 3], ``stress`` [B, 3, 3] or None,
    and preferably ``atomic_energies`` [N] (as ``PotentialOutput``).
data : torch_geometric.data.Data
    ``z`` [N] long, ``pos`` [N, 3] float64 (Å), for periodic systems
    ``cell`` [1, 3, 3] (rows are lattice vectors) and ``pbc`` [1, 3] bool.
    Transformations are applied in float64 before the potential casts them.
rtol : float, optional
    Overrides the relative tolerance of the potential's dtype.

Raises
------
AssertionError
    Naming the quantity, the largest deviation and the tolerance.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from equinnp.testing import charge_contract, evaluation
from equinnp.testing.charge_contract import (
    CHARGE_TOLERANCE,
    check_charge_conservation,
    check_charge_symmetries,
    check_dipole_equivariance,
)
from equinnp.testing.evaluation import (
    FLOAT32,
    FLOAT64,
    NOISE_ULPS,
    RTOL,
    Tolerances,
    _assert_close,
    _batch_of,
    _energies_close,
    _evaluate,
    atomic_constants,
    constant_energy,
    evaluate,
    tolerances,
)

__all__ = evaluation.__all__ + charge_contract.__all__ + [
    "check_rotation",
    "check_translation",
    "check_permutation",
    "check_batch_consistency",
    "check_no_cross_talk",
    "check_finite_difference_forces",
    "check_cutoff_continuity",
    "cutoff_crossings",
    "check_cutoff_crossing",
    "check_separated_additivity",
    "check_isolated_atom",
    "check_isolated_atoms_add",
    "check_atom_beyond_cutoff",
    "JUST_BEYOND",
    "check_wrapping",
    "check_supercell",
    "check_stress_finite_difference",
    "check_responds_to_geometry",
    "check_hessian_finite_difference",
]


def _with(data: Data, **changes) -> Data:
    new = copy.copy(data)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def _open(z: Tensor, pos: Tensor) -> Data:
    return Data(z=z, pos=pos)


def _periodic_axes(data) -> Tensor:
    pbc = getattr(data, "pbc", None)
    if getattr(data, "cell", None) is None:
        return torch.zeros(3, dtype=torch.bool)
    return torch.ones(3, dtype=torch.bool) if pbc is None else pbc.reshape(-1, 3)[0].bool().cpu()


# ---------------------------------------------------------------- symmetries
def check_rotation(potential, data: Data, R: Tensor, rtol: Optional[float] = None):
    """Energy invariant, forces and stress equivariant under an orthogonal ``R`` [3, 3] (rotation or reflection).

    :math:`E(x R^T) = E(x)`, :math:`F(x R^T) = F(x) R^T`, :math:`\\sigma \\to R \\sigma R^T`;
    the cell (if any) is rotated with the atoms.
    """
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    R = R.to(data.pos.dtype)
    ref = _evaluate(potential, data)
    changes = {"pos": data.pos @ R.T}
    if getattr(data, "cell", None) is not None:
        changes["cell"] = data.cell @ R.T
    rotated = _evaluate(potential, _with(data, **changes))
    Rd = R.double()
    _energies_close(rotated.energy, ref.energy, "energy under rotation", rtol, tol, ref.energy_scale, ref.noise + rotated.noise)
    _assert_close(rotated.forces, ref.forces @ Rd.T, "forces under rotation", rtol, tol.floor, ref.force_scale)
    if ref.stress is not None:
        _assert_close(rotated.stress, Rd @ ref.stress @ Rd.T, "stress under rotation", rtol, tol.floor, ref.stress_scale)


def check_translation(potential, data: Data, shift: Tensor, rtol: Optional[float] = None):
    """Energy, forces (and stress) unchanged by a rigid translation ``shift`` [3] (Å)."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    ref = _evaluate(potential, data)
    moved = _evaluate(potential, _with(data, pos=data.pos + shift.to(data.pos.dtype)))
    _energies_close(moved.energy, ref.energy, "energy under translation", rtol, tol, ref.energy_scale, ref.noise + moved.noise)
    _assert_close(moved.forces, ref.forces, "forces under translation", rtol, tol.floor, ref.force_scale)
    if ref.stress is not None:
        _assert_close(moved.stress, ref.stress, "stress under translation", rtol, tol.floor, ref.stress_scale)


def check_permutation(potential, data: Data, permutation: Tensor, rtol: Optional[float] = None):
    """Relabelling atoms by ``permutation`` [N] permutes the forces and leaves the energy unchanged."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    ref = _evaluate(potential, data)
    permuted = _evaluate(potential, _with(data, z=data.z[permutation], pos=data.pos[permutation]))
    _energies_close(permuted.energy, ref.energy, "energy under permutation", rtol, tol, ref.energy_scale, ref.noise + permuted.noise)
    _assert_close(permuted.forces, ref.forces[permutation], "forces under permutation", rtol, tol.floor, ref.force_scale)


def check_batch_consistency(potential, systems: Sequence[Data], rtol: Optional[float] = None):
    """A batch gives the same energies, forces and stress as its systems one by one."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    batched = _evaluate(potential, Batch.from_data_list(list(systems)))
    offset = 0
    for k, data in enumerate(systems):
        single = _evaluate(potential, data)
        n = data.num_nodes
        _energies_close(batched.energy[k : k + 1], single.energy, f"energy of system {k} in a batch", rtol, tol,
                        single.energy_scale, single.noise + batched.noise)
        _assert_close(batched.forces[offset : offset + n], single.forces, f"forces of system {k} in a batch", rtol, tol.floor, single.force_scale)
        if single.stress is not None:
            _assert_close(batched.stress[k : k + 1], single.stress, f"stress of system {k} in a batch", rtol, tol.floor, single.stress_scale)
        offset += n


def check_no_cross_talk(potential, systems: Sequence[Data]):
    """The energy of one system of a batch has exactly zero gradient w.r.t. the atoms of the others."""
    batch = Batch.from_data_list(list(systems))
    pos = batch.pos.detach().clone().requires_grad_(True)
    out = potential(_with(batch, pos=pos), compute_forces=False, compute_stress=False)
    for k in range(len(systems)):
        (grad,) = torch.autograd.grad(out.energy[k], pos, retain_graph=True, allow_unused=True)
        if grad is None:
            continue
        others = batch.batch != k
        leak = grad[others].abs().max().item() if others.any() else 0.0
        if leak != 0.0:
            raise AssertionError(f"energy of system {k} depends on atoms of other systems (gradient {leak:.3e})")


# -------------------------------------------------------- finite differences
def _stencil(order: int):
    """(offsets in units of h, weights) of the central first-derivative stencil."""
    if order == 2:
        return (1.0, -1.0), (0.5, -0.5)
    if order == 4:
        return (2.0, 1.0, -1.0, -2.0), (-1.0 / 12, 8.0 / 12, -8.0 / 12, 1.0 / 12)
    raise ValueError(f"finite-difference order must be 2 or 4, got {order}")


def _pairs_near_cutoff(potential, data: Data, reach: float) -> Tensor:
    """Atoms [M] with a pair (periodic images included) within ``reach`` Å of the cutoff."""
    from equinnp.neighbors import radius_graph

    cell = getattr(data, "cell", None)
    pbc = getattr(data, "pbc", None)
    if cell is not None and not _periodic_axes(data).any():
        cell = pbc = None
    pos = data.pos.detach().double()
    neighbors = radius_graph(
        pos, potential.cutoff + reach, batch=_batch_of(data), cell=None if cell is None else cell.double().reshape(-1, 3, 3),
        pbc=None if pbc is None else pbc.reshape(-1, 3),
    )
    j, i = neighbors.edge_index
    vec = pos[j] - pos[i]
    if cell is not None:
        vec = vec + torch.einsum("ek,ekl->el", neighbors.cell_shifts.double(), cell.double().reshape(-1, 3, 3)[_batch_of(data)[i]])
    near = (vec.norm(dim=-1) - potential.cutoff).abs() <= reach
    return torch.unique(torch.cat([i[near], j[near]]))


def check_finite_difference_forces(
    potential, data: Data, h: Optional[float] = None, rtol: Optional[float] = None, atoms=None, order: Optional[int] = None
):
    """Forces equal central finite differences of the energy, :math:`F = -\\partial E / \\partial x`.

    ``atoms`` (default: all) are displaced by ``h`` Å along each axis in the
    stencil of ``order`` (from :func:`tolerances` by default); the tolerance
    allows the rounding error of the energies divided by ``h``. An atom with a
    pair whose distance is within the stencil's reach of the cutoff is left
    out: an envelope that is only C1 (cosine) makes the difference quotient
    there wrong by O(h) however exact the forces.
    """
    tol = tolerances(potential)
    h = tol.fd_step if h is None else h
    rtol = tol.finite_difference if rtol is None else rtol
    order = tol.fd_order if order is None else order
    offsets, weights = _stencil(order)
    ref = _evaluate(potential, data)
    near = set(_pairs_near_cutoff(potential, data, max(offsets) * h).tolist())
    atoms = [a for a in (range(data.num_nodes) if atoms is None else atoms) if a not in near]
    if not atoms:
        return
    numeric = torch.zeros(len(atoms), 3, dtype=torch.float64)
    for row, a in enumerate(atoms):
        for d in range(3):
            for offset, weight in zip(offsets, weights):
                pos = data.pos.clone()
                pos[a, d] += offset * h
                numeric[row, d] -= weight * _evaluate(potential, _with(data, pos=pos)).energy.sum() / h
    index = torch.as_tensor(atoms)
    noise = sum(abs(w) for w in weights) * ref.noise / h  # rounding of the energies, divided by the step
    _assert_close(ref.forces[index], numeric, "forces against finite differences", rtol, tol.floor + noise, ref.force_scale)


def check_stress_finite_difference(
    potential, data: Data, h: Optional[float] = None, rtol: Optional[float] = None, order: Optional[int] = None
):
    """Stress equals :math:`V^{-1} \\partial E / \\partial \\varepsilon` by central differences (ASE's convention).

    Each of the six symmetric strain components :math:`\\varepsilon_{ab} =
    \\varepsilon_{ba}` is applied to positions and cell, :math:`x \\to x (1 + \\varepsilon)`.
    The tolerance allows the rounding error of the energies divided by ``h V``.
    """
    tol = tolerances(potential)
    h = tol.strain_step if h is None else h
    rtol = tol.finite_difference if rtol is None else rtol
    order = tol.strain_order if order is None else order
    offsets, weights = _stencil(order)
    ref = _evaluate(potential, data)
    if ref.stress is None:
        raise ValueError("stress finite differences need a periodic system (data.cell and data.pbc)")
    cell = data.cell.reshape(3, 3)
    volume = torch.linalg.det(cell.double()).abs()
    numeric = torch.zeros(3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(a, 3):
            for offset, weight in zip(offsets, weights):
                strain = torch.eye(3, dtype=cell.dtype)
                strain[a, b] += offset * h / 2
                strain[b, a] += offset * h / 2
                strained = _with(data, pos=data.pos @ strain, cell=(cell @ strain).unsqueeze(0))
                numeric[a, b] += weight * _evaluate(potential, strained).energy.sum() / (h * volume)
            numeric[b, a] = numeric[a, b]
    noise = sum(abs(w) for w in weights) * ref.noise / (h * float(volume))
    _assert_close(ref.stress[0], numeric, "stress against finite differences", rtol, tol.floor + noise, ref.stress_scale)


# ---------------------------------------------------------------- the cutoff
def _jump(values: Sequence[Tensor]) -> Tensor:
    """Discontinuity at 0 of f sampled at (-3δ, -δ, δ, 3δ): the step across minus the mean one-sided step.

    For f continuous with a kink the estimate is O(δ²); a jump J gives J + O(δ²).
    """
    f_3m, f_m, f_p, f_3p = values
    return (f_p - f_m) - 0.5 * ((f_m - f_3m) + (f_3p - f_p))


def cutoff_crossings(data: Data, cutoff: float, margin: float = 1e-2, max_move: float = 1.5, min_distance: float = 0.9):
    """Pairs ``(atom, partner)`` of an open molecule that can be pulled apart across the cutoff cleanly.

    Moving ``atom`` along the line from ``partner`` through it until their
    distance is ``cutoff`` must move it at most ``max_move`` Å, keep every
    other distance from ``atom`` at least ``min_distance`` Å and more than
    ``margin`` Å away from the cutoff. Ordered by how far ``atom`` moves.

    Returns
    -------
    list of (int, int)
    """
    pos = data.pos.detach().double()
    candidates = []
    for a in range(pos.shape[0]):
        for b in range(pos.shape[0]):
            if a == b:
                continue
            vec = pos[a] - pos[b]
            distance = vec.norm().item()
            if distance < 1e-8 or abs(distance - cutoff) > max_move:
                continue
            target = pos[b] + vec / distance * cutoff
            others = torch.cat([pos[:a], pos[a + 1 :]])
            partner_row = b if b < a else b - 1
            d = (others - target).norm(dim=-1)
            d = torch.cat([d[:partner_row], d[partner_row + 1 :]])
            if len(d) and (d.min() < min_distance or ((d - cutoff).abs() <= margin).any()):
                continue
            candidates.append((abs(distance - cutoff), a, b))
    return [(a, b) for _, a, b in sorted(candidates)]


def check_cutoff_crossing(
    potential, data: Data, atom: int, partner: int, delta: Optional[float] = None, rtol: Optional[float] = None
):
    """Energy and forces are continuous as the distance of ``atom`` to ``partner`` crosses the cutoff.

    ``atom`` is placed on the line from ``partner`` through it at distances
    :math:`r_c - 3\\delta, r_c - \\delta, r_c + \\delta, r_c + 3\\delta` (every
    other atom stays put; see :func:`cutoff_crossings` for pairs where no
    other distance crosses too). The jump of energy and of every force
    component is estimated as the step across the cutoff minus the mean of
    the steps on either side, which cancels the smooth variation to O(δ²):
    a missing envelope leaves a jump in the energy, an envelope that is only
    continuous (not C1) a jump in the forces.
    """
    tol = tolerances(potential)
    delta = tol.continuity_step if delta is None else delta
    rtol = tol.continuity if rtol is None else rtol
    pos = data.pos.detach().double()
    direction = pos[atom] - pos[partner]
    direction = direction / direction.norm()
    results = []
    for step in (-3.0, -1.0, 1.0, 3.0):
        moved = pos.clone()
        moved[atom] = pos[partner] + direction * (potential.cutoff + step * delta)
        results.append(_evaluate(potential, _open(data.z, moved.to(data.pos.dtype))))
    energy_jump = _jump([r.energy for r in results]).abs().max().item()
    energy_scale = max(r.energy_scale for r in results)
    noise = 4 * max(r.noise for r in results)  # the estimate's weights sum to 4 in absolute value
    if not energy_jump <= rtol * energy_scale + tol.floor + noise:
        raise AssertionError(
            f"energy jumps by {energy_jump:.3e} eV (rtol {rtol:g} x {energy_scale:.3e}) as atom {atom} "
            f"crosses the cutoff of atom {partner}"
        )
    force_jump = _jump([r.forces for r in results]).abs().max().item()
    force_scale = max(r.force_scale for r in results)
    if not force_jump <= rtol * force_scale + tol.floor:
        raise AssertionError(
            f"forces jump by {force_jump:.3e} eV/Å (rtol {rtol:g} x {force_scale:.3e}) as atom {atom} "
            f"crosses the cutoff of atom {partner}"
        )


def check_cutoff_continuity(potential, z=(6, 8), delta: Optional[float] = None, rtol: Optional[float] = None):
    """Energy and forces are continuous as the two atoms of a dimer ``z`` move apart across the cutoff."""
    pos = torch.tensor([[0.0, 0.0, 0.0], [potential.cutoff, 0.0, 0.0]], dtype=torch.float64)
    check_cutoff_crossing(potential, _open(torch.as_tensor(z), pos), 1, 0, delta, rtol)


# ----------------------------------------------------- separated and isolated
def _just_beyond(fixed: Tensor, moving: Tensor, direction: Tensor, reach: float) -> float:
    """Smallest t such that ``moving + t * direction`` is at least ``reach`` Å from ``fixed`` for this t and all larger.

    ``|d_ij - t u| >= reach`` holds beyond the larger root of a quadratic in t for each pair.
    """
    d = (moving[None, :, :] - fixed[:, None, :]).reshape(-1, 3)  # [F*M, 3]
    along = -(d @ direction)
    return (along + torch.sqrt((along**2 - (d**2).sum(-1) + reach**2).clamp(min=0.0))).max().item()


JUST_BEYOND = 1e-3  # Å past the cutoff: far above the rounding of float32 positions (~1e-6 Å)


def check_separated_additivity(
    potential, first: Data, second: Data, distance: Optional[float] = 100.0, rtol: Optional[float] = None, direction=None
):
    """Two open systems moved apart have the sum of their energies and their own forces.

    ``second`` is translated by ``distance`` Å along ``direction`` (unit
    vector [3], default x); every atom of it must then be beyond the cutoff
    of every atom of ``first``. With ``distance=None`` it is translated just
    far enough that its closest atom is ``JUST_BEYOND`` (1e-3 Å) past the cutoff.
    """
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    direction = torch.tensor([1.0, 0.0, 0.0]) if direction is None else torch.as_tensor(direction)
    direction = direction.double() / direction.double().norm()
    if distance is None:
        distance = _just_beyond(first.pos.double(), second.pos.double(), direction, potential.cutoff + JUST_BEYOND)
    far = second.pos.double() + distance * direction
    gap = torch.cdist(first.pos.double(), far).min().item()
    if not gap > potential.cutoff:
        raise ValueError(f"the systems are {gap:.3g} Å apart, within the cutoff {potential.cutoff:g} Å: use a larger distance")
    one, two = _evaluate(potential, _open(first.z, first.pos)), _evaluate(potential, _open(second.z, second.pos))
    joined = _evaluate(potential, _open(torch.cat([first.z, second.z]), torch.cat([first.pos.double(), far]).to(first.pos.dtype)))
    _energies_close(joined.energy, one.energy + two.energy, "energy of separated systems against the sum", rtol, tol,
                    one.energy_scale + two.energy_scale, joined.noise + one.noise + two.noise)
    force_scale = max(one.force_scale, two.force_scale)
    _assert_close(joined.forces, torch.cat([one.forces, two.forces]), "forces of separated systems", rtol, tol.floor, force_scale)


def check_isolated_atom(potential, z: int, positions: Tensor, rtol: Optional[float] = None):
    """A lone atom of element ``z`` has zero force and the same energy wherever it is (``positions`` [M, 3], Å)."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    results = [_evaluate(potential, _open(torch.tensor([int(z)]), p.reshape(1, 3).double())) for p in positions]
    for k, result in enumerate(results):
        force = result.forces.abs().max().item()
        if not force <= tol.floor:
            raise AssertionError(f"a lone atom (Z={z}) at {positions[k].tolist()} has a force of {force:.3e} eV/Å")
        _energies_close(result.energy, results[0].energy, f"energy of a lone atom (Z={z}) moved to {positions[k].tolist()}",
                        rtol, tol, results[0].energy_scale, result.noise + results[0].noise)


def check_isolated_atoms_add(potential, z=(6, 8), distance: Optional[float] = None, rtol: Optional[float] = None, direction=None):
    """Two atoms ``distance`` Å apart (default: ``JUST_BEYOND`` the cutoff) have the sum of their lone energies and no force."""
    distance = potential.cutoff + JUST_BEYOND if distance is None else distance
    origin = torch.zeros(1, 3, dtype=torch.float64)
    first, second = _open(torch.tensor([int(z[0])]), origin), _open(torch.tensor([int(z[1])]), origin)
    check_separated_additivity(potential, first, second, distance, rtol, direction)


def check_atom_beyond_cutoff(potential, data: Data, z: int, direction, gap: float = JUST_BEYOND, rtol: Optional[float] = None):
    """An atom just beyond the cutoff of every atom of an open system changes none of their energies or forces.

    The atom (element ``z``) is placed on the ray from the system's centroid
    along ``direction`` [3], at the first point ``gap`` Å beyond the cutoff of
    all atoms. The system's energy plus the lone atom's must equal the
    total, the system's forces stay, and the added atom feels no force.
    """
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    pos = data.pos.detach().double()
    u = torch.as_tensor(direction).double()
    u = u / u.norm()
    center = pos.mean(dim=0, keepdim=True)
    added = center + _just_beyond(pos, center, u, potential.cutoff + gap) * u  # [1, 3]
    lone = _evaluate(potential, _open(torch.tensor([int(z)]), added))
    alone = _evaluate(potential, _open(data.z, data.pos))
    joined = _evaluate(potential, _open(torch.cat([data.z, torch.tensor([int(z)])]), torch.cat([pos, added]).to(data.pos.dtype)))
    what = f"with an atom (Z={z}) {gap:g} Å beyond the cutoff"
    _energies_close(joined.energy, alone.energy + lone.energy, f"energy {what}", rtol, tol,
                    alone.energy_scale + lone.energy_scale, joined.noise + alone.noise + lone.noise)
    _assert_close(joined.forces[:-1], alone.forces, f"forces {what}", rtol, tol.floor, alone.force_scale)
    force = joined.forces[-1].abs().max().item()
    if not force <= rtol * alone.force_scale + tol.floor:
        raise AssertionError(f"an atom {gap:g} Å beyond the cutoff of all others feels a force of {force:.3e} eV/Å")


# ----------------------------------------------------------------- periodic
def check_wrapping(potential, data: Data, images: Tensor, rtol: Optional[float] = None):
    """Moving atoms by whole lattice vectors (``images`` [N, 3] integers, zero along non-periodic axes) changes nothing."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    if (images[:, ~_periodic_axes(data)] != 0).any():
        raise ValueError("images must be zero along non-periodic axes (pbc False)")
    ref = _evaluate(potential, data)
    moved = data.pos + images.to(data.pos.dtype) @ data.cell.reshape(3, 3)
    wrapped = _evaluate(potential, _with(data, pos=moved))
    _energies_close(wrapped.energy, ref.energy, "energy after wrapping atoms", rtol, tol, ref.energy_scale, ref.noise + wrapped.noise)
    _assert_close(wrapped.forces, ref.forces, "forces after wrapping atoms", rtol, tol.floor, ref.force_scale)
    _assert_close(wrapped.stress, ref.stress, "stress after wrapping atoms", rtol, tol.floor, ref.stress_scale)


def check_supercell(potential, data: Data, repeat=(2, 1, 1), rtol: Optional[float] = None):
    """A supercell of n copies has n times the energy, the same forces per copy and the same stress.

    ``repeat`` [3] copies along each cell vector; 1 along non-periodic axes.
    """
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    periodic = _periodic_axes(data)
    if any(r != 1 for r, p in zip(repeat, periodic.tolist()) if not p):
        raise ValueError(f"repeat {tuple(repeat)} copies the cell along a non-periodic axis (pbc {periodic.tolist()})")
    ref = _evaluate(potential, data)
    cell = data.cell.reshape(3, 3)
    positions = []
    for a in range(repeat[0]):
        for b in range(repeat[1]):
            for c in range(repeat[2]):
                positions.append(data.pos + torch.tensor([a, b, c], dtype=cell.dtype) @ cell)
    n = len(positions)
    big_cell = torch.diag(torch.tensor(repeat, dtype=cell.dtype)) @ cell
    big = Data(z=data.z.repeat(n), pos=torch.cat(positions), cell=big_cell.unsqueeze(0), pbc=data.pbc)
    supercell = _evaluate(potential, big)
    what = f"a {tuple(repeat)} supercell"
    _energies_close(supercell.energy, n * ref.energy, f"energy of {what}", rtol, tol,
                    n * ref.energy_scale, supercell.noise + n * ref.noise)
    _assert_close(supercell.forces, ref.forces.repeat(n, 1), f"forces in {what}", rtol, tol.floor, ref.force_scale)
    _assert_close(supercell.stress, ref.stress, f"stress of {what}", rtol, tol.floor, ref.stress_scale)


def check_responds_to_geometry(potential, data: Data):
    """Guards the other checks against a constant model: some force is above 1e-8 eV/Å."""
    forces = _evaluate(potential, data).forces
    if forces.abs().max() < 1e-8:
        raise AssertionError("forces are all zero: the model ignores the geometry")


# Second derivatives live in their own module; they use the helpers above.
from equinnp.testing.second_derivatives import check_hessian_finite_difference  # noqa: E402
