r"""The blocks of a SAKE layer (Wang & Chodera, ICLR 2023, "Spatial Attention Kinetic
Networks with E(n)-Equivariance"), written on a sparse edge list.

Notation: edge ``e = (j → i)`` with ``edge_index[0] = j``, ``edge_index[1] = i``;
:math:`r_{ij} = x_j - x_i (+ \text{shift})`; F node features, H attention heads,
C = F·H attended edge channels, K radial functions.

Each equation is its own function or module so that it can be tested alone
(``tests/test_sake.py``); :class:`SAKELayer` chains them. Constants are those of
the authors' JAX code (``sake`` 0.0.2: ``sake/layers.py``, ``sake/functional.py``,
``sake/utils.py``).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from equinnp.nn.scatter import scatter_sum

__all__ = [
    "DISTANCE_EPSILON",
    "DIRECTION_EPSILON",
    "CosinePairWeight",
    "sake_distance",
    "sake_direction",
    "ExpNormalSmearing",
    "ContinuousFilterEdge",
    "SemanticAttention",
    "combined_attention",
    "smooth_neighbor_count",
    "spatial_combinations",
    "SAKELayer",
    "lecun_normal_",
]

DISTANCE_EPSILON = 1e-5  # Å², under the square root of the distance (reference: functional.EPSILON)
DIRECTION_EPSILON = 1e-5  # Å, added to the distance before dividing the pair vector by it


def lecun_normal_(weight: Tensor) -> Tensor:
    """flax's default kernel initialiser: truncated normal (±2σ), variance 1/fan_in. ``weight`` [out, in]."""
    fan_in = weight.shape[1]
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # stddev of a unit normal truncated at ±2
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


class CosinePairWeight(nn.Module):
    r"""Pair weight: Behler's cosine cutoff of the input distance, written to stay accurate near :math:`r_c`.

    .. math:: w(r) = \tfrac12\left(\cos\frac{\pi r}{r_c} + 1\right)
              = \sin^2\!\left(\frac{\pi}{2}\,\frac{r_c - r}{r_c}\right), \quad r < r_c;\qquad 0 \text{ beyond}

    The same function as :class:`equinnp.nn.CosineCutoff`; in the second form float32 keeps
    its relative precision up to :math:`r_c` (``1 + cos`` rounds to 0 within ~3e-4 Å of 4 Å),
    which matters here because SAKE renormalises by these weights.

    Shapes: ``r`` [E] → [E].
    """

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, r: Tensor) -> Tensor:
        inside = (self.cutoff - r).clamp(min=0.0)  # [E]
        return torch.sin(inside * (0.5 * math.pi / self.cutoff)) ** 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cutoff={self.cutoff:g})"


def sake_distance(vec: Tensor) -> Tensor:
    r""":math:`d_{ij} = \sqrt{\max(\lvert r_{ij}\rvert^2, 0) + 10^{-5}}` (Å). Shapes: [E, 3] → [E, 1]."""
    return torch.sqrt((vec**2).sum(-1, keepdim=True).clamp(min=0.0) + DISTANCE_EPSILON)


def sake_direction(vec: Tensor, distance: Tensor) -> Tensor:
    r""":math:`\hat r_{ij} = r_{ij} / (d_{ij} + 10^{-5})`. Shapes: ``vec`` [E, 3], ``distance`` [E, 1] → [E, 3]."""
    return vec / (distance + DIRECTION_EPSILON)


