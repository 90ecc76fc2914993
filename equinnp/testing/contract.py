"""The symmetry and consistency contract every potential passes.

Each ``check_*`` function takes a ``Potential`` (use float64) and ``Data``
records, and raises ``AssertionError`` with the size of the violation when the
property does not hold. The test suite runs them over every entry of
``equinnp.ARCHITECTURES``; users run them on their own layers.

Tolerances are relative to the magnitude of the quantity compared: ``RTOL``
(1e-9) for exact symmetries in float64, looser ones for finite differences.
"""

from __future__ import annotations

import copy

import torch
from torch_geometric.data import Batch, Data

__all__ = [
    "RTOL",
    "evaluate",
    "check_rotation",
    "check_translation",
    "check_permutation",
    "check_batch_consistency",
    "check_no_cross_talk",
    "check_finite_difference_forces",
    "check_cutoff_continuity",
    "check_separated_additivity",
    "check_wrapping",
    "check_supercell",
    "check_stress_finite_difference",
    "check_responds_to_geometry",
]

RTOL = 1e-9


def evaluate(potential, data, compute_stress=None):
    """Energy [B], forces [N, 3] and stress of ``data`` as detached float64 tensors."""
    out = potential(data, compute_forces=True, compute_stress=compute_stress)
    stress = None if out.stress is None else out.stress.detach().double()
    return out.energy.detach().double(), out.forces.detach().double(), stress


def _assert_close(actual, expected, what: str, rtol: float = RTOL, floor: float = 1e-12):
    actual, expected = actual.double(), expected.double()
    scale = max(expected.abs().max().item() if expected.numel() else 0.0, floor)
    error = (actual - expected).abs().max().item() if expected.numel() else 0.0
    if not error <= rtol * scale + floor:
        raise AssertionError(f"{what}: max deviation {error:.3e} exceeds {rtol:g} x {scale:.3e}")


def _with(data: Data, **changes) -> Data:
    new = copy.copy(data)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def check_rotation(potential, data: Data, R: torch.Tensor, rtol: float = RTOL):
    """E(x R^T) = E(x), F(x R^T) = F(x) R^T, stress → R σ R^T, for orthogonal R (rotation or reflection)."""
    R = R.to(data.pos.dtype)
    energy, forces, stress = evaluate(potential, data)
    changes = {"pos": data.pos @ R.T}
    if getattr(data, "cell", None) is not None:
        changes["cell"] = data.cell @ R.T
    energy_r, forces_r, stress_r = evaluate(potential, _with(data, **changes))
    _assert_close(energy_r, energy, "energy under rotation", rtol)
    _assert_close(forces_r, forces @ R.T.double(), "forces under rotation", rtol)
    if stress is not None:
        _assert_close(stress_r, R.double() @ stress @ R.T.double(), "stress under rotation", rtol)


def check_translation(potential, data: Data, shift: torch.Tensor, rtol: float = RTOL):
    """Energy and forces unchanged by a rigid translation."""
    energy, forces, _ = evaluate(potential, data)
    energy_t, forces_t, _ = evaluate(potential, _with(data, pos=data.pos + shift.to(data.pos.dtype)))
    _assert_close(energy_t, energy, "energy under translation", rtol)
    _assert_close(forces_t, forces, "forces under translation", rtol)


def check_permutation(potential, data: Data, permutation: torch.Tensor, rtol: float = RTOL):
    """Relabelling atoms permutes the forces and leaves the energy unchanged."""
    energy, forces, _ = evaluate(potential, data)
    energy_p, forces_p, _ = evaluate(potential, _with(data, z=data.z[permutation], pos=data.pos[permutation]))
    _assert_close(energy_p, energy, "energy under permutation", rtol)
    _assert_close(forces_p, forces[permutation], "forces under permutation", rtol)


def check_batch_consistency(potential, systems, rtol: float = RTOL):
    """A batch gives the same energies and forces as its systems one by one."""
    batch = Batch.from_data_list(systems)
    energy, forces, stress = evaluate(potential, batch)
    offset = 0
    for k, data in enumerate(systems):
        e, f, s = evaluate(potential, data)
        n = data.num_nodes
        _assert_close(energy[k : k + 1], e, f"energy of system {k} in a batch", rtol)
        _assert_close(forces[offset : offset + n], f, f"forces of system {k} in a batch", rtol)
        if s is not None:
            _assert_close(stress[k : k + 1], s, f"stress of system {k} in a batch", rtol)
        offset += n


def check_no_cross_talk(potential, systems):
    """The energy of one system has exactly zero gradient w.r.t. the atoms of the others."""
    batch = Batch.from_data_list(systems)
    pos = batch.pos.detach().clone().requires_grad_(True)
    out = potential(_with(batch, pos=pos), compute_forces=False, compute_stress=False)
    for k in range(len(systems)):
        (grad,) = torch.autograd.grad(out.energy[k], pos, retain_graph=True, allow_unused=True)
        if grad is None:
            continue
        leak = grad[batch.batch != k].abs().max().item() if (batch.batch != k).any() else 0.0
        if leak != 0.0:
            raise AssertionError(f"energy of system {k} depends on atoms of other systems (gradient {leak:.3e})")


