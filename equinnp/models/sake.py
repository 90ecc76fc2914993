r"""SAKE (Wang & Chodera, ICLR 2023, "Spatial Attention Kinetic Networks with E(n)-Equivariance").

Atoms carry invariant features h [N, F] and move: every layer updates the
features from attention-weighted edges and spatial attention over the edge
directions, then a velocity and the positions (:class:`equinnp.nn.sake_layers.SAKELayer`).
The next layer's pair vectors use the moved positions,

.. math:: r^{(l)}_{ij} = x^{(l)}_j - x^{(l)}_i + \text{shift}_{ij}
        = r^{(0)}_{ij} + \delta^{(l)}_j - \delta^{(l)}_i, \qquad \delta^{(l)} = x^{(l)} - x^{(0)},

with the edges and the periodic shifts of the neighbor list fixed (``Graph.edge_vec``
is :math:`r^{(0)}`, strain included). Forces are :math:`-\partial E / \partial x^{(0)}`
through every update. The energy is :math:`E_i = \mathrm{Linear}(\sigma(\mathrm{Linear}(h^{(L)}_i)))`.

Agreement with the authors' JAX code (``sake-gnn`` 0.0.2.post1 = choderalab/sake,
``DenseSAKEModel``): with the same weights and a cutoff larger than every distance,
energies, forces and every layer's h, x, v agree to float64 round-off
(``tests/test_sake.py`` against ``tests/data/sake_golden.npz``). Departures:

- **Cutoff weight** (needed for a smooth energy on a radius graph; the paper's
  runs use all pairs). Every pair has the weight :math:`w_{ij} = f_c(d^{(0)}_{ij})`
  (cosine cutoff of the input distance, fixed for all layers; positions move but
  the edge set does not). It multiplies the semantic softmax and is renormalised,
  as the reference's optional ``cutoff`` does, and multiplies the result once
  more so that a lone neighbour's weight vanishes at the cutoff
  (:func:`~equinnp.nn.sake_layers.combined_attention`).
- **Means over neighbours**: the reference divides the spatial sums by the
  number n of atoms (itself included); here by :math:`1 + \sum_j w_{ij}`, which is
  n when every pair has weight 1 and changes smoothly as pairs enter.
- In the all-pairs limit both reduce to the reference up to
  :math:`1 - f_c(d) \approx (\pi d / 2 r_c)^2`: the parity test uses :math:`r_c = 10^8` Å.
- **Element embedding**: one row per entry of ``elements`` (the reference's
  Dense on a one-hot vector, kernel row plus bias). The reference's MD17 script
  one-hot encodes with ``z.max()`` classes, which gives its heaviest element a zero
  vector; that quirk is not reproduced.
- **Unused parameters left out**: the Euclidean-attention ``log_gamma`` (created,
  never used), the velocity gate of the first layer (no incoming velocity) and the
  velocity and position update of the last layer (nothing reads the last positions):
  outputs are unchanged.
- Energy scale and shift (the reference's ``coloring``) and reference energies
  live in ``Potential``.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn.sake_layers import CosinePairWeight, SAKELayer, lecun_normal_, smooth_neighbor_count

__all__ = ["SAKE", "SAKEState"]


class SAKEState(NamedTuple):
    """Features after one layer: ``h`` [N, F]; ``x`` [N, 3] positions and ``v`` [N, 3]
    velocity (None where the layer does not move the atoms)."""

    h: Tensor
    x: Optional[Tensor]
    v: Optional[Tensor]


class SAKE(AtomisticModel):
    r"""Spatial attention kinetic network.

    Defaults are the paper's MD17/QM9 runs (``scripts/md17/run.py``): 64 features,
    6 layers, 4 attention heads, 50 exponential-normal radial functions spaced
    over 0-5 Å, SiLU, positions updated in every layer.

    Parameters
    ----------
    cutoff : float
        Radius (Å) of the neighbor list and of the cosine pair weight :math:`f_c` (the paper: all pairs).
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_channels : int
        Feature size F (paper: 64).
    num_layers : int
        SAKE layers (paper: 6).
    num_heads : int
        Semantic attention heads H (paper: 4); the attended edges have F·H channels.
    num_rbf : int
        Radial functions of the edge filter (paper: 50).
    rbf_upper : float
        Upper end (Å) of the radial functions' initial spacing (reference: 5 Å).
    update_positions : bool
        Move the atoms between layers (paper: True; False is the paper's "no update" ablation).
    charge_embedding, spin_embedding : bool
        Add the total charge / spin multiplicity of each system to the initial
        features h⁰ (``equinnp.nn.TotalChargeSpinEmbedding``; not in the paper, off
        by default). The potential then requires ``data.charge`` / ``data.spin``.
    charge_head : bool
        Also predict partial charges from the last layer's features h [N, F]
        (``equinnp.nn.ChargeHead``; not in the paper, off by default): ``outputs``
        then includes "charges". Pair it with ``uniform_charges`` or ``weighted_charges``.

    Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N].
    """

    paper = "Wang, Chodera, Spatial Attention Kinetic Networks with E(n)-Equivariance, ICLR 2023"
    tiny = dict(hidden_channels=8, num_layers=3, num_heads=2, num_rbf=8)

    def __init__(
        self,
        *,
        cutoff: float = 5.0,
        elements: Sequence[int] = (1, 6, 7, 8),
        hidden_channels: int = 64,
        num_layers: int = 6,
        num_heads: int = 4,
        num_rbf: int = 50,
        rbf_upper: float = 5.0,
        update_positions: bool = True,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
        charge_head: bool = False,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        for name, value in (("hidden_channels", hidden_channels), ("num_layers", num_layers),
                            ("num_heads", num_heads), ("num_rbf", num_rbf)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"SAKE needs {name} to be an integer >= 1, got {value!r}")
        if not rbf_upper > 0:
            raise ValueError(f"SAKE needs rbf_upper > 0 (Å), got {rbf_upper!r}")
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.update_positions = bool(update_positions)
        self.pair_weight = CosinePairWeight(cutoff)
        self.embedding = nn.Embedding(self.num_elements, hidden_channels)
        self.layers = nn.ModuleList(
            SAKELayer(hidden_channels, num_heads, num_rbf, rbf_upper,
                      update_positions=self.update_positions and t < num_layers - 1, has_velocity_gate=t > 0)
            for t in range(num_layers)
        )
        self.readout = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.SiLU(),
                                     nn.Linear(hidden_channels, 1))
        self.add_electronic_blocks(hidden_channels, charge_embedding, spin_embedding, charge_head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # flax's defaults, as the reference: lecun_normal kernels (fan-in: the number of elements
        # for the embedding), zero biases
        nn.init.trunc_normal_(self.embedding.weight, 0.0, 1.0, -2.0, 2.0)
        with torch.no_grad():
            self.embedding.weight.mul_((1.0 / self.num_elements) ** 0.5 / 0.87962566103423978)
        for layer in self.layers:
            layer.reset_parameters()
        for module in self.readout:
            if isinstance(module, nn.Linear):
                lecun_normal_(module.weight)
                nn.init.zeros_(module.bias)
        for block in (self.electronic_embedding, self.charge_head):
            if block is not None:
                block.reset_parameters()

    def states(self, graph: Graph) -> List[SAKEState]:
        """Every layer's features, positions and velocity (positions: ``graph.pos`` plus the displacement)."""
        N = graph.species.shape[0]
        center = graph.edge_index[1]
        weight = self.pair_weight(graph.edge_length).unsqueeze(-1)  # [E, 1]
        count = smooth_neighbor_count(weight, center, N)  # [N, 1]
        h = self.embed_totals(self.embedding(graph.species), graph)  # [N, F]
        displacement = graph.pos.new_zeros((N, 3))  # [N, 3] x^(l) - x^(0)
        v: Optional[Tensor] = None
        states = []
        for layer in self.layers:
            j, i = graph.edge_index[0], center
            vec = graph.edge_vec + displacement[j] - displacement[i]  # [E, 3]
            h, delta_v = layer(h, vec, graph.edge_index, weight, count)
            if delta_v is None:
                states.append(SAKEState(h, None, None))
                continue
            v = layer.update_velocity(h, v, delta_v)  # [N, 3]
            displacement = displacement + v
            states.append(SAKEState(h, graph.pos + displacement, v))
        return states

    def forward(self, graph: Graph) -> AtomicOutput:
        h = self.states(graph)[-1].h  # [N, F]
        return self.atomic_output(self.readout(h).squeeze(-1), h)  # [N]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"cutoff={self.cutoff:g}, elements={self.elements})"
        )
