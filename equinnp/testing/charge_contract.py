"""The contract of potentials that predict partial charges.

Every potential whose core network outputs "charges" passes these besides
the checks of ``equinnp.testing.contract``: the charges sum to each
system's total charge (``data.charge``), they are invariant under rotations,
reflections and translations and follow a relabelling of the atoms, and the
dipole rotates with the system and does not move with it. Each raises
``AssertionError`` naming the quantity, the largest deviation and the tolerance.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.data import Data

from equinnp.testing.evaluation import _assert_close, tolerances

__all__ = ["CHARGE_TOLERANCE", "check_charge_conservation", "check_charge_symmetries", "check_dipole_equivariance"]

#: Largest allowed |Σ q_i - Q| per system (e), in every dtype.
CHARGE_TOLERANCE = 1e-6


def _charged_output(potential, data: Data):
    out = potential(data, compute_forces=False)
    if out.charges is None:
        raise AssertionError("the potential predicts no charges (PotentialOutput.charges is None)")
    return out


def _with(data: Data, **changes) -> Data:
    new = copy.copy(data)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def _total_charge(data: Data) -> Tensor:
    charge = getattr(data, "charge", None)
    if charge is None:
        raise ValueError("check_charge_conservation needs data.charge (the total charge of every system, [B])")
    return charge.reshape(-1).double()


def check_charge_conservation(potential, data: Data, atol: float = CHARGE_TOLERANCE):
    """:math:`|\\sum_{i \\in b} q_i - Q_b| \\le` ``atol`` for every system b of ``data`` (a Data or Batch)."""
    out = _charged_output(potential, data)
    batch = getattr(data, "batch", None)
    batch = torch.zeros_like(data.z) if batch is None else batch
    total = _total_charge(data)
    summed = torch.zeros_like(total).index_add_(0, batch, out.charges.detach().double())  # [B]
    error = float((summed - total).abs().max())
    if not error <= atol:
        raise AssertionError(f"total charge not conserved: max |sum q - Q| = {error:.3e} e exceeds {atol:g} e "
                             f"(Q = {total.tolist()}, sum q = {summed.tolist()})")


def check_charge_symmetries(potential, data: Data, R: Tensor, shift: Tensor, permutation: Tensor,
                            rtol: Optional[float] = None):
    """Charges unchanged by an orthogonal ``R`` [3, 3] and a translation ``shift`` [3]; permuted with the atoms."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    ref = _charged_output(potential, data).charges.detach().double()  # [N]
    scale = float(ref.abs().max()) + 1.0
    R = R.to(data.pos.dtype)
    rotated = _charged_output(potential, _with(data, pos=data.pos @ R.T)).charges.detach()
    _assert_close(rotated, ref, "charges under rotation", rtol, tol.floor, scale)
    moved = _charged_output(potential, _with(data, pos=data.pos + shift.to(data.pos.dtype))).charges.detach()
    _assert_close(moved, ref, "charges under translation", rtol, tol.floor, scale)
    permuted = _charged_output(potential, _with(data, z=data.z[permutation], pos=data.pos[permutation])).charges.detach()
    _assert_close(permuted, ref[permutation], "charges under permutation", rtol, tol.floor, scale)


def check_dipole_equivariance(potential, data: Data, R: Tensor, shift: Tensor, rtol: Optional[float] = None):
    """:math:`\\mu(x R^T + t) = \\mu(x) R^T` for an orthogonal ``R`` [3, 3] and a translation ``shift`` [3] (open systems)."""
    tol = tolerances(potential)
    rtol = tol.symmetry if rtol is None else rtol
    out = _charged_output(potential, data)
    if out.dipole is None:
        raise AssertionError("the potential predicts charges but no dipole (PotentialOutput.dipole is None)")
    ref = out.dipole.detach().double()  # [B, 3]
    extent = float((data.pos.double() - data.pos.double().mean(0)).norm(dim=-1).max()) + 1.0
    scale = float(out.charges.detach().double().abs().sum()) * extent  # bound of |mu| (e·Å)
    R = R.to(data.pos.dtype)
    moved = _charged_output(potential, _with(data, pos=data.pos @ R.T + shift.to(data.pos.dtype))).dipole.detach()
    _assert_close(moved, ref @ R.double().T, "dipole under rotation and translation", rtol, tol.floor, scale)