class ExpNormalSmearing(nn.Module):
    r"""Exponential-normal radial functions with trainable centres and widths, no envelope.

    .. math:: K_k(d) = \exp\!\left(-\beta_k\left(e^{-\alpha (d - r_\text{lo})} - \mu_k\right)^2\right),
        \qquad \alpha = \frac{5}{r_\text{hi} - r_\text{lo}}

    initialised as PhysNet: :math:`\mu_k` evenly spaced from :math:`e^{-(r_\text{hi} - r_\text{lo})}`
    to 1, :math:`\beta_k = \left(\tfrac{2}{K}(1 - e^{-(r_\text{hi} - r_\text{lo})})\right)^{-2}`.
    :math:`r_\text{hi}` only sets the spacing; unlike :class:`equinnp.nn.expnorm_rbf.ExpNormalRBF`
    no cutoff multiplies the functions (the reference's ``ExpNormalSmearing``).

    Shapes: ``d`` [..., 1] → [..., K].
    """

    def __init__(self, num_rbf: int = 50, upper: float = 5.0, lower: float = 0.0):
        super().__init__()
        if num_rbf < 1:
            raise ValueError(f"ExpNormalSmearing needs num_rbf >= 1, got {num_rbf}")
        if not upper > lower:
            raise ValueError(f"ExpNormalSmearing needs upper > lower, got upper={upper}, lower={lower}")
        self.num_rbf = int(num_rbf)
        self.upper, self.lower = float(upper), float(lower)
        self.alpha = 5.0 / (self.upper - self.lower)
        self.means = nn.Parameter(torch.empty(self.num_rbf))
        self.betas = nn.Parameter(torch.empty(self.num_rbf))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        start = math.exp(-(self.upper - self.lower))
        with torch.no_grad():
            self.means.copy_(torch.linspace(start, 1.0, self.num_rbf, dtype=torch.float64))
            self.betas.fill_((2.0 / self.num_rbf * (1.0 - start)) ** -2)

    def forward(self, d: Tensor) -> Tensor:
        return torch.exp(-self.betas * (torch.exp(-self.alpha * (d - self.lower)) - self.means) ** 2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_rbf={self.num_rbf}, upper={self.upper:g}, lower={self.lower:g})"


class ContinuousFilterEdge(nn.Module):
    r"""Edge model: a continuous filter with concatenation (reference:
    ``ContinuousFilterConvolutionWithConcatenation``).

    .. math::
        c_{ij} = [h_j \,\|\, h_i], \qquad
        e_{ij} = \mathrm{MLP}_\text{out}\big([\,c_{ij} \,\|\, K(d_{ij}) \odot (W_\text{in} c_{ij} + b_\text{in})
                 \,\|\, d_{ij}\,]\big)

    with :math:`\mathrm{MLP}_\text{out} = \text{Linear}(2F + K + 1, F) \to \sigma \to \text{Linear}(F, F)`.

    Shapes: ``h_j``, ``h_i`` [E, F], ``distance`` [E, 1] → [E, F].
    """

    def __init__(self, hidden_channels: int, num_rbf: int = 50, rbf_upper: float = 5.0):
        super().__init__()
        self.kernel = ExpNormalSmearing(num_rbf, rbf_upper)
        self.mlp_in = nn.Linear(2 * hidden_channels, num_rbf)
        self.mlp_out = nn.Sequential(
            nn.Linear(2 * hidden_channels + num_rbf + 1, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, hidden_channels),
        )

    def forward(self, h_j: Tensor, h_i: Tensor, distance: Tensor) -> Tensor:
        pair = torch.cat([h_j, h_i], dim=-1)  # [E, 2F]
        filtered = self.kernel(distance) * self.mlp_in(pair)  # [E, K]
        return self.mlp_out(torch.cat([pair, filtered, distance], dim=-1))  # [E, F]


class SemanticAttention(nn.Module):
    r"""Semantic attention logits :math:`s_{ij} = \mathrm{CELU}_{\alpha=2}(W_s e_{ij} + b_s)`, one per head.

    The softmax over neighbours is taken in :func:`combined_attention`. Shapes: [E, F] → [E, H].
    """

    def __init__(self, hidden_channels: int, num_heads: int):
        super().__init__()
        self.linear = nn.Linear(hidden_channels, num_heads)

    def forward(self, edge: Tensor) -> Tensor:
        return nn.functional.celu(self.linear(edge), alpha=2.0)


