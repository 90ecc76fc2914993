"""Hessian of the energy with respect to the atomic positions, by autograd.

:math:`H_{ia,jb} = \\partial^2 E / \\partial r_{ia} \\partial r_{jb} = -\\partial F_{jb} / \\partial r_{ia}`
(eV/Å²), for the positions of every atom of a ``Data`` or ``Batch`` (atoms
of different systems of a batch have zero blocks). The gradient
:math:`g = \\partial E / \\partial r` is computed once with its graph kept;
the rows of :math:`H` are then vector-Jacobian products of :math:`g` with unit
vectors, ``chunk_size`` rows per backward pass vectorized with ``vmap``
(``torch.autograd.grad(..., is_grads_batched=True)``). This is the derivative
stage of ``Potential`` (called by ``Potential.hessian``), the one other place
besides ``Potential.forward`` where equinnp calls autograd.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["hessian", "default_chunk_size"]

#: Memory one batched backward may take, roughly: the rows of a chunk times the
#: graph of one backward pass (estimated as ``BYTES_PER_EDGE_ROW`` per edge per row).
MEMORY_BUDGET = 2 * 1024**3
BYTES_PER_EDGE_ROW = 4096


def default_chunk_size(num_coordinates: int, num_edges: int, budget: int = MEMORY_BUDGET) -> int:
    """Rows per vectorized backward pass: all ``3N`` when they fit in ``budget`` bytes, fewer otherwise (at least 1)."""
    per_row = max(1, num_edges) * BYTES_PER_EDGE_ROW
    return int(max(1, min(num_coordinates, budget // per_row)))


def _rows(gradient: Tensor, pos: Tensor, start: int, stop: int, vectorize: bool) -> Tensor:
    """Rows ``start:stop`` of the Hessian [stop - start, 3N]: :math:`\\partial (e_k \\cdot g) / \\partial r` for each k."""
    flat = gradient.reshape(-1)  # [3N]
    count = stop - start
    unit = torch.zeros(count, flat.shape[0], dtype=flat.dtype, device=flat.device)  # [K, 3N]
    unit[torch.arange(count), torch.arange(start, stop)] = 1.0
    if vectorize:
        (rows,) = torch.autograd.grad(flat, pos, grad_outputs=unit, retain_graph=True, is_grads_batched=True,
                                      allow_unused=True)
        return torch.zeros(count, pos.numel(), dtype=pos.dtype, device=pos.device) if rows is None else rows.reshape(count, -1)
    out = []
    for k in range(count):
        (row,) = torch.autograd.grad(flat, pos, grad_outputs=unit[k], retain_graph=True, allow_unused=True)
        out.append(torch.zeros_like(pos).reshape(-1) if row is None else row.reshape(-1))
    return torch.stack(out)


def hessian(potential, data, chunk_size: Optional[int] = None, vectorize: Optional[bool] = None) -> Tensor:
    """Hessian [3N, 3N] (eV/Å², rows and columns ordered atom by atom, x y z) of the total energy.

    Parameters
    ----------
    potential : Potential
        Evaluated as ``potential(data, compute_forces=False, compute_stress=False)``
        with positions that require gradients.
    data : Data or Batch
        ``z`` [N], ``pos`` [N, 3] and whatever else the potential reads.
    chunk_size : int, optional
        Rows per vectorized backward pass (default :func:`default_chunk_size`:
        all rows while they fit in about 2 GB).
    vectorize : bool, optional
        True: ``vmap`` over the rows of a chunk; False: one backward pass per
        row. None (default): ``vmap``, and one row at a time for a potential
        whose backward ``vmap`` cannot batch (in-place operations on saved
        tensors, as in TensorNet's fused tensor products).

    Returns
    -------
    Tensor
        [3N, 3N] in the dtype of ``data.pos``, symmetric up to rounding;
        ``H.reshape(N, 3, N, 3)[i, a, j, b]`` is :math:`\\partial^2 E / \\partial r_{ia} \\partial r_{jb}`.
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    with torch.inference_mode(False), torch.enable_grad():
        pos = data.pos.detach().clone().requires_grad_(True)  # [N, 3]
        inputs = data.clone() if hasattr(data, "clone") else data
        inputs.pos = pos
        energy = potential(inputs, compute_forces=False, compute_stress=False).energy  # [B]
        (gradient,) = torch.autograd.grad(energy.sum(), pos, create_graph=True, allow_unused=True)  # [N, 3]
        num_coordinates = pos.numel()
        if gradient is None or not gradient.requires_grad:  # energy independent of, or linear in, the positions
            return torch.zeros(num_coordinates, num_coordinates, dtype=pos.dtype, device=pos.device)
        if chunk_size is None:
            edges = getattr(inputs, "edge_index", None)
            num_edges = edges.shape[1] if edges is not None else 64 * pos.shape[0]
            chunk_size = default_chunk_size(num_coordinates, num_edges)
        rows = []
        for start in range(0, num_coordinates, chunk_size):
            stop = min(start + chunk_size, num_coordinates)
            try:
                rows.append(_rows(gradient, pos, start, stop, vectorize is not False).detach())
            except RuntimeError as error:
                if vectorize or "vmap" not in str(error):
                    raise
                vectorize = False  # this potential's backward cannot be batched: one row at a time
                rows.append(_rows(gradient, pos, start, stop, False).detach())
    return torch.cat(rows).reshape(num_coordinates, num_coordinates) if rows else pos.new_zeros(0, 0).detach()
