r"""Rank-2 Cartesian tensors and their irreducible parts, in e3nn's basis.

A 3x3 matrix splits into three parts that rotate independently
(Simeon & De Fabritiis, NeurIPS 2023, "TensorNet", eq. 1):

.. math::
    X = \underbrace{\tfrac13 \mathrm{tr}(X)\,\mathbb{1}}_{I}
      + \underbrace{\tfrac12 (X - X^\top)}_{A}
      + \underbrace{\tfrac12 (X + X^\top) - \tfrac13 \mathrm{tr}(X)\,\mathbb{1}}_{S}

with 1, 3 and 5 independent components. :func:`change_of_basis` gives e3nn's
orthonormal change of basis ``Q`` [9, 3, 3] (from ``e3nn.io.CartesianTensor("ij")``):
the coefficients :math:`x_k = \sum_{ab} Q_{kab} X_{ab}` are e3nn irreps features,
index 0 the scalar (``0e``), 1..3 the antisymmetric part, 4..8 the symmetric
traceless part (``2e``). Because ``Q`` is orthonormal,
:math:`\lVert X \rVert_F^2 = \sum_k x_k^2`, and the squared norms of I, A and S
are the sums of squares of the three slices.

Parity of the antisymmetric slice. For a tensor that transforms as
:math:`X \to R X R^\top` under every orthogonal R, slice 1..3 is an axial
vector (``1e``), as e3nn's ``CartesianTensor`` says. TensorNet builds its A
from ``skew(r_ij)`` of a *polar* bond vector, so its A picks up an extra
:math:`\det R` under reflections and its slice 1..3 transforms as ``1o``:
:data:`TENSORNET_IRREPS` is ``0e + 1o + 2e`` (``tests/test_tensornet.py``
checks both statements with ``Irreps.D_from_matrix``).

Shapes: Cartesian tensors are ``[..., 3, 3, F]`` and irreps coefficients
``[..., 9, F]``, with the channel dimension F last.
"""

from __future__ import annotations

import functools

import torch
from e3nn import o3
from torch import Tensor

__all__ = [
    "CARTESIAN_IRREPS",
    "TENSORNET_IRREPS",
    "IRREP_SLICES",
    "change_of_basis",
    "to_irreps",
    "to_cartesian",
    "decompose",
    "compose",
    "skew",
    "matmul",
    "part_expansion",
    "squared_norms",
]

CARTESIAN_IRREPS = o3.Irreps("0e + 1e + 2e")  # X -> R X R^T for every orthogonal R
TENSORNET_IRREPS = o3.Irreps("0e + 1o + 2e")  # TensorNet features (A built from polar bond vectors)
IRREP_SLICES = (slice(0, 1), slice(1, 4), slice(4, 9))  # I, A, S coefficients in [..., 9, F]


@torch.compiler.disable  # a constant solved once by e3nn: kept out of compiled graphs (dynamo cannot trace the solver)
@functools.lru_cache(maxsize=None)
def _change_of_basis_float64() -> Tensor:
    from e3nn.io import CartesianTensor

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn solves for Q in the default dtype
    try:
        Q = CartesianTensor("ij").reduced_tensor_products().change_of_basis.to(torch.float64)  # [9, 3, 3]
    finally:
        torch.set_default_dtype(default)
    Q[Q.abs() < 1e-12] = 0.0  # exact zeros (e3nn's solver leaves ~1e-16)
    return Q


@functools.lru_cache(maxsize=None)
def change_of_basis(dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """e3nn's orthonormal ``Q`` [9, 3, 3]: irreps coefficient k ↔ 3x3 matrix ``Q[k]``.

    Rounded from float64 to ``dtype`` (never stored in a module, so that a
    float32 → float64 round trip cannot leave it slightly non-orthogonal).
    """
    return _change_of_basis_float64().to(dtype=dtype, device=device)


def to_irreps(X: Tensor, Q: Tensor) -> Tensor:
    r""":math:`x_k = \sum_{ab} Q_{kab} X_{ab}`. Shapes: ``X`` [..., 3, 3, F] → [..., 9, F]."""
    flat = X.reshape(X.shape[:-3] + (9, X.shape[-1]))  # [..., 9, F]
    return torch.matmul(Q.reshape(9, 9), flat)  # [..., 9, F]


def to_cartesian(x: Tensor, Q: Tensor) -> Tensor:
    r""":math:`X_{ab} = \sum_k Q_{kab} x_k`. Shapes: ``x`` [..., 9, F] → [..., 3, 3, F]."""
    flat = torch.matmul(Q.reshape(9, 9).T, x)  # [..., 9, F]
    return flat.reshape(x.shape[:-2] + (3, 3, x.shape[-1]))  # [..., 3, 3, F]


def decompose(X: Tensor):
    """Cartesian ``X`` [..., 3, 3, F] → ``(I, A, S)``, each [..., 3, 3, F], with X = I + A + S."""
    eye = torch.eye(3, dtype=X.dtype, device=X.device).unsqueeze(-1)  # [3, 3, 1]
    trace_third = X.diagonal(dim1=-3, dim2=-2).mean(-1)  # [..., F]
    I = trace_third.unsqueeze(-2).unsqueeze(-2) * eye  # [..., 3, 3, F]
    A = 0.5 * (X - X.transpose(-3, -2))
    S = 0.5 * (X + X.transpose(-3, -2)) - I
    return I, A, S


def compose(I: Tensor, A: Tensor, S: Tensor) -> Tensor:
    """``X = I + A + S`` for irreps coefficient slices [..., 1, F], [..., 3, F], [..., 5, F] → [..., 9, F]."""
    return torch.cat([I, A, S], dim=-2)


def skew(v: Tensor) -> Tensor:
    r"""Antisymmetric matrix with :math:`\mathrm{skew}(v)\,u = v \times u`. Shapes: [..., 3] → [..., 3, 3]."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(v.shape[:-1] + (3, 3))  # [..., 3, 3]


def matmul(Y: Tensor, M: Tensor) -> Tensor:
    """Channel-wise 3x3 matrix product ``(Y M)_ac = Σ_b Y_ab M_bc``. Shapes: [..., 3, 3, F] x2 → [..., 3, 3, F]."""
    # three broadcast products, summed in b order (faster than a batched matmul of 3x3 blocks over N*F)
    return Y[..., :, 0:1, :] * M[..., 0:1, :, :] + Y[..., :, 1:2, :] * M[..., 1:2, :, :] + Y[..., :, 2:3, :] * M[..., 2:3, :, :]


@functools.lru_cache(maxsize=None)
def part_expansion(dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """0/1 matrix [9, 3] copying a value per part (I, A, S) onto that part's 1, 3, 5 coefficients."""
    P = torch.zeros(9, 3, dtype=dtype, device=device)
    for part, k in enumerate(IRREP_SLICES):
        P[k, part] = 1.0
    return P


def squared_norms(x: Tensor) -> Tensor:
    r"""Squared Frobenius norms of I, A and S, :math:`(\lVert I\rVert^2, \lVert A\rVert^2, \lVert S\rVert^2)`.

    Shapes: ``x`` [..., 9, F] → [..., 3, F].
    """
    squares = x * x
    return torch.stack([squares[..., 0, :], squares[..., 1:4, :].sum(-2), squares[..., 4:9, :].sum(-2)], dim=-2)