def check_finite_difference_forces(potential, data: Data, h: float = 1e-5, rtol: float = 1e-6, atoms=None):
    """Forces equal central finite differences of the energy, (E(x-h) - E(x+h)) / 2h."""
    _, forces, _ = evaluate(potential, data)
    atoms = range(data.num_nodes) if atoms is None else atoms
    numeric = torch.zeros_like(forces)
    for a in atoms:
        for d in range(3):
            plus, minus = data.pos.clone(), data.pos.clone()
            plus[a, d] += h
            minus[a, d] -= h
            e_plus = evaluate(potential, _with(data, pos=plus))[0].sum()
            e_minus = evaluate(potential, _with(data, pos=minus))[0].sum()
            numeric[a, d] = (e_minus - e_plus) / (2 * h)
    index = torch.as_tensor(list(atoms))
    _assert_close(forces[index], numeric[index], "forces against finite differences", rtol, floor=1e-8)


def check_cutoff_continuity(potential, z=(6, 8), delta: float = 1e-6, atol: float = 1e-7):
    """Energy and forces are continuous as a second atom crosses the cutoff of a dimer."""
    cutoff = potential.cutoff
    results = []
    for r in (cutoff - delta, cutoff + delta):
        pos = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64)
        results.append(evaluate(potential, Data(z=torch.tensor(z), pos=pos)))
    (e_in, f_in, _), (e_out, f_out, _) = results
    if (e_in - e_out).abs().max() > atol:
        raise AssertionError(f"energy jumps by {(e_in - e_out).abs().max().item():.3e} eV at the cutoff")
    if (f_in - f_out).abs().max() > atol:
        raise AssertionError(f"forces jump by {(f_in - f_out).abs().max().item():.3e} eV/Å at the cutoff")


def check_separated_additivity(potential, first: Data, second: Data, distance: float = 100.0, rtol: float = RTOL):
    """Two molecules ``distance`` Å apart have the sum of their energies and their own forces."""
    e1, f1, _ = evaluate(potential, first)
    e2, f2, _ = evaluate(potential, second)
    far = second.pos + torch.tensor([distance, 0.0, 0.0], dtype=second.pos.dtype)
    joined = Data(z=torch.cat([first.z, second.z]), pos=torch.cat([first.pos, far]))
    e, f, _ = evaluate(potential, joined)
    _assert_close(e, e1 + e2, "energy of separated molecules against the sum", rtol)
    _assert_close(f, torch.cat([f1, f2]), "forces of separated molecules", rtol)


def check_wrapping(potential, data: Data, images: torch.Tensor, rtol: float = RTOL):
    """Moving atoms by whole lattice vectors (``images`` [N, 3] integers) changes nothing."""
    energy, forces, stress = evaluate(potential, data)
    moved = data.pos + images.to(data.pos.dtype) @ data.cell[0]
    energy_w, forces_w, stress_w = evaluate(potential, _with(data, pos=moved))
    _assert_close(energy_w, energy, "energy after wrapping atoms", rtol)
    _assert_close(forces_w, forces, "forces after wrapping atoms", rtol)
    _assert_close(stress_w, stress, "stress after wrapping atoms", rtol)


def check_supercell(potential, data: Data, repeat=(2, 1, 1), rtol: float = RTOL):
    """A supercell of n copies has n times the energy, the same forces per copy and the same stress."""
    energy, forces, stress = evaluate(potential, data)
    cell = data.cell[0]
    positions, n = [], 0
    for a in range(repeat[0]):
        for b in range(repeat[1]):
            for c in range(repeat[2]):
                offset = torch.tensor([a, b, c], dtype=cell.dtype) @ cell
                positions.append(data.pos + offset)
                n += 1
    big_cell = torch.diag(torch.tensor(repeat, dtype=cell.dtype)) @ cell
    big = Data(z=data.z.repeat(n), pos=torch.cat(positions), cell=big_cell.unsqueeze(0), pbc=data.pbc)
    energy_s, forces_s, stress_s = evaluate(potential, big)
    _assert_close(energy_s, n * energy, f"energy of a {repeat} supercell", rtol)
    _assert_close(forces_s, forces.repeat(n, 1), f"forces in a {repeat} supercell", rtol)
    _assert_close(stress_s, stress, f"stress of a {repeat} supercell", rtol)


def check_stress_finite_difference(potential, data: Data, h: float = 1e-5, rtol: float = 1e-6):
    """Stress equals (E(ε+h) - E(ε-h)) / (2hV) for each symmetric strain component (ASE's convention)."""
    _, _, stress = evaluate(potential, data)
    cell = data.cell[0]
    volume = torch.linalg.det(cell).abs()
    numeric = torch.zeros(3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1.0, -1.0):
                strain = torch.eye(3, dtype=cell.dtype)
                strain[a, b] += sign * h / 2
                strain[b, a] += sign * h / 2
                strained = _with(data, pos=data.pos @ strain, cell=(cell @ strain).unsqueeze(0))
                energies.append(evaluate(potential, strained)[0].sum())
            numeric[a, b] = (energies[0] - energies[1]) / (2 * h * volume)
    _assert_close(stress[0], numeric, "stress against finite differences", rtol, floor=1e-8)


def check_responds_to_geometry(potential, data: Data):
    """Guards the other checks against a constant model: forces are non-zero."""
    _, forces, _ = evaluate(potential, data)
    if forces.abs().max() < 1e-8:
        raise AssertionError("forces are all zero: the model ignores the geometry")
