r"""ANI atomic environment vectors (Smith, Isayev, Roitberg, Chem. Sci. 8, 3192 (2017)).

The AEV of atom :math:`i` concatenates a radial part, one block per neighbor
element :math:`s`, and an angular part, one block per unordered pair of neighbor
elements :math:`\{s, s'\}`. With the cosine cutoff
:math:`f_c(r; R_c) = \tfrac12 \cos(\pi r / R_c) + \tfrac12` for :math:`r \le R_c`:

.. math::
    G^R_i[s, k] = \sum_{j \ne i,\, Z_j = s} \tfrac14\, e^{-\eta_R (r_{ij} - R_k)^2}\, f_c(r_{ij}; R_c^R)

.. math::
    G^A_i[\{s, s'\}, a, z] = \sum_{\{j, k\}} 2 \Big(\frac{1 + \cos(\theta'_{ijk} - \theta_z)}{2}\Big)^{\zeta}
        e^{-\eta_A \left(\frac{r_{ij} + r_{ik}}{2} - R_a\right)^2} f_c(r_{ij}; R_c^A)\, f_c(r_{ik}; R_c^A),
    \qquad \theta'_{ijk} = \arccos(0.95 \cos\theta_{ijk})

where the angular sum runs over unordered pairs of distinct neighbors
:math:`\{j, k\}` of :math:`i` within :math:`R_c^A` whose elements are
:math:`\{s, s'\}`. The factor :math:`\tfrac14` of the radial terms and the
factor 0.95 inside the arccosine are NeuroChem's (and TorchANI's); the 2017 paper
has neither. :math:`\cos(\theta' - \theta_z)` is evaluated as
:math:`\cos\theta' \cos\theta_z + \sin\theta' \sin\theta_z` with
:math:`\cos\theta' = 0.95\cos\theta` and :math:`\sin\theta' = \sqrt{1 - \cos^2\theta'}`
(the same number as through the arccosine, without it).

Layout, as TorchANI's: radial index ``s * num_radial + k``; angular block of the
pair :math:`(s \le s')` at ``triu_index[s, s']`` (row-major over the upper
triangle of the K x K element matrix), index ``a * num_sections + z`` within a
block. Length ``K * num_radial + K (K + 1) / 2 * num_angular * num_sections``
(1008 for ANI-2x: 7 elements, 16 radial shifts, 8 angular shifts, 4 sections).

Everything is built from the edges of a radius graph that holds both directions
of every pair (equinnp's convention), so periodic images come in through the
edge vectors: an atom and its own image are distinct neighbors.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from equinnp.postprocessing.float64 import keep_float64

__all__ = ["AEVConstants", "AtomicEnvironmentVector", "angular_pairs", "ani_cutoff", "row_outer"]


class AEVConstants(NamedTuple):
    """The numbers that define an ANI AEV (Å, Å⁻², radians).

    ``radial_shifts`` [num_radial], ``angular_shifts`` [num_angular] and
    ``angle_sections`` [num_sections] are plain sequences of floats.
    """

    radial_cutoff: float
    angular_cutoff: float
    radial_eta: float
    radial_shifts: Sequence[float]
    angular_eta: float
    zeta: float
    angular_shifts: Sequence[float]
    angle_sections: Sequence[float]

    @classmethod
    def evenly_spaced(cls, radial_cutoff: float, angular_cutoff: float, radial_eta: float, angular_eta: float,
                      zeta: float, num_radial: int, num_angular: int, num_sections: int,
                      start: float = 0.8) -> "AEVConstants":
        """Shifts spaced as in ANI-1x/2x: ``start + (R_c - start) k / n`` for k < n, and
        angle sections :math:`\\pi (2z + 1) / (2 n_z)` (ANI-2x: :math:`\\pi/8, 3\\pi/8, ...`)."""
        for name, value in (("num_radial", num_radial), ("num_angular", num_angular), ("num_sections", num_sections)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        radial = [start + (radial_cutoff - start) * k / num_radial for k in range(num_radial)]
        angular = [start + (angular_cutoff - start) * k / num_angular for k in range(num_angular)]
        sections = [math.pi * (2 * z + 1) / (2 * num_sections) for z in range(num_sections)]
        return cls(radial_cutoff, angular_cutoff, radial_eta, radial, angular_eta, zeta, angular, sections)

    def rounded_to_float32(self) -> "AEVConstants":
        """Widths, ζ and shifts rounded to the nearest float32, as TorchANI stores them (buffers);
        the two cutoffs stay exact, as TorchANI keeps them (Python floats)."""

        def r32(values):
            return torch.tensor(values, dtype=torch.float32).double().tolist()

        return self._replace(
            radial_eta=r32([self.radial_eta])[0], radial_shifts=r32(list(self.radial_shifts)),
            angular_eta=r32([self.angular_eta])[0], zeta=r32([self.zeta])[0],
            angular_shifts=r32(list(self.angular_shifts)), angle_sections=r32(list(self.angle_sections)),
        )


class _RowOuter(torch.autograd.Function):
    """Row-wise outer product ``out[p] = a[p] ⊗ b[p]`` flattened, [P, A] x [P, B] → [P, A·B].

    The same numbers as ``(a[:, :, None] * b[:, None, :]).reshape(P, -1)``; the backward is two
    batched matrix-vector products instead of broadcast products and reductions over small
    inner axes (about twice as fast on CPU, measured on this project's shared machines). It is
    built from differentiable operations, so second derivatives (training on forces) go through it.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return (a.unsqueeze(-1) * b.unsqueeze(-2)).reshape(a.shape[0], a.shape[1] * b.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        grad = grad.reshape(a.shape[0], a.shape[1], b.shape[1])  # [P, A, B]
        grad_a = torch.bmm(grad, b.unsqueeze(-1)).squeeze(-1)  # [P, A]
        grad_b = torch.bmm(a.unsqueeze(1), grad).squeeze(1)  # [P, B]
        return grad_a, grad_b


def row_outer(a: Tensor, b: Tensor) -> Tensor:
    """``a[p] ⊗ b[p]`` for every row p, flattened a-major: [P, A], [P, B] → [P, A * B]."""
    return _RowOuter.apply(a, b)


def ani_cutoff(r: Tensor, cutoff: float) -> Tensor:
    r""":math:`f_c(r) = \tfrac12 \cos(\pi r / R_c) + \tfrac12` for :math:`r \le R_c`, else 0. Shapes: [E] → [E]."""
    value = 0.5 * torch.cos(r * (math.pi / cutoff)) + 0.5
    return torch.where(r <= cutoff, value, torch.zeros_like(value))


def angular_pairs(center: Tensor) -> tuple:
    """Unordered pairs of distinct edges that share a center.

    ``center`` [E] long must be sorted (edges grouped by center). Returns
    ``(first, second)`` [P] long, positions into ``center`` with ``first <
    second`` and ``center[first] == center[second]``: every pair once.
    """
    num_edges = center.shape[0]
    if num_edges == 0:
        empty = center.new_zeros(0)
        return empty, empty
    starts = torch.ones_like(center, dtype=torch.bool)
    starts[1:] = center[1:] != center[:-1]
    group_start = torch.cummax(torch.where(starts, torch.arange(num_edges, device=center.device), 0), 0).values  # [E]
    group_id = torch.cumsum(starts.long(), 0) - 1  # [E]
    group_size = torch.bincount(group_id)  # [G]
    later = group_start + group_size[group_id] - 1 - torch.arange(num_edges, device=center.device)  # [E] edges after each
    first = torch.repeat_interleave(torch.arange(num_edges, device=center.device), later)  # [P]
    offset = torch.arange(first.shape[0], device=center.device) - torch.repeat_interleave(torch.cumsum(later, 0) - later, later)
    second = first + 1 + offset  # [P]
    return first, second


class AtomicEnvironmentVector(nn.Module):
    r"""The ANI AEV of every atom from the edges of a radius graph (module docstring for the equations).

    Parameters
    ----------
    num_species : int
        K, the number of elements (species indices 0..K-1).
    constants : AEVConstants
        Cutoffs, widths and shifts; the angular cutoff must not exceed the radial one.

    Shapes: ``species`` [N] long, ``edge_index`` [2, E] (``[j, i]``: neighbor,
    center; both directions of each pair), ``edge_vec`` [E, 3] (``r_j - r_i``),
    ``edge_length`` [E], all pairs within the radial cutoff → [N, aev_length].
    """

    def __init__(self, num_species: int, constants: AEVConstants):
        super().__init__()
        if constants.angular_cutoff > constants.radial_cutoff:
            raise ValueError(
                f"the angular cutoff ({constants.angular_cutoff} Å) must not exceed the radial cutoff "
                f"({constants.radial_cutoff} Å): the angular pairs are taken from the radial neighbor list"
            )
        self.num_species = int(num_species)
        self.radial_cutoff = float(constants.radial_cutoff)
        self.angular_cutoff = float(constants.angular_cutoff)
        self.radial_eta = float(constants.radial_eta)
        self.angular_eta = float(constants.angular_eta)
        self.zeta = float(constants.zeta)
        self.register_buffer("radial_shifts", torch.tensor(constants.radial_shifts, dtype=torch.float64))
        self.register_buffer("angular_shifts", torch.tensor(constants.angular_shifts, dtype=torch.float64))
        sections = torch.tensor(constants.angle_sections, dtype=torch.float64)
        self.register_buffer("angle_sections", sections)
        self.num_radial = self.radial_shifts.numel()
        self.num_angular = self.angular_shifts.numel() * sections.numel()
        K = self.num_species
        self.num_pairs = K * (K + 1) // 2
        triu = torch.zeros(K, K, dtype=torch.long)
        rows, cols = torch.triu_indices(K, K)
        triu[rows, cols] = torch.arange(rows.numel())
        triu[cols, rows] = torch.arange(rows.numel())
        self.register_buffer("triu_index", triu, persistent=False)
        self.radial_length = K * self.num_radial
        self.aev_length = self.radial_length + self.num_pairs * self.num_angular
        # the neighbor species each AEV value depends on: radial s → (s, s), angular {s, s'} → (s, s')
        radial_species = torch.arange(K).repeat_interleave(self.num_radial)
        angular_rows = rows.repeat_interleave(self.num_angular)
        angular_cols = cols.repeat_interleave(self.num_angular)
        self.register_buffer("column_species", torch.stack([torch.cat([radial_species, angular_rows]),
                                                            torch.cat([radial_species, angular_cols])], dim=1),
                             persistent=False)  # [aev_length, 2]

    def columns_for(self, present: Tensor) -> Tensor:
        """Indices [D'] of the AEV values that can be non-zero when only the species ``present`` occur:
        the others have no neighbor of their element (pair) and are exactly 0."""
        mask = torch.isin(self.column_species, present).all(dim=1)  # [aev_length]
        return torch.nonzero(mask).squeeze(-1)

    # the constants stay float64 under .to(float32): a float32 network then rounds them once, per call
    _apply = keep_float64

    def _float(self, name: str, like: Tensor) -> Tensor:
        # the constants are float64 buffers; the AEV is evaluated in the dtype of the positions
        return getattr(self, name).to(like.dtype)

    def radial(self, species: Tensor, edge_index: Tensor, edge_length: Tensor) -> Tensor:
        """[N, K * num_radial]."""
        j, i = edge_index[0], edge_index[1]
        num_atoms = species.shape[0]
        shifts = self._float("radial_shifts", edge_length)
        terms = 0.25 * torch.exp(-self.radial_eta * (edge_length.unsqueeze(-1) - shifts) ** 2)  # [E, num_radial]
        terms = terms * ani_cutoff(edge_length, self.radial_cutoff).unsqueeze(-1)
        slot = i * self.num_species + species[j]  # [E]
        out = terms.new_zeros(num_atoms * self.num_species, self.num_radial)
        out.index_add_(0, slot, terms)
        return out.reshape(num_atoms, self.radial_length)  # [N, K * num_radial]

    def angular(self, species: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_length: Tensor) -> Tensor:
        """[N, K (K + 1) / 2 * num_angular]."""
        num_atoms = species.shape[0]
        keep = torch.nonzero(edge_length <= self.angular_cutoff).squeeze(-1)  # [E_a]
        center = edge_index[1].index_select(0, keep)  # [E_a]
        if center.numel() > 1 and not bool((center[1:] >= center[:-1]).all()):  # equinnp's graphs come sorted
            order = torch.argsort(center, stable=True)
            keep, center = keep[order], center[order]
        vec, length = edge_vec.index_select(0, keep), edge_length.index_select(0, keep)  # [E_a, 3], [E_a]
        cutoff = ani_cutoff(length, self.angular_cutoff)  # [E_a]
        neighbor_species = species.index_select(0, edge_index[0].index_select(0, keep))  # [E_a]
        first, second = angular_pairs(center)  # [P], positions in the angular sub-list
        v1, v2 = vec.index_select(0, first), vec.index_select(0, second)  # [P, 3]
        d1, d2 = length.index_select(0, first), length.index_select(0, second)  # [P]
        cos_theta = 0.95 * (v1 * v2).sum(-1) / torch.clamp(d1 * d2, min=1e-10)  # [P] cos θ'
        sin_theta = torch.sqrt(1.0 - cos_theta**2)  # [P] > 0.31: |cos θ'| <= 0.95
        sections = self._float("angle_sections", edge_vec)
        cos_shifted = torch.outer(cos_theta, torch.cos(sections)) + torch.outer(sin_theta, torch.sin(sections))
        angle_part = 2.0 * ((1.0 + cos_shifted) * 0.5) ** self.zeta  # [P, num_sections]
        shifts = self._float("angular_shifts", edge_vec)
        radial_part = torch.exp(-self.angular_eta * (0.5 * (d1 + d2).unsqueeze(-1) - shifts) ** 2)  # [P, num_shifts]
        radial_part = radial_part * (cutoff.index_select(0, first) * cutoff.index_select(0, second)).unsqueeze(-1)
        terms = row_outer(radial_part, angle_part)  # [P, a * z], shift-major
        pair_type = self.triu_index[neighbor_species.index_select(0, first), neighbor_species.index_select(0, second)]
        slot = center.index_select(0, first) * self.num_pairs + pair_type  # [P]
        out = terms.new_zeros(num_atoms * self.num_pairs, self.num_angular)
        out.index_add_(0, slot, terms)
        return out.reshape(num_atoms, self.num_pairs * self.num_angular)

    def forward(self, species: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_length: Tensor) -> Tensor:
        radial = self.radial(species, edge_index, edge_length)  # [N, K * num_radial]
        angular = self.angular(species, edge_index, edge_vec, edge_length)  # [N, pairs * num_angular]
        return torch.cat([radial, angular], dim=-1)  # [N, aev_length]

    def extra_repr(self) -> str:
        return (
            f"num_species={self.num_species}, radial_cutoff={self.radial_cutoff:g}, "
            f"angular_cutoff={self.angular_cutoff:g}, aev_length={self.aev_length}"
        )