def combined_attention(logits: Tensor, weight: Tensor, center: Tensor, num_nodes: int) -> Tensor:
    r"""Semantic softmax times the pair weight, renormalised, times the pair weight again.

    .. math::
        a_{ij} = \operatorname{softmax}_j(s_{ij}), \qquad
        c_{ij} = \frac{w_{ij}\, a_{ij}}{\sum_k w_{ik}\, a_{ik}}, \qquad
        \omega_{ij} = w_{ij}\, c_{ij}

    :math:`c` is the reference's combined attention with its optional cutoff
    :math:`w`; the factor :math:`w_{ij}` on top makes the weights vanish when an
    atom's last neighbour leaves the cutoff (:math:`c = 1` for a lone neighbour
    however far). With :math:`w = 1` (all pairs) :math:`\omega = c = a`. A center
    whose weights are all 0 gets 0.

    Shapes: ``logits`` [E, H], ``weight`` [E, 1], ``center`` [E] → [E, H].
    """
    semantic = softmax(logits, center, num_nodes=num_nodes, dim=0)  # [E, H]
    weighted = weight * semantic  # [E, H]
    total = scatter_sum(weighted, center, num_nodes)[center]  # [E, H]
    return weight * weighted / total.clamp(min=torch.finfo(total.dtype).tiny)


def smooth_neighbor_count(weight: Tensor, center: Tensor, num_nodes: int) -> Tensor:
    r""":math:`n_i = 1 + \sum_j w_{ij}`: the atom itself and its neighbours, each by its pair weight.

    The reference averages over all n atoms of a molecule, itself included
    (whose term is 0); with :math:`w = 1` for every pair this is n. Shapes:
    ``weight`` [E, 1], ``center`` [E] → [N, 1].
    """
    return 1.0 + scatter_sum(weight, center, num_nodes)  # [N, 1]


def spatial_combinations(attended: Tensor, direction: Tensor, mixing: nn.Linear) -> Tensor:
    r"""Spatial attention terms :math:`k_{ij} \otimes \hat r_{ij}`, with :math:`k_{ij} = \tanh(W_x \hat e_{ij})` (no bias).

    Shapes: ``attended`` [E, C], ``direction`` [E, 3] → [E, C, 3].
    """
    return torch.tanh(mixing(attended)).unsqueeze(-1) * direction.unsqueeze(1)  # [E, C, 3]


