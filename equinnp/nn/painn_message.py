r"""The PaiNN message (paper eq. 7-8) summed per atom, as one autograd function with a hand-written backward.

With :math:`x_{ij} = \phi(q)_j \circ W_{ij}` split into :math:`[x^s, x^{vs}, x^{vv}]`,

.. math::
    \Delta q_i = \sum_j x^s_{ij}, \qquad
    \Delta \vec\mu_i = \sum_j x^{vv}_{ij} \circ \vec\mu_j + x^{vs}_{ij}\, \hat r_{ij}

and the backward, for upstream gradients :math:`g^q_i` [F] and :math:`g^\mu_i` [3, F]
(:math:`g_{ij} = g^\mu_i`, summed over the Cartesian axis a or the channels f):

.. math::
    \partial x^s_{ij} = g^q_i, \quad
    \partial x^{vs}_{ij} = \textstyle\sum_a g_{ij,a}\, \hat r_{ij,a}, \quad
    \partial x^{vv}_{ij} = \textstyle\sum_a g_{ij,a} \circ \mu_{j,a}, \quad
    \partial \vec\mu_j \mathrel{+}= g_{ij} \circ x^{vv}_{ij}, \quad
    \partial \hat r_{ij,a} = \textstyle\sum_f g_{ij,af}\, x^{vs}_{ij,f}

Autograd through the composite (:func:`painn_message_sum_reference`, the
definition) makes more passes over the [E, 3, F] tensors, which dominate PaiNN's
time on CPU: an outer product, a scaling by ``addcmul``'s unit factor, the
concatenation of the split's gradients, a 3-D gather. Backward here reads each
[E, 3, F] tensor once or twice. Where a graph of the backward is wanted
(``create_graph``: force training, Hessians) the backward is computed from the
saved inputs by differentiable operations only, so higher derivatives are exact;
its operations are out-of-place, so ``vmap`` batches it (vectorized Hessians).

``mu`` None stands for vectors that are all zero (PaiNN's first layer): the
:math:`x^{vv}` term and its gather are skipped.

Shapes: ``context`` [N, 3F], ``filters`` [E, 3F], ``mu`` [N, 3, F] or None,
``edge_dir`` [E, 3], ``j``/``i`` [E] (neighbor, center) → ``(dq [N, F], dmu [N, 3, F])``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from equinnp.nn.scatter import scatter_sum

__all__ = ["painn_message_sum", "painn_message_sum_reference"]


def _gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along dim 0, gathered as rows of a 2-D view (faster than a 3-D ``index_select`` on CPU)."""
    return x.reshape(x.shape[0], -1).index_select(0, index).view((index.shape[0],) + tuple(x.shape[1:]))


def _batched(x: Tensor) -> bool:
    """Whether ``x`` is a ``vmap`` batched tensor (``autograd.grad(is_grads_batched=True)``: Hessian rows)."""
    functorch = torch._C._functorch
    return functorch.is_batchedtensor(x) or functorch.is_legacy_batchedtensor(x)


def _sum_rows(x: Tensor, index: Tensor, num_rows: int) -> Tensor:
    """``out[index[e]] += x[e]``, out of place (``vmap`` batches it)."""
    flat = x.reshape(x.shape[0], -1)
    return flat.new_zeros(num_rows, flat.shape[1]).index_add(0, index, flat).view((num_rows,) + tuple(x.shape[1:]))


