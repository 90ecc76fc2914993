r"""Representation matrices of e3nn irreps for a given orthogonal matrix, exact in float64.

e3nn's ``Irreps.D_from_matrix`` converts the matrix to Euler angles and builds
:math:`D` from them; near gimbal lock (e.g. rotations close to the identity)
that loses about half of the float64 digits (errors ~1e-8). :func:`wigner_D`
avoids angles: the real spherical harmonics of degree l span the irrep l, so

.. math:: Y_l(Q x) = D_l(Q)\, Y_l(x) \quad \text{for all unit } x,

and :math:`D_l(Q)` is the solution of that linear system over a fixed set of
well-spread unit vectors (more than :math:`2l+1`, solved by least squares),
with e3nn's own harmonics (``normalize=True``, component normalization), hence
e3nn's basis and sign conventions. For an improper R (det R = -1) the rotation
part is :math:`Q = -R` and a block of parity p is multiplied by p, as in e3nn.
"""

from __future__ import annotations

import math
from typing import Dict

import torch
from e3nn import o3
from torch import Tensor

__all__ = ["wigner_D"]

_PINV: Dict[int, tuple] = {}  # l -> (unit vectors [M, 3], pseudo-inverse of Y_l(X) [2l+1, M]), float64 on CPU


def _sample(l: int):
    """Fibonacci-lattice unit vectors (4(2l+1) of them, at least 8) and the pseudo-inverse of their harmonics."""
    if l not in _PINV:
        M = max(8, 4 * (2 * l + 1))
        k = torch.arange(M, dtype=torch.float64) + 0.5
        z = 1.0 - 2.0 * k / M
        phi = k * math.pi * (3.0 - math.sqrt(5.0))
        rho = torch.sqrt(1.0 - z * z)
        X = torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), z], dim=-1)  # [M, 3]
        Y = o3.spherical_harmonics(l, X, normalize=True, normalization="component")  # [M, 2l+1]
        _PINV[l] = (X, torch.linalg.pinv(Y))
    return _PINV[l]


def _proper_D(l: int, Q: Tensor) -> Tensor:
    """D_l(Q) [..., 2l+1, 2l+1] of rotations Q [..., 3, 3] (float64, CPU)."""
    X, pinv = _sample(l)
    Y_rotated = o3.spherical_harmonics(l, X @ Q.transpose(-1, -2), normalize=True, normalization="component")  # [..., M, 2l+1]
    return (pinv @ Y_rotated).transpose(-1, -2)  # Y(X Q^T) = Y(X) D^T


def wigner_D(irreps, R: Tensor, *, atol: float = 1e-8) -> Tensor:
    """Block-diagonal representation matrix of ``irreps`` for orthogonal matrices ``R``.

    Same convention as e3nn: features of positions ``pos @ R.T`` are
    ``x @ wigner_D(irreps, R).T``; equals ``o3.Irreps(irreps).D_from_matrix(R)``
    up to e3nn's rounding.

    Parameters
    ----------
    irreps : o3.Irreps or str
    R : Tensor, [..., 3, 3]
        Orthogonal matrices (rotations or improper rotations), any float dtype.
    atol : float
        Largest accepted deviation of ``R R^T`` from the identity.

    Returns
    -------
    Tensor, [..., irreps.dim, irreps.dim], float64, on ``R``'s device.
    """
    irreps = o3.Irreps(irreps)
    R64 = R.detach().to(device="cpu", dtype=torch.float64)
    if R64.shape[-2:] != (3, 3):
        raise ValueError(f"R must have shape [..., 3, 3], got {tuple(R.shape)}")
    eye = torch.eye(3, dtype=torch.float64)
    deviation = (R64 @ R64.transpose(-1, -2) - eye).abs().amax().item() if R64.numel() else 0.0
    if deviation > atol:
        raise ValueError(f"R is not orthogonal: |R R^T - I| = {deviation:.2e} > {atol:g}")
    det = torch.linalg.det(R64).sign()  # [...]
    Q = R64 * det[..., None, None]  # proper part
    improper = det < 0
    batch = R64.shape[:-2]
    out = torch.zeros(*batch, irreps.dim, irreps.dim, dtype=torch.float64)
    cache: Dict[int, Tensor] = {}
    start = 0
    for mul, ir in irreps:
        if ir.l not in cache:
            cache[ir.l] = _proper_D(ir.l, Q)
        block = cache[ir.l]
        if ir.p == -1:
            block = torch.where(improper[..., None, None], -block, block)
        d = ir.dim
        for _ in range(mul):
            out[..., start : start + d, start : start + d] = block
            start += d
    return out.to(R.device)
