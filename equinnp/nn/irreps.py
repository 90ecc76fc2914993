"""Helpers for e3nn irreps: tensor-product instructions and the channel layout.

e3nn stores a feature with irreps ``C x l_1 + C x l_2 + ...`` as one row of
length ``irreps.dim``, block by block, each block ``[C, 2l+1]`` flattened
("mul-ir" layout). Per-channel operations such as the symmetric contraction
of MACE are simpler on ``[N, C, D]`` with ``D = Σ (2l+1)``: one vector of all
the irreps per channel. :func:`to_channels` and :func:`from_channels` convert
between the two.
"""

from __future__ import annotations

from typing import List, Tuple

import re

import torch
from e3nn import o3
from torch import Tensor

__all__ = ["uvu_instructions", "uniform_multiplicity", "to_channels", "from_channels", "block_layout", "to_components", "from_components", "refresh_wigner_3j"]


def uvu_instructions(irreps_in: o3.Irreps, irreps_edge: o3.Irreps, target: o3.Irreps) -> Tuple[o3.Irreps, List[tuple]]:
    r"""Instructions of a channel-wise ("uvu") tensor product filtered to ``target``.

    Every pair of an input block ``(C, l_1)`` and an edge irrep ``l_2`` gives one
    path for each ``l_3`` in :math:`l_1 \otimes l_2` that occurs in ``target``. The
    output blocks are sorted by irrep (stable, so paths with the same irrep keep
    their loop order), the order e3nn's ``Irreps.sort`` gives and mace-torch uses.

    Returns
    -------
    irreps_mid : o3.Irreps
        Output irreps of the tensor product, one block per path, sorted.
    instructions : list of tuple
        ``(i_in, i_edge, i_out, "uvu", True)`` for ``o3.TensorProduct``.
    """
    irreps_in, irreps_edge, target = o3.Irreps(irreps_in), o3.Irreps(irreps_edge), o3.Irreps(target)
    blocks, paths = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_edge) in enumerate(irreps_edge):
            for ir_out in ir_in * ir_edge:
                if ir_out in target:
                    paths.append((i, j, len(blocks)))
                    blocks.append((mul, ir_out))
    order = sorted(range(len(blocks)), key=lambda k: (blocks[k][1], k))
    position = {k: n for n, k in enumerate(order)}
    irreps_mid = o3.Irreps([blocks[k] for k in order])
    instructions = sorted(((i, j, position[k], "uvu", True) for i, j, k in paths), key=lambda t: t[2])
    return irreps_mid, instructions


def uniform_multiplicity(irreps: o3.Irreps) -> int:
    """The common multiplicity C of ``irreps`` (``ValueError`` when the blocks differ)."""
    muls = {mul for mul, _ in o3.Irreps(irreps)}
    if len(muls) != 1:
        raise ValueError(f"irreps {irreps} must have one multiplicity for every irrep, got {sorted(muls)}")
    return muls.pop()


def to_channels(x: Tensor, irreps: o3.Irreps) -> Tensor:
    """e3nn layout ``[N, irreps.dim]`` → ``[N, C, D]`` for irreps ``C x l_1 + C x l_2 + ...``."""
    irreps = o3.Irreps(irreps)
    C = irreps[0].mul
    blocks = [x[:, s].reshape(x.shape[0], C, ir.dim) for s, (_, ir) in zip(irreps.slices(), irreps)]  # [N, C, 2l+1] each
    return torch.cat(blocks, dim=-1)  # [N, C, D]


def from_channels(x: Tensor, irreps: o3.Irreps) -> Tensor:
    """``[N, C, D]`` → e3nn layout ``[N, irreps.dim]`` (inverse of :func:`to_channels`)."""
    irreps = o3.Irreps(irreps)
    blocks, start = [], 0
    for _, ir in irreps:
        blocks.append(x[:, :, start : start + ir.dim].reshape(x.shape[0], -1))  # [N, C*(2l+1)]
        start += ir.dim
    return torch.cat(blocks, dim=-1)  # [N, irreps.dim]


def block_layout(irreps: o3.Irreps) -> Tuple[int, Tuple[int, ...]]:
    """``(C, (2l_1+1, 2l_2+1, ...))`` of irreps ``C x l_1 + C x l_2 + ...``: plain ints.

    Forward passes take this instead of the ``o3.Irreps`` object, so that
    ``torch.compile`` guards on integers (dynamo cannot guard on e3nn's
    ``Irrep``, whose ``len`` raises).
    """
    irreps = o3.Irreps(irreps)
    return uniform_multiplicity(irreps), tuple(ir.dim for _, ir in irreps)


def to_components(x: Tensor, irreps) -> Tensor:
    """e3nn layout ``[N, irreps.dim]`` → component-major ``[D, N, C]`` (one contiguous [N, C] slab per m).

    ``irreps``: an ``o3.Irreps`` or its :func:`block_layout`.
    """
    C, dims = irreps if not isinstance(irreps, (o3.Irreps, str)) else block_layout(irreps)
    blocks, start = [], 0
    for d in dims:
        blocks.append(x[:, start : start + C * d].reshape(x.shape[0], C, d).permute(2, 0, 1))  # [2l+1, N, C]
        start += C * d
    return torch.cat(blocks, dim=0)  # [D, N, C]


def from_components(x: Tensor, irreps: o3.Irreps) -> Tensor:
    """Component-major ``[D, N, C]`` → e3nn layout ``[N, irreps.dim]`` (inverse of :func:`to_components`)."""
    irreps = o3.Irreps(irreps)
    blocks, start = [], 0
    for _, ir in irreps:
        blocks.append(x[start : start + ir.dim].permute(1, 2, 0).reshape(x.shape[1], -1))  # [N, C*(2l+1)]
        start += ir.dim
    return torch.cat(blocks, dim=-1)  # [N, irreps.dim]


_W3J = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)$")


@torch.no_grad()
def refresh_wigner_3j(module: torch.nn.Module) -> None:
    """Rewrite the Wigner 3j buffers of e3nn tensor products from their float64 values.

    e3nn stores them in the default dtype at construction; a model built in
    float32 and cast to float64 would otherwise keep float32-rounded
    coefficients (errors ~1e-8 that break float64 equivariance at 1e-9).
    """
    for name, buffer in module.named_buffers():
        match = _W3J.search(name)
        if match and buffer.is_floating_point():
            l1, l2, l3 = (int(g) for g in match.groups())
            buffer.copy_(o3.wigner_3j(l1, l2, l3, dtype=torch.float64))
