r"""Building blocks of AIMNet2 (Anstine, Zubatyuk & Isayev, Chem. Sci. 16, 10228 (2025)).

Equations follow the authors' ``aimnet`` package (0.2.6, isayevlab/aimnetcentral:
``aimnet/modules/aev.py``, ``aimnet/ops.py``, ``aimnet/models/aimnet2.py``):

- :func:`aimnet_cosine_cutoff`: the cosine envelope with aimnet's clamp;
- :func:`gaussian_shifts`: the AEV's shifts and width, rounded as aimnet stores them (float32);
- :class:`AIMNet2AEV`: the radial and vector atom-environment vectors of every pair;
- :class:`NeighborSlots`: the padded neighbour-matrix layout the convolutions sum in;
- :class:`ScalarVectorConvolution`: aimnet's ``ConvSV``, the contraction of the
  neighbours' features (or charges) with the environment vectors, giving scalar
  features and squared norms of learned combinations of vector features;
- :func:`neural_charge_equilibration`: the weighted correction of the charges to the
  total charge (aimnet's ``nse``), exact or in aimnet's form;
- :func:`aimnet_mlp`: the GELU multilayer perceptron, in aimnet's layer layout.

Edges follow equinnp's convention: ``edge_index[0] = j`` (neighbour), ``edge_index[1] = i``
(centre), ``r_ij = pos[j] - pos[i]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence, Tuple

import torch
from torch import Tensor, nn

from equinnp.nn.scatter import scatter_sum

__all__ = ["aimnet_cosine_cutoff", "gaussian_shifts", "AIMNet2AEV", "NeighborSlots", "ScalarVectorConvolution",
           "neural_charge_equilibration", "aimnet_mlp"]


def aimnet_cosine_cutoff(d: Tensor, cutoff: float) -> Tensor:
    r"""Cosine envelope :math:`f_c(d) = \tfrac12\big(\cos(\pi\,\mathrm{clamp}(d, 10^{-6}, r_c)/r_c) + 1\big)`.

    1 at d = 0, zero with its first derivative at :math:`r_c` and beyond (aimnet ``ops.cosine_cutoff``).

    Shapes: ``d`` [E] → [E].
    """
    return 0.5 * (torch.cos(d.clamp(min=1e-6, max=cutoff) * (math.pi / cutoff)) + 1.0)


def gaussian_shifts(cutoff: float, num_shifts: int, rmin: float, float32: bool = True) -> Tuple[Tensor, Tensor]:
    r"""Shifts :math:`s_g` and width :math:`\eta` of the AEV's Gaussians, as float64 tensors.

    .. math:: s_g = r_\mathrm{min} + g\,\frac{r_c - r_\mathrm{min}}{G}, \quad g = 0..G-1, \qquad
              \eta = \Big(\frac{G}{r_c - r_\mathrm{min}}\Big)^2

    (aimnet: ``linspace(rmin, rc, G + 1)[:G]``; for 0.8..5 Å and G = 16, steps of
    0.2625 Å and η = 14.51 Å⁻²). With ``float32`` they are computed and rounded in
    float32, as aimnet stores them (its frozen parameters), then widened: equal
    numbers in a float64 comparison. Without, exact float64 values.

    Shapes: → ``shifts`` [G], ``eta`` [] (float64).
    """
    dtype = torch.float32 if float32 else torch.float64
    shifts = torch.linspace(rmin, cutoff, num_shifts + 1, dtype=dtype)[:num_shifts]
    eta = torch.tensor((1.0 / ((cutoff - rmin) / num_shifts)) ** 2, dtype=dtype)
    return shifts.double(), eta.double()


class AIMNet2AEV(nn.Module):
    r"""AIMNet2's atom-environment vectors of every pair (aimnet ``AEVSV``).

    .. math::
        g^s_{ij,g} = e^{-\eta (d_{ij} - s_g)^2} f_c(d_{ij}), \qquad
        \mathbf g^v_{ij,g} = g^s_{ij,g}\, \frac{\mathbf r_{ij}}{d_{ij}}

    returned together as :math:`g_{ij} = [g^s, \mathbf g^v] \in \mathbb R^{G \times 4}`
    (component 0 radial, 1..3 the unit vector's x, y, z).

    Parameters
    ----------
    cutoff : float
        :math:`r_c` (Å; aimnet ``rc_s``: 5.0).
    num_shifts : int
        G (aimnet ``nshifts_s``: 16).
    rmin : float
        First shift (Å; 0.8).
    float32_constants : bool
        Shifts and η rounded to float32 as aimnet stores them (:func:`gaussian_shifts`).

    Shapes: ``edge_vec`` [E, 3], ``edge_length`` [E] → [E, G, 4].
    """

    def __init__(self, cutoff: float, num_shifts: int, rmin: float = 0.8, float32_constants: bool = True):
        super().__init__()
        if not 0 <= rmin < cutoff:
            raise ValueError(f"AIMNet2AEV: rmin must be in [0, cutoff={cutoff}), got {rmin}")
        self.cutoff = float(cutoff)
        self.num_shifts = int(num_shifts)
        shifts, eta = gaussian_shifts(cutoff, num_shifts, rmin, float32_constants)
        self.register_buffer("shifts", shifts)
        self.register_buffer("eta", eta)

    def forward(self, edge_vec: Tensor, edge_length: Tensor) -> Tensor:
        envelope = aimnet_cosine_cutoff(edge_length, self.cutoff)  # [E]
        radial = torch.exp(-self.eta * (edge_length.unsqueeze(-1) - self.shifts).square()) * envelope.unsqueeze(-1)  # [E, G]
        unit = edge_vec / edge_length.clamp(min=1e-12).unsqueeze(-1)  # [E, 3]
        vector = radial.unsqueeze(-1) * unit.unsqueeze(-2)  # [E, G, 3]
        return torch.cat([radial.unsqueeze(-1), vector], dim=-1)  # [E, G, 4]

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff:g}, num_shifts={self.num_shifts}"


class NeighborSlots(NamedTuple):
    """Each edge's place in a padded neighbour matrix (aimnet's ``nbmat``), shared by every convolution of a forward.

    Attributes
    ----------
    center, slot : Tensor, [E] long
        Row (the centre atom i) and column (its rank among the edges of i) of each edge.
    neighbor : Tensor, [N, M] long
        The neighbour j in each slot; ``N`` (a zero padding row) where an atom has fewer than M edges.
    num_slots : int
        M, the largest number of edges of one atom.
    """

    center: Tensor
    slot: Tensor
    neighbor: Tensor
    num_slots: int

    @classmethod
    def of(cls, edge_index: Tensor, num_atoms: int) -> "NeighborSlots":
        """Slots of ``edge_index`` [2, E] (``edge_index[1] = i``, any edge order; ranks follow it)."""
        j, i = edge_index[0], edge_index[1]
        counts = torch.bincount(i, minlength=num_atoms)  # [N]
        num_slots = int(counts.max()) if i.numel() else 0
        order = torch.argsort(i, stable=True)  # [E]
        start = torch.cumsum(counts, 0) - counts  # [N] first edge of each centre in ``order``
        slot = torch.empty_like(i)
        slot[order] = torch.arange(i.numel(), device=i.device) - start[i[order]]  # [E]
        neighbor = torch.full((num_atoms, num_slots), num_atoms, dtype=torch.long, device=i.device)
        neighbor[i, slot] = j  # [N, M]
        return cls(i, slot, neighbor, num_slots)

    def scatter(self, values: Tensor) -> Tensor:
        """Per-edge ``values`` [E, ...] into the padded layout [N, M, ...] (zeros in the empty slots)."""
        out = values.new_zeros((self.neighbor.shape[0], self.num_slots) + tuple(values.shape[1:]))
        return out.index_put((self.center, self.slot), values)

    def gather(self, x: Tensor) -> Tensor:
        """Neighbour rows of ``x`` [N, ...] in the padded layout [N, M, ...] (zeros in the empty slots)."""
        padded = torch.cat([x, x.new_zeros((1,) + tuple(x.shape[1:]))])  # [N + 1, ...]
        # index_select: its backward is an index_add (advanced indexing's sorts the indices first)
        return padded.index_select(0, self.neighbor.reshape(-1)).view(self.neighbor.shape + tuple(x.shape[1:]))  # [N, M, ...]


class ScalarVectorConvolution(nn.Module):
    r"""AIMNet2's convolution of neighbour features with the environment vectors (aimnet ``ConvSV``).

    With per-shift features (``per_shift=True``, aimnet's ``d2features``; atom
    features :math:`a_j \in \mathbb R^{A \times G}`) or per-channel values
    (``per_shift=False``; charges :math:`q_j \in \mathbb R^{A}`, the same for every shift):

    .. math::
        c_{i,agd} = \sum_{j \in \mathcal N(i)} a_{j,ag}\, g_{ij,gd}
        \quad\text{or}\quad \sum_{j} q_{j,a}\, g_{ij,gd}, \qquad d = 0..3

    .. math::
        \mathrm{out}_i = \Big[\, c_{i,ag0} \;\Big\|\; \sum_{x=1}^{3}\Big(\sum_g w_{agh}\, c_{i,agx}\Big)^2 \Big]

    flattened row-major over (a, g) then (a, h): A·G scalar and A·H vector features.
    The vector features are **squared** norms (no square root), as in aimnet.
    :math:`w \in \mathbb R^{A \times G \times H}` (``agh``) is learned.

    The sum over neighbours runs in aimnet's padded neighbour-matrix layout
    (:class:`NeighborSlots`): one batched matrix product per atom and shift over
    its M slots, instead of a per-edge product [E, A, G, 4] scattered to the atoms
    (4x the memory traffic, forward and backward). Empty slots hold zeros.

    Parameters
    ----------
    channels : int
        A (atom features: ``num_features``; charges: the number of charge channels).
    num_shifts : int
        G.
    num_combinations : int
        H (aimnet ``ncomb_v``: 12).
    per_shift : bool
        Inputs are [N, A·G] (feature-major, index a·G + g) instead of [N, A].

    Shapes: ``x`` [N, A·G] or [N, A], ``g`` [N, M, G, 4] (``NeighborSlots.scatter`` of the AEV)
    → [N, A·G + A·H].
    """

    def __init__(self, channels: int, num_shifts: int, num_combinations: int, per_shift: bool):
        super().__init__()
        self.channels = int(channels)
        self.num_shifts = int(num_shifts)
        self.num_combinations = int(num_combinations)
        self.per_shift = bool(per_shift)
        self.agh = nn.Parameter(torch.empty(self.channels, self.num_shifts, self.num_combinations))
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        return self.channels * (self.num_shifts + self.num_combinations)

    def reset_parameters(self) -> None:
        # aimnet picks maximally distinct smooth (sine/cosine) profiles over the shifts; Gaussian
        # columns normalised over the shifts to zero mean and unit variance here (initialisation only).
        with torch.no_grad():
            nn.init.normal_(self.agh)
            self.agh.sub_(self.agh.mean(dim=1, keepdim=True))
            self.agh.div_(self.agh.std(dim=1, keepdim=True).clamp(min=1e-6))

    def forward(self, x: Tensor, slots: NeighborSlots, g: Tensor) -> Tensor:
        num_atoms = x.shape[0]
        x_j = slots.gather(x)  # [N, M, A·G] or [N, M, A]
        if self.per_shift:
            c = torch.einsum("nmag,nmgd->nagd", x_j.view(num_atoms, -1, self.channels, self.num_shifts), g)  # [N, A, G, 4]
        else:
            c = torch.einsum("nma,nmgd->nagd", x_j, g)  # [N, A, G, 4]
        scalar = c[..., 0].reshape(num_atoms, -1)  # [N, A·G]
        combined = torch.einsum("agh,nagx->nahx", self.agh, c[..., 1:])  # [N, A, H, 3]
        vector = combined.square().sum(-1).reshape(num_atoms, -1)  # [N, A·H]
        return torch.cat([scalar, vector], dim=-1)  # [N, A·G + A·H]

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_shifts={self.num_shifts}, num_combinations={self.num_combinations}, "
                f"per_shift={self.per_shift}")


def neural_charge_equilibration(raw: Tensor, weights: Tensor, total: Tensor, batch: Tensor, num_graphs: int,
                                epsilon: float = 1e-6, exact: bool = True) -> Tensor:
    r"""Charges corrected to the total charge of each system, in proportion to non-negative weights.

    aimnet's ``nse`` (``exact=False``):

    .. math:: q_i = \tilde q_i + \frac{f_i}{\sum_{j \in b} f_j + \varepsilon}\Big(Q_b - \sum_{j \in b} \tilde q_j\Big)

    conserves the charge only up to :math:`\varepsilon/(\sum f + \varepsilon)` of the
    excess (1.6e-3 e for a Na⁺Cl⁻ pair of the golden file, whose f are small), and
    its ε makes the result depend on the size of a periodic supercell. ``exact=True``
    (equinnp's default) adds ε to every atom's weight instead:

    .. math:: q_i = \tilde q_i + \frac{f_i + \varepsilon}{\sum_{j \in b} (f_j + \varepsilon)}\Big(Q_b - \sum_{j \in b} \tilde q_j\Big)

    The shares sum to one, so :math:`\sum_i q_i = Q_b` to rounding for any f (also
    all zero: then the correction is uniform), and a supercell of n copies gives each
    copy the same charges. The two forms differ by about
    :math:`\varepsilon\,|\Delta Q| (1 + N_b f_i/\sum f)/\sum f` per atom.
    Evaluated in float64 whatever the input dtype. Channels (the last axis) are corrected
    independently (aimnet's two spin channels, each with its own total).

    Shapes: ``raw``, ``weights`` [N, C], ``total`` [B, C], ``batch`` [N] → [N, C] float64.
    """
    raw, weights, total = raw.double(), weights.double(), total.double()
    excess = total - scatter_sum(raw, batch, num_graphs)  # [B, C]
    if exact:
        weights = weights + epsilon  # [N, C]
        denominator = scatter_sum(weights, batch, num_graphs)  # [B, C]
    else:
        denominator = scatter_sum(weights, batch, num_graphs) + epsilon  # [B, C]
    return raw + weights / denominator[batch] * excess[batch]  # [N, C]


def aimnet_mlp(sizes: Sequence[int], last_linear: bool) -> nn.Sequential:
    r"""Linear layers of ``sizes`` [n_in, h_1, ..., n_out] with exact (erf) GELU between them,
    and after the last one too unless ``last_linear`` (aimnet ``MLP``; layers at the even
    indices of the ``Sequential``, as in aimnet's state dict). Weights Xavier-normal, biases zero.

    Shapes: [N, n_in] → [N, n_out].
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"aimnet_mlp: sizes must be at least [n_in, n_out] of positive integers, got {sizes}")
    layers = []
    for k in range(1, len(sizes)):
        linear = nn.Linear(sizes[k - 1], sizes[k])
        nn.init.xavier_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not (last_linear and k == len(sizes) - 1):
            layers.append(nn.GELU())
    return nn.Sequential(*layers)
