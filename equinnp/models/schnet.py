"""SchNet (Schütt et al., J. Chem. Phys. 148, 241722 (2018)).

Hyperparameter names and layer layout follow ``torch_geometric.nn.models.SchNet``
so that the two give the same numbers with the same weights
(``tests/test_parity_pyg_schnet.py``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn import CosineCutoff, GaussianRBF, ShiftedSoftplus

__all__ = ["SchNet", "CFConv", "SchNetInteraction"]


class CFConv(MessagePassing):
    r"""Continuous-filter convolution (SchNet eq. 3-5).

    .. math::
        x_i' = W_2 \sum_{j \in \mathcal{N}(i)} (W_1 x_j) \odot
               \big(\mathrm{MLP}(e(r_{ij}))\, f_c(r_{ij})\big) + b_2

    with :math:`e` the Gaussian expansion and :math:`f_c` the cosine cutoff.

    The filter :math:`W_{ij} = \mathrm{MLP}(e(r_{ij}))\, f_c(r_{ij})` is computed by
    the model (:meth:`filter`, or its table, ``equinnp.nn.tabulation``) and passed in.

    Shapes: ``x`` [N, F_in], ``edge_index`` [2, E], ``W`` [E, F] → [N, F_out].
    """

    def __init__(self, in_channels: int, out_channels: int, num_filters: int, num_gaussians: int):
        super().__init__(aggr="add")
        self.filter_net = nn.Sequential(
            nn.Linear(num_gaussians, num_filters), ShiftedSoftplus(), nn.Linear(num_filters, num_filters)
        )
        self.lin1 = nn.Linear(in_channels, num_filters, bias=False)
        self.lin2 = nn.Linear(num_filters, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.filter_net[0], self.filter_net[2], self.lin1, self.lin2):
            nn.init.xavier_uniform_(linear.weight)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def filter(self, edge_rbf: Tensor, edge_cutoff: Tensor) -> Tensor:
        """``MLP(e(r)) f_c(r)``: ``edge_rbf`` [E, K], ``edge_cutoff`` [E, 1] → [E, F]."""
        return self.filter_net(edge_rbf) * edge_cutoff

    def forward(self, x: Tensor, edge_index: Tensor, W: Tensor) -> Tensor:
        x = self.lin1(x)  # [N, F]
        x = self.propagate(edge_index, x=x, W=W)  # [N, F]
        return self.lin2(x)

    def message(self, x_j: Tensor, W: Tensor) -> Tensor:
        return x_j * W


class SchNetInteraction(nn.Module):
    r"""Interaction block: :math:`v_i = W\,\mathrm{ssp}(\mathrm{CFConv}(h)_i) + b`, added to :math:`h_i`."""

    def __init__(self, hidden_channels: int, num_gaussians: int, num_filters: int):
        super().__init__()
        self.conv = CFConv(hidden_channels, hidden_channels, num_filters, num_gaussians)
        self.act = ShiftedSoftplus()
        self.lin = nn.Linear(hidden_channels, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, h: Tensor, edge_index: Tensor, W: Tensor) -> Tensor:
        return self.lin(self.act(self.conv(h, edge_index, W)))  # [N, F]


class SchNet(AtomisticModel):
    r"""SchNet: continuous-filter convolutions on interatomic distances.

    .. math::
        h_i^{(0)} = \mathrm{Embed}(Z_i), \qquad
        h_i^{(t+1)} = h_i^{(t)} + \mathrm{Interaction}^{(t)}(h^{(t)}, \{r_{ij}\})_i, \qquad
        E_i = W_b\,\mathrm{ssp}(W_a h_i^{(T)} + b_a) + b_b

    Defaults are those of PyG's ``SchNet`` and SchNetPack's (128 features,
    128 filters, 6 interactions, 50 Gaussians between 0 and the cutoff) with
    SchNetPack's 5 Å cosine cutoff (PyG's default cutoff is 10 Å). They are not
    the papers' settings: the 2017/2018 papers expand distances in Gaussians
    every 0.1 Å with a fixed width (γ = 10 Å⁻²) and use 64 features for most
    benchmarks.

    Parameters
    ----------
    cutoff : float
        Interaction cutoff (Å); also the last Gaussian center (SchNetPack: 5 Å).
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_channels : int
        Atom feature size (PyG, SchNetPack: 128).
    num_filters : int
        Filter size of the continuous-filter convolution (PyG, SchNetPack: 128).
    num_interactions : int
        Number of interaction blocks T (PyG, SchNetPack: 6).
    num_gaussians : int
        Number of Gaussians in the distance expansion between 0 and ``cutoff``
        (PyG, SchNetPack: 50), width equal to their spacing.
    charge_embedding, spin_embedding : bool
        Add the total charge / spin multiplicity of each system to the initial
        atom features (``equinnp.nn.TotalChargeSpinEmbedding``; not in the
        paper, off by default). The potential then requires ``data.charge`` /
        ``data.spin``.
    charge_head : bool
        Also predict partial charges (``equinnp.nn.ChargeHead``; not in the
        paper, off by default): ``outputs`` then includes "charges". Pair it
        with a charge-conservation transform (``uniform_charges`` or
        ``weighted_charges``) so that they sum to the total charge.

    Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N].
    """

    paper = "Schütt et al., SchNet – A deep learning architecture for molecules and materials, J. Chem. Phys. 148, 241722 (2018)"
    tiny = dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=12)
    tabulatable = True

    def __init__(
        self,
        *,
        cutoff: float = 5.0,
        elements: Sequence[int] = (1, 6, 7, 8),
        hidden_channels: int = 128,
        num_filters: int = 128,
        num_interactions: int = 6,
        num_gaussians: int = 50,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
        charge_head: bool = False,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        self.hidden_channels = hidden_channels
        self.num_filters = num_filters
        self.embedding = nn.Embedding(self.num_elements, hidden_channels)
        self.distance_expansion = GaussianRBF(0.0, cutoff, num_gaussians)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(
            SchNetInteraction(hidden_channels, num_gaussians, num_filters) for _ in range(num_interactions)
        )
        self.lin1 = nn.Linear(hidden_channels, hidden_channels // 2)
        self.act = ShiftedSoftplus()
        self.lin2 = nn.Linear(hidden_channels // 2, 1)
        self.add_electronic_blocks(hidden_channels, charge_embedding, spin_embedding, charge_head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for interaction in self.interactions:
            interaction.reset_parameters()
        for linear in (self.lin1, self.lin2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        for block in (self.electronic_embedding, self.charge_head):
            if block is not None:
                block.reset_parameters()

    def filters(self, r: Tensor) -> list:
        """The filter of every interaction, ``r`` [E] → T x [E, F]."""
        edge_rbf = self.distance_expansion(r)  # [E, K]
        edge_cutoff = self.cutoff_fn(r).unsqueeze(-1)  # [E, 1]
        return [interaction.conv.filter(edge_rbf, edge_cutoff) for interaction in self.interactions]

    def radial_network(self, r: Tensor) -> Tensor:
        """All filters side by side, ``r`` [E] → [E, T F] (what ``tabulate_radial`` tabulates)."""
        return torch.cat(self.filters(r), dim=-1)

    def radial_modules(self) -> list:
        return [self.distance_expansion, self.cutoff_fn] + [interaction.conv.filter_net for interaction in self.interactions]

    def forward(self, graph: Graph) -> AtomicOutput:
        h = self.embedding(graph.species)  # [N, F]
        h = self.embed_totals(h, graph)  # [N, F]
        if self.uses_table():
            filters = self.radial_parts(graph.edge_length, self.num_filters)  # T x [E, F]
        else:
            filters = self.filters(graph.edge_length)  # T x [E, F]
        for interaction, W in zip(self.interactions, filters):
            h = h + interaction(h, graph.edge_index, W)
        energy = self.lin2(self.act(self.lin1(h))).squeeze(-1)  # [N]
        return self.atomic_output(energy, h)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_channels={self.hidden_channels}, "
            f"num_interactions={len(self.interactions)}, cutoff={self.cutoff:g}, elements={self.elements})"
        )
