"""Checks of atoms and cells shared by ``equinnp.data``, the neighbor list and ``Potential``.

One rule for each input, so that a structure accepted by one layer is
accepted by all: atomic numbers 1..118; finite positions of shape [N, 3];
for periodic directions, finite lattice vectors that are not degenerate,
measured relative to their lengths (the sine of the angles between the
periodic vectors, :math:`\\sqrt{\\det(P P^T)} / \\prod_r |P_r| > 10^{-10}`),
so that tiny and huge cells are judged alike. Open directions of a slab or
wire may hold any vector, including zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEGENERATE_CELL", "check_atomic_numbers", "check_positions", "check_cells"]

DEGENERATE_CELL = 1e-10


def check_atomic_numbers(z: Tensor) -> None:
    """``z`` [N] integer atomic numbers in 1..118."""
    if z.dim() != 1:
        raise ValueError(f"atomic numbers must have shape [N], got {tuple(z.shape)}")
    if z.is_floating_point():
        raise ValueError(f"atomic numbers must be integers, got dtype {z.dtype}")
    if z.numel() and (int(z.min()) < 1 or int(z.max()) > 118):
        bad = z[(z < 1) | (z > 118)][0].item()
        raise ValueError(f"atomic number {bad} is not an element (expected 1..118)")


def check_positions(pos: Tensor, num_atoms: int | None = None) -> None:
    """``pos`` [N, 3] floating point and finite (and N == ``num_atoms`` when given)."""
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape [N, 3], got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise ValueError(f"positions must have a floating point dtype, got {pos.dtype}")
    if num_atoms is not None and pos.shape[0] != num_atoms:
        raise ValueError(f"{num_atoms} atomic numbers but {pos.shape[0]} positions: the counts must match")
    if not bool(torch.isfinite(pos).all()):
        atom = int((~torch.isfinite(pos).all(dim=1)).nonzero()[0])
        raise ValueError(f"position of atom {atom} is not finite: {pos[atom].tolist()}")


def check_cells(cell: Tensor, pbc: Tensor) -> None:
    """``cell`` [B, 3, 3] (rows are lattice vectors) and ``pbc`` [B, 3] bool.

    Periodic rows must be finite and span a non-degenerate lattice (see the
    module docstring); rows of open directions are not looked at.
    """
    if cell.dim() != 3 or cell.shape[1:] != (3, 3):
        raise ValueError(f"cell must have shape [B, 3, 3], got {tuple(cell.shape)}")
    if pbc.shape != (cell.shape[0], 3):
        raise ValueError(f"pbc must have shape [B, 3] = [{cell.shape[0]}, 3], got {tuple(pbc.shape)}")
    if not bool(pbc.any()):
        return
    rows = torch.where(pbc.unsqueeze(-1), cell.double(), torch.zeros((), dtype=torch.float64, device=cell.device))
    finite = torch.isfinite(rows).all(dim=(1, 2))  # [B]
    if not bool(finite.all()):
        b = int((~finite).nonzero()[0])
        raise ValueError(f"cell of system {b} is not finite in its periodic directions (pbc={pbc[b].tolist()}): {cell[b].tolist()}")
    # Gram determinant of the periodic rows; open rows become unit vectors orthogonal to everything
    eye = torch.eye(3, dtype=torch.float64, device=cell.device)
    gram = rows @ rows.transpose(1, 2)  # [B, 3, 3]
    open_ = ~pbc
    gram = torch.where(open_.unsqueeze(1) | open_.unsqueeze(2), eye.expand_as(gram), gram)
    lengths = torch.where(pbc, torch.linalg.vector_norm(rows, dim=-1), torch.ones_like(rows[..., 0]))  # [B, 3]
    product = lengths.prod(dim=1)  # [B]
    sine = torch.where(product > 0, torch.linalg.det(gram).clamp_min(0).sqrt() / product.clamp_min(1e-300), torch.zeros_like(product))
    degenerate = pbc.any(dim=1) & ~(sine > DEGENERATE_CELL)  # [B]
    if bool(degenerate.any()):
        b = int(degenerate.nonzero()[0])
        raise ValueError(
            f"cell of system {b} has zero volume in its periodic directions (pbc={pbc[b].tolist()}): {cell[b].tolist()}"
        )