class SAKELayer(MessagePassing):
    r"""One SAKE layer: edge model, semantic × pair-weight attention, spatial attention,
    node update and (optionally) the velocity and position update.

    .. math::
        \hat e_{ij} &= e_{ij} \otimes \omega_{ij} \in \mathbb{R}^{F \times H}
            \quad\text{(flattened as } f H + h) \\
        s_i &= \frac{1}{n_i} \sum_j k_{ij} \otimes \hat r_{ij}, \qquad
        h^s_i = \mathrm{MLP}_\text{post}\Big(\sum_{xyz} s_i^2\Big) \\
        h_i &\leftarrow h_i + \mathrm{MLP}_\text{node}\big([\,h_i \,\|\, \textstyle\sum_j \hat e_{ij} \,\|\, h^s_i\,]\big) \\
        \Delta v_i &= W_v\, s_i, \qquad
        v_i \leftarrow 2\,\mathrm{sigmoid}(\mathrm{MLP}_v(h_i))\, v_i + \Delta v_i, \qquad
        x_i \leftarrow x_i + v_i

    where :math:`\omega` is :func:`combined_attention` and :math:`n_i` is
    :func:`smooth_neighbor_count` of the pair weights :math:`w_{ij}` (fixed for
    all layers: the cutoff function of the input distances). :math:`\Delta v_i`
    equals the reference's mean over j of :math:`W_v (k_{ij} \otimes \hat r_{ij})`
    since :math:`W_v` is linear. ``MLP_post`` and ``MLP_node`` end with an
    activation; ``MLP_v`` is Linear(F, F) → σ → Linear(F, 1, no bias). The first
    layer has no incoming velocity (``has_velocity_gate=False``: v = Δv).

    Shapes: ``h`` [N, F], ``vec`` [E, 3] (pair vectors of the current positions),
    ``weight`` [E, 1], ``count`` [N, 1], ``v`` [N, 3] or None →
    ``(h [N, F], delta_v [N, 3] or None)``; the position update is applied by
    the caller (:meth:`update_velocity`).
    """

    def __init__(self, hidden_channels: int, num_heads: int = 4, num_rbf: int = 50, rbf_upper: float = 5.0,
                 update_positions: bool = True, has_velocity_gate: bool = True):
        super().__init__(aggr="add", node_dim=0)
        F, H = hidden_channels, num_heads
        C = F * H
        self.hidden_channels, self.num_heads = F, H
        self.update_positions = bool(update_positions)
        self.edge_model = ContinuousFilterEdge(F, num_rbf, rbf_upper)
        self.semantic_attention = SemanticAttention(F, H)
        self.x_mixing = nn.Linear(C, C, bias=False)
        self.post_norm_mlp = nn.Sequential(nn.Linear(C, F), nn.SiLU(), nn.Linear(F, F), nn.SiLU())
        self.node_mlp = nn.Sequential(nn.Linear(F + C + F, F), nn.SiLU(), nn.Linear(F, F), nn.SiLU())
        if self.update_positions:
            self.v_mixing = nn.Linear(C, 1, bias=False)
            if has_velocity_gate:
                self.velocity_mlp = nn.Sequential(nn.Linear(F, F), nn.SiLU(), nn.Linear(F, 1, bias=False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                lecun_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.edge_model.kernel.reset_parameters()

    def forward(self, h: Tensor, vec: Tensor, edge_index: Tensor, weight: Tensor, count: Tensor
                ) -> Tuple[Tensor, Optional[Tensor]]:
        N, F, H = h.shape[0], self.hidden_channels, self.num_heads
        j, i = edge_index[0], edge_index[1]
        distance = sake_distance(vec)  # [E, 1]
        edge = self.edge_model(h[j], h[i], distance)  # [E, F]
        attention = combined_attention(self.semantic_attention(edge), weight, i, N)  # [E, H]
        attended = (edge.unsqueeze(-1) * attention.unsqueeze(1)).reshape(-1, F * H)  # [E, C], index f*H + h
        combinations = spatial_combinations(attended, sake_direction(vec, distance), self.x_mixing)  # [E, C, 3]
        summed = self.propagate(edge_index, attended=attended, combinations=combinations.flatten(1),
                                size=(N, N))  # [N, C + 3C]
        edge_sum, spatial = summed[:, : F * H], summed[:, F * H :].reshape(N, F * H, 3)  # [N, C], [N, C, 3]
        spatial = spatial / count.unsqueeze(-1)  # [N, C, 3] mean over the smooth count
        h_spatial = self.post_norm_mlp((spatial**2).sum(-1))  # [N, F]
        h = h + self.node_mlp(torch.cat([h, edge_sum, h_spatial], dim=-1))  # [N, F]
        delta_v = self.v_mixing(spatial.transpose(1, 2)).squeeze(-1) if self.update_positions else None  # [N, 3]
        return h, delta_v

    def message(self, attended: Tensor, combinations: Tensor) -> Tensor:
        return torch.cat([attended, combinations], dim=-1)  # [E, C + 3C]

    def update_velocity(self, h: Tensor, v: Optional[Tensor], delta_v: Tensor) -> Tensor:
        r""":math:`v_i \leftarrow 2\,\mathrm{sigmoid}(\mathrm{MLP}_v(h_i))\, v_i + \Delta v_i` (v = None: Δv). Shapes: [N, F], [N, 3] → [N, 3]."""
        if v is None:
            return delta_v
        return 2.0 * torch.sigmoid(self.velocity_mlp(h)) * v + delta_v  # [N, 3]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(hidden_channels={self.hidden_channels}, num_heads={self.num_heads}, "
                f"update_positions={self.update_positions})")
