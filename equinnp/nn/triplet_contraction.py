r"""Chunked triplet contractions with bounded memory and derivatives of every order.

DimeNet++'s directional message (``equinnp.models.dimenetpp``) is, per output
edge ``ji``, a sum over triplets ``t = (kj, ji)`` of an angular weight
``Y[t, l]`` times a per-edge tensor ``M[kj, l, c]``:

.. math::
    a_{ji,c} = \sum_{t:\, ji(t) = ji} \sum_l Y_{t,l}\, M_{kj(t),l,c}

Written with plain indexing, autograd would keep the gathered ``M[kj]`` of
shape [T, L, C] for the backward pass: gigabytes for a thousand atoms. The three
operations here are the three partial derivatives of one trilinear form

.. math::
    F(Y, M, G) = \sum_t \sum_{l,c} Y_{t,l}\, M_{kj(t),l,c}\, G_{ji(t),c}

- ``triplet_contract(Y, M)`` = ∂F/∂G, shape [E, C] (the forward message);
- ``triplet_outer(Y, G)``    = ∂F/∂M, shape [E, L, C];
- ``triplet_dot(M, G)``      = ∂F/∂Y, shape [T, L].

The backward pass of each is made of the other two, so forces, force-loss
training (double backward) and Hessians work, and none of them keeps anything
per triplet but ``Y`` and the indices. Each loops over chunks of triplets so that
its temporaries stay below ``chunk_elements`` numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["triplet_contract", "triplet_outer", "triplet_dot", "DEFAULT_CHUNK_ELEMENTS"]

#: Numbers in one chunk's temporaries ([chunk, L, C]): 2^23 (32 MB in float32).
DEFAULT_CHUNK_ELEMENTS = 2**23


def _chunks(num_triplets: int, per_triplet: int, chunk_elements: int):
    step = max(1, chunk_elements // max(1, per_triplet))
    for start in range(0, num_triplets, step):
        yield slice(start, min(start + step, num_triplets))


def _contract(Y: Tensor, M: Tensor, idx_kj: Tensor, idx_ji: Tensor, chunk_elements: int) -> Tensor:
    out = M.new_zeros((M.shape[0], M.shape[2]))  # [E, C]
    for part in _chunks(Y.shape[0], M.shape[1] * M.shape[2], chunk_elements):
        gathered = M.index_select(0, idx_kj[part])  # [c, L, C]
        message = torch.bmm(Y[part].unsqueeze(1), gathered).squeeze(1)  # [c, C]
        out.index_add_(0, idx_ji[part], message)
    return out


def _outer(Y: Tensor, G: Tensor, idx_kj: Tensor, idx_ji: Tensor, chunk_elements: int) -> Tensor:
    out = G.new_zeros((G.shape[0], Y.shape[1], G.shape[1]))  # [E, L, C]
    for part in _chunks(Y.shape[0], Y.shape[1] * G.shape[1], chunk_elements):
        gathered = G.index_select(0, idx_ji[part])  # [c, C]
        out.index_add_(0, idx_kj[part], Y[part].unsqueeze(-1) * gathered.unsqueeze(1))  # [c, L, C]
    return out


def _dot(M: Tensor, G: Tensor, idx_kj: Tensor, idx_ji: Tensor, chunk_elements: int) -> Tensor:
    T = idx_kj.shape[0]
    out = M.new_empty((T, M.shape[1]))  # [T, L]
    for part in _chunks(T, M.shape[1] * M.shape[2], chunk_elements):
        gathered_m = M.index_select(0, idx_kj[part])  # [c, L, C]
        gathered_g = G.index_select(0, idx_ji[part])  # [c, C]
        out[part] = torch.bmm(gathered_m, gathered_g.unsqueeze(-1)).squeeze(-1)  # [c, L]
    return out


class _Contract(Function):
    @staticmethod
    def forward(ctx, Y, M, idx_kj, idx_ji, chunk_elements):
        ctx.save_for_backward(Y, M, idx_kj, idx_ji)
        ctx.chunk_elements = chunk_elements
        return _contract(Y, M, idx_kj, idx_ji, chunk_elements)

    @staticmethod
    def backward(ctx, grad):
        Y, M, idx_kj, idx_ji = ctx.saved_tensors
        c = ctx.chunk_elements
        grad_Y = _Dot.apply(M, grad, idx_kj, idx_ji, c) if ctx.needs_input_grad[0] else None
        grad_M = _Outer.apply(Y, grad, idx_kj, idx_ji, c) if ctx.needs_input_grad[1] else None
        return grad_Y, grad_M, None, None, None


class _Outer(Function):
    @staticmethod
    def forward(ctx, Y, G, idx_kj, idx_ji, chunk_elements):
        ctx.save_for_backward(Y, G, idx_kj, idx_ji)
        ctx.chunk_elements = chunk_elements
        return _outer(Y, G, idx_kj, idx_ji, chunk_elements)

    @staticmethod
    def backward(ctx, grad):
        Y, G, idx_kj, idx_ji = ctx.saved_tensors
        c = ctx.chunk_elements
        grad_Y = _Dot.apply(grad, G, idx_kj, idx_ji, c) if ctx.needs_input_grad[0] else None
        grad_G = _Contract.apply(Y, grad, idx_kj, idx_ji, c) if ctx.needs_input_grad[1] else None
        return grad_Y, grad_G, None, None, None


class _Dot(Function):
    @staticmethod
    def forward(ctx, M, G, idx_kj, idx_ji, chunk_elements):
        ctx.save_for_backward(M, G, idx_kj, idx_ji)
        ctx.chunk_elements = chunk_elements
        return _dot(M, G, idx_kj, idx_ji, chunk_elements)

    @staticmethod
    def backward(ctx, grad):
        M, G, idx_kj, idx_ji = ctx.saved_tensors
        c = ctx.chunk_elements
        grad_M = _Outer.apply(grad, G, idx_kj, idx_ji, c) if ctx.needs_input_grad[0] else None
        grad_G = _Contract.apply(grad, M, idx_kj, idx_ji, c) if ctx.needs_input_grad[1] else None
        return grad_M, grad_G, None, None, None


def _check(name: str, first: Tensor, idx_kj: Tensor, idx_ji: Tensor) -> None:
    if idx_kj.shape != idx_ji.shape or idx_kj.dim() != 1:
        raise ValueError(f"{name}: idx_kj and idx_ji must be [T] of equal length, got "
                         f"{tuple(idx_kj.shape)} and {tuple(idx_ji.shape)}")
    if first.shape[0] != idx_kj.shape[0]:
        raise ValueError(f"{name}: Y must have one row per triplet ({idx_kj.shape[0]}), got {tuple(first.shape)}")


def triplet_contract(Y: Tensor, M: Tensor, idx_kj: Tensor, idx_ji: Tensor,
                     chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    r""":math:`a_{e,c} = \sum_{t:\,ji(t)=e} \sum_l Y_{t,l} M_{kj(t),l,c}`.

    Shapes: ``Y`` [T, L], ``M`` [E, L, C], ``idx_kj``/``idx_ji`` [T] → [E, C].
    """
    _check("triplet_contract", Y, idx_kj, idx_ji)
    if M.dim() != 3 or M.shape[1] != Y.shape[1]:
        raise ValueError(f"triplet_contract: M must be [E, L={Y.shape[1]}, C], got {tuple(M.shape)}")
    return _Contract.apply(Y, M, idx_kj, idx_ji, chunk_elements)


def triplet_outer(Y: Tensor, G: Tensor, idx_kj: Tensor, idx_ji: Tensor,
                  chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    r""":math:`H_{e,l,c} = \sum_{t:\,kj(t)=e} Y_{t,l} G_{ji(t),c}`.

    Shapes: ``Y`` [T, L], ``G`` [E, C], ``idx_kj``/``idx_ji`` [T] → [E, L, C].
    """
    _check("triplet_outer", Y, idx_kj, idx_ji)
    return _Outer.apply(Y, G, idx_kj, idx_ji, chunk_elements)


def triplet_dot(M: Tensor, G: Tensor, idx_kj: Tensor, idx_ji: Tensor,
                chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    r""":math:`Z_{t,l} = \sum_c M_{kj(t),l,c} G_{ji(t),c}`.

    Shapes: ``M`` [E, L, C], ``G`` [E, C], ``idx_kj``/``idx_ji`` [T] → [T, L].
    """
    if idx_kj.shape != idx_ji.shape or idx_kj.dim() != 1:
        raise ValueError(f"triplet_dot: idx_kj and idx_ji must be [T] of equal length, got "
                         f"{tuple(idx_kj.shape)} and {tuple(idx_ji.shape)}")
    return _Dot.apply(M, G, idx_kj, idx_ji, chunk_elements)
