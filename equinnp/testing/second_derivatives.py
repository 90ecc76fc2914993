"""The contract's check of second derivatives: the Hessian against finite differences of the forces.

Re-exported by ``equinnp.testing.contract``. :math:`H_{ia,jb} = -\\partial F_{jb} / \\partial r_{ia}`:
column ``(i, a)`` of the Hessian is compared with the central difference of
the forces as atom ``i`` moves along axis ``a``, in the stencil and step of
the force check (:class:`equinnp.testing.evaluation.Tolerances`), and the
Hessian must be symmetric.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch_geometric.data import Data

from equinnp.testing.evaluation import _assert_close, _evaluate, tolerances

__all__ = ["check_hessian_finite_difference", "HESSIAN_STEP"]

#: Displacement (Å) of the four-point stencil per dtype. The forces' fifth
#: derivative is larger than the energy's: PaiNN's tiny random network has a
#: truncation error of 2e-5 eV/Å² (1.5e-6 relative) at the force check's 1e-3 Å
#: and one 16 times smaller at 5e-4 Å; 2.5e-4 Å leaves float64's rounding
#: (1e-14 eV/Å / 2.5e-4 Å) far below the tolerance. float32: at the force check's
#: 1e-2 Å the truncation error of PaiNN exceeds the 1e-2 tolerance (0.16 against 0.14 eV/Å²);
#: 3e-3 Å passes every architecture at 2e-3 to 5e-3 Å.
HESSIAN_STEP = {torch.float64: 2.5e-4, torch.float32: 3e-3}


def check_hessian_finite_difference(
    potential, data: Data, atoms: Optional[Sequence[int]] = None, h: Optional[float] = None,
    rtol: Optional[float] = None, order: Optional[int] = None,
):
    """``potential.hessian(data)`` [3N, 3N] is symmetric and equals minus the finite differences of the forces.

    ``atoms`` (default: all) are displaced by ``h`` Å along each axis in the
    stencil of ``order``; every component of the forces of every atom is
    compared, so each displaced atom checks three whole columns. An atom with
    a pair within the stencil's reach of the cutoff is left out (a cosine
    envelope's second derivative jumps there). The tolerance scale is the
    largest Hessian element, at least the force scale per Å; the rounding
    error of the forces, divided by ``h``, is allowed on top.
    """
    from equinnp.testing.contract import _pairs_near_cutoff, _stencil, _with

    tol = tolerances(potential)
    h = HESSIAN_STEP.get(tol_dtype(potential), tol.fd_step) if h is None else h
    rtol = tol.finite_difference if rtol is None else rtol
    order = tol.fd_order if order is None else order
    offsets, weights = _stencil(order)
    ref = _evaluate(potential, data)
    analytic = potential.hessian(data).double()  # [3N, 3N]
    n = data.num_nodes
    if analytic.shape != (3 * n, 3 * n):
        raise AssertionError(f"Hessian has shape {tuple(analytic.shape)}, expected [{3 * n}, {3 * n}]")
    scale = max(float(analytic.abs().max()) if analytic.numel() else 0.0, ref.force_scale)
    # rounding of float32 forces is relative to their size; float64's to their size times eps
    force_noise = torch.finfo(tol_dtype(potential)).eps * 100 * ref.force_scale
    _assert_close(analytic, analytic.T, "Hessian symmetry", rtol, tol.floor + force_noise / h, scale)
    near = set(_pairs_near_cutoff(potential, data, max(offsets) * h).tolist())
    atoms = [a for a in (range(n) if atoms is None else atoms) if a not in near]
    if not atoms:
        return
    numeric = torch.zeros(3 * n, 3 * len(atoms), dtype=torch.float64)  # [3N, 3M]
    columns = []
    for m, a in enumerate(atoms):
        for d in range(3):
            for offset, weight in zip(offsets, weights):
                pos = data.pos.clone()
                pos[a, d] += offset * h
                numeric[:, 3 * m + d] -= weight * _evaluate(potential, _with(data, pos=pos)).forces.reshape(-1) / h
            columns.append(3 * a + d)
    noise = sum(abs(w) for w in weights) * force_noise / h
    _assert_close(analytic[:, columns], numeric, "Hessian against finite differences of the forces", rtol,
                  tol.floor + noise, scale)


def tol_dtype(potential) -> torch.dtype:
    """The floating-point dtype of the potential's parameters (float64 if it has none)."""
    from equinnp.testing.evaluation import _dtype

    return _dtype(potential)
