r"""Building blocks of PhysNet (Unke & Meuwly, J. Chem. Theory Comput. 15, 3678 (2019)).

Equations follow the paper and the authors' TensorFlow code (MMunibas/PhysNet,
``neural_network/layers``), which agree on all of them:

- :class:`PhysNetRBF`: exponential radial basis with softplus-parametrised,
  trainable centres and widths, times the polynomial cutoff (paper eq. 7-8);
- :class:`PreActivationResidual`: pre-activation residual layer (eq. 9);
- :class:`PhysNetInteractionLayer`: the interaction with the zero-initialised
  distance gate and the learned gate u on the old features (eq. 10-12);
- :class:`PhysNetInteractionBlock`: the interaction layer followed by the
  atomic residual layers;
- :class:`PhysNetOutputBlock`: residual layers then a zero-initialised dense
  layer to the atomic energy and charge of one module;
- :func:`nonhierarchicality_penalty`: the optional loss term of eq. 18.

σ is the shifted softplus :math:`\ln(1 + e^x) - \ln 2` throughout (:class:`PhysNetShiftedSoftplus`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from equinnp.nn.cutoff import PolynomialCutoff

__all__ = [
    "PhysNetShiftedSoftplus",
    "PhysNetRBF",
    "PreActivationResidual",
    "PhysNetInteractionLayer",
    "PhysNetInteractionBlock",
    "PhysNetOutputBlock",
    "nonhierarchicality_penalty",
    "softplus_inverse",
]


def softplus_inverse(y: Tensor) -> Tensor:
    r""":math:`\mathrm{softplus}^{-1}(y) = \ln(e^y - 1) = y + \ln(1 - e^{-y})` for :math:`y > 0` (stable form)."""
    return y + torch.log(-torch.expm1(-y))


class PhysNetShiftedSoftplus(nn.Module):
    r""":math:`\sigma(x) = \ln(1 + e^x) - \ln 2`, evaluated as :math:`\ln(1 + e^x)` up to x = 40.

    ``torch.nn.functional.softplus`` returns x itself above its default
    threshold of 20, an error of :math:`\ln(1 + e^{-20}) \approx 2\times10^{-9}`
    that float64 shows; TensorFlow (the PhysNet code) switches to x only near
    x = 34 in float64. At 40 the switch changes the value by :math:`4\times10^{-18}`.
    """

    shift = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(x, beta=1.0, threshold=40.0) - self.shift


def _init_dense(linear: nn.Linear) -> None:
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class PhysNetRBF(nn.Module):
    r"""Exponential radial basis times PhysNet's cutoff (paper eq. 7-8).

    .. math::
        g_k(r) = \phi(r)\, \exp\!\big(-\beta_k (e^{-r} - \mu_k)^2\big), \qquad
        \phi(r) = 1 - 6x^5 + 15x^4 - 10x^3,\ x = r / r_c < 1

    with :math:`\mu_k = \mathrm{softplus}(\tilde\mu_k)` and
    :math:`\beta_k = \mathrm{softplus}(\tilde\beta_k)` trainable. Initial values
    (TF code): :math:`\mu_k` evenly spaced from 1 down to :math:`e^{-r_c}`,
    :math:`\beta_k = \big(2 (1 - e^{-r_c}) / K\big)^{-2}`. φ is
    :class:`equinnp.nn.PolynomialCutoff` with p = 3 (the same polynomial).

    Shapes: ``r`` [E] → [E, K].
    """

    def __init__(self, num_rbf: int, cutoff: float):
        super().__init__()
        if num_rbf < 1:
            raise ValueError(f"PhysNetRBF needs num_rbf >= 1, got {num_rbf}")
        self.num_rbf = int(num_rbf)
        self.cutoff = float(cutoff)
        self.cutoff_fn = PolynomialCutoff(cutoff, p=3)
        self.raw_centers = nn.Parameter(torch.empty(num_rbf))
        self.raw_widths = nn.Parameter(torch.empty(num_rbf))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # computed in float64, then rounded to the parameters' dtype
        tail = math.exp(-self.cutoff)
        centers = torch.linspace(1.0, tail, self.num_rbf, dtype=torch.float64)
        widths = torch.full((self.num_rbf,), (2.0 * (1.0 - tail) / self.num_rbf) ** -2, dtype=torch.float64)
        with torch.no_grad():
            self.raw_centers.copy_(softplus_inverse(centers))
            self.raw_widths.copy_(softplus_inverse(widths))

    @property
    def centers(self) -> Tensor:
        """:math:`\\mu_k` [K]."""
        return nn.functional.softplus(self.raw_centers)

    @property
    def widths(self) -> Tensor:
        """:math:`\\beta_k` [K]."""
        return nn.functional.softplus(self.raw_widths)

    def forward(self, r: Tensor) -> Tensor:
        expansion = torch.exp(-self.widths * (torch.exp(-r).unsqueeze(-1) - self.centers) ** 2)  # [E, K]
        return self.cutoff_fn(r).unsqueeze(-1) * expansion  # [E, K]

    def extra_repr(self) -> str:
        return f"num_rbf={self.num_rbf}, cutoff={self.cutoff:g}"


class PreActivationResidual(nn.Module):
    r"""Pre-activation residual layer (paper eq. 9; TF ``ResidualLayer``).

    .. math:: y = x + W_2\, \sigma(W_1 \sigma(x) + b_1) + b_2

    Shapes: ``x`` [N, F] → [N, F].
    """

    def __init__(self, features: int):
        super().__init__()
        self.act = PhysNetShiftedSoftplus()
        self.dense = nn.Linear(features, features)
        self.residual = nn.Linear(features, features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_dense(self.dense)
        _init_dense(self.residual)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(self.act(self.dense(self.act(x))))


def _residual_stack(features: int, count: int) -> nn.ModuleList:
    return nn.ModuleList(PreActivationResidual(features) for _ in range(count))


class PhysNetInteractionLayer(MessagePassing):
    r"""PhysNet's interaction layer (paper eq. 10-12; TF ``InteractionLayer``).

    .. math::
        \tilde x = \sigma(x), \qquad
        v_i = \sigma(W_I \tilde x_i + b_I)
              + \sum_{j \in \mathcal N(i)} \big(G\, g(r_{ij})\big) \circ \sigma(W_J \tilde x_j + b_J)

    then :math:`N_\text{res}^\text{int}` residual layers on v and

    .. math:: x_i \leftarrow u \circ x_i + W \sigma(v_i) + b

    with :math:`G \in \mathbb R^{F \times K}` (no bias) **initialised to zero**, so
    that at initialisation no neighbour contributes, and :math:`u` initialised to ones.

    Shapes: ``x`` [N, F], ``edge_index`` [2, E] (j → i), ``rbf`` [E, K] → [N, F].
    """

    def __init__(self, features: int, num_rbf: int, num_residual: int):
        super().__init__(aggr="add")
        self.act = PhysNetShiftedSoftplus()
        self.distance_gate = nn.Linear(num_rbf, features, bias=False)
        self.dense_i = nn.Linear(features, features)
        self.dense_j = nn.Linear(features, features)
        self.residuals = _residual_stack(features, num_residual)
        self.dense = nn.Linear(features, features)
        self.u = nn.Parameter(torch.empty(features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.distance_gate.weight)
        for linear in (self.dense_i, self.dense_j, self.dense):
            _init_dense(linear)
        for layer in self.residuals:
            layer.reset_parameters()
        nn.init.ones_(self.u)

    def forward(self, x: Tensor, edge_index: Tensor, rbf: Tensor) -> Tensor:
        xa = self.act(x)  # [N, F]
        gate = self.distance_gate(rbf)  # [E, F]
        v = self.act(self.dense_i(xa)) + self.propagate(edge_index, h=self.act(self.dense_j(xa)), gate=gate)  # [N, F]
        for layer in self.residuals:
            v = layer(v)
        return self.u * x + self.dense(self.act(v))  # [N, F]

    def message(self, h_j: Tensor, gate: Tensor) -> Tensor:
        return gate * h_j  # [E, F]


class PhysNetInteractionBlock(nn.Module):
    r"""Interaction layer followed by :math:`N_\text{res}^\text{atomic}` residual layers on x (TF ``InteractionBlock``).

    Shapes: ``x`` [N, F], ``edge_index`` [2, E], ``rbf`` [E, K] → [N, F].
    """

    def __init__(self, features: int, num_rbf: int, num_residual_interaction: int, num_residual_atomic: int):
        super().__init__()
        self.interaction = PhysNetInteractionLayer(features, num_rbf, num_residual_interaction)
        self.residuals = _residual_stack(features, num_residual_atomic)

    def reset_parameters(self) -> None:
        self.interaction.reset_parameters()
        for layer in self.residuals:
            layer.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, rbf: Tensor) -> Tensor:
        x = self.interaction(x, edge_index, rbf)
        for layer in self.residuals:
            x = layer(x)
        return x


class PhysNetOutputBlock(nn.Module):
    r"""Atomic energy and charge of one module (TF ``OutputBlock``).

    .. math:: (E_i^m, q_i^m) = W_\text{out}\, \sigma\big(\mathrm{Res}^{N_\text{res}^\text{out}}(x_i)\big)

    with :math:`W_\text{out} \in \mathbb R^{2 \times F}` (no bias) initialised to zero.

    Shapes: ``x`` [N, F] → [N, 2] (column 0 energy, column 1 charge).
    """

    def __init__(self, features: int, num_residual: int):
        super().__init__()
        self.act = PhysNetShiftedSoftplus()
        self.residuals = _residual_stack(features, num_residual)
        self.dense = nn.Linear(features, 2, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.residuals:
            layer.reset_parameters()
        nn.init.zeros_(self.dense.weight)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.residuals:
            x = layer(x)
        return self.dense(self.act(x))  # [N, 2]


def nonhierarchicality_penalty(module_outputs: Sequence[Tensor], eps: float = 1e-7) -> Tensor:
    r"""PhysNet's non-hierarchicality penalty (paper eq. 18; TF ``NeuralNetwork``).

    .. math:: L_\text{nh} = \sum_{m=2}^{M} \Big\langle \frac{(y^m)^2}{(y^m)^2 + (y^{m-1})^2 + \epsilon} \Big\rangle

    with :math:`y^m` [N, 2] the output of module m (atomic energy and charge),
    the mean :math:`\langle\cdot\rangle` over all atoms of the batch and both
    columns, :math:`\epsilon = 10^{-7}`. It is small when each module's output
    is smaller than the previous one's. A single module gives 0.

    Shapes: M tensors [N, 2] → scalar.
    """
    if len(module_outputs) == 0:
        raise ValueError("nonhierarchicality_penalty needs at least one module output")
    penalty = module_outputs[0].new_zeros(())
    for previous, current in zip(module_outputs[:-1], module_outputs[1:]):
        current2, previous2 = current.square(), previous.square()
        penalty = penalty + (current2 / (current2 + previous2 + eps)).mean()
    return penalty