def painn_message_sum_reference(context: Tensor, filters: Tensor, mu: Optional[Tensor], edge_dir: Tensor, j: Tensor,
                                i: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """The message and its sum by ordinary operations (autograd differentiates them): the definition."""
    F = filters.shape[-1] // 3
    xs, xd, xm = (context.index_select(0, j) * filters).split(F, dim=-1)  # 3 x [E, F]
    dmu = xd.unsqueeze(1) * edge_dir.unsqueeze(-1)  # [E, 3, F]
    if mu is not None:
        dmu = xm.unsqueeze(1) * _gather_rows(mu, j) + dmu
    return scatter_sum(xs, i, num_nodes), scatter_sum(dmu, i, num_nodes)


def _forward_parts(context, filters, mu, j):
    context_j = context.index_select(0, j)  # [E, 3F]
    x = context_j * filters  # [E, 3F]
    return context_j, x, None if mu is None else _gather_rows(mu, j)  # ..., [E, 3, F]


class _PaiNNMessageSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, context, filters, mu, edge_dir, j, i, num_nodes):
        F = filters.shape[-1] // 3
        context_j, x, mu_j = _forward_parts(context, filters, mu, j)
        xs, xd, xm = x.split(F, dim=-1)
        if mu is None:
            dmu = edge_dir.unsqueeze(-1) * xd.unsqueeze(1)  # [E, 3, F]
        else:
            dmu = (mu_j * xm.unsqueeze(1)).addcmul_(edge_dir.unsqueeze(-1), xd.unsqueeze(1))  # [E, 3, F]
        dq = xs.new_zeros(num_nodes, F).index_add_(0, i, xs)  # [N, F]
        dmu_sum = dmu.new_zeros(num_nodes, 3, F).index_add_(0, i, dmu)  # [N, 3, F]
        ctx.save_for_backward(context, filters, mu, edge_dir, j, i, context_j, x, mu_j)
        ctx.num_nodes = num_nodes
        return dq, dmu_sum

    @staticmethod
    def backward(ctx, g_q, g_mu):
        context, filters, mu, edge_dir, j, i, context_j, x, mu_j = ctx.saved_tensors
        N, F = ctx.num_nodes, filters.shape[-1] // 3
        if torch.is_grad_enabled():  # create_graph: only differentiable functions of the inputs
            context_j, x, mu_j = _forward_parts(context, filters, mu, j)
        xs, xd, xm = x.split(F, dim=-1)  # 3 x [E, F]
        g = _gather_rows(g_mu, i)  # [E, 3, F]
        g_edge_dir = torch.bmm(g, xd.unsqueeze(-1)).squeeze(-1) if ctx.needs_input_grad[3] else None  # [E, 3]
        if torch.is_grad_enabled() or _batched(g):  # out of place: differentiable, and vmap batches it
            g_xd = g[:, 0] * edge_dir[:, 0:1]
            g_xd = torch.addcmul(torch.addcmul(g_xd, g[:, 1], edge_dir[:, 1:2]), g[:, 2], edge_dir[:, 2:3])  # [E, F]
            g_xm = torch.zeros_like(g_xd) if mu is None else (g * mu_j).sum(dim=1)  # [E, F]
            g_x = torch.cat([g_q.index_select(0, i), g_xd, g_xm], dim=-1)  # [E, 3F]
        else:  # the three parts written in place into one buffer (no concatenation pass)
            g_x = g.new_empty(g.shape[0], 3 * F)  # [E, 3F]
            g_xs, g_xd, g_xm = g_x.split(F, dim=-1)
            g_xs.copy_(g_q.index_select(0, i))
            torch.mul(g[:, 0], edge_dir[:, 0:1], out=g_xd)
            g_xd.addcmul_(g[:, 1], edge_dir[:, 1:2]).addcmul_(g[:, 2], edge_dir[:, 2:3])
            if mu is None:
                g_xm.zero_()
            else:
                torch.sum(g * mu_j, dim=1, out=g_xm)
        g_mu = _sum_rows(g * xm.unsqueeze(1), j, N) if mu is not None and ctx.needs_input_grad[2] else None  # [N, 3, F]
        g_filters = g_x * context_j if ctx.needs_input_grad[1] else None  # [E, 3F]
        g_context = _sum_rows(g_x * filters, j, N) if ctx.needs_input_grad[0] else None  # [N, 3F]
        return g_context, g_filters, g_mu, g_edge_dir, None, None, None


def painn_message_sum(context: Tensor, filters: Tensor, mu: Optional[Tensor], edge_dir: Tensor, j: Tensor, i: Tensor,
                      num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``(dq [N, F], dmu [N, 3, F])``: the same numbers as :func:`painn_message_sum_reference`, faster backward."""
    return _PaiNNMessageSum.apply(context, filters, mu, edge_dir, j, i, num_nodes)
