"""PaiNN (Schütt, Unke, Gastegger, ICML 2021, "Equivariant message passing for
the prediction of tensorial properties and molecular spectra").

Scalar features ``q`` have shape [N, F]; vector features ``mu`` have shape
[N, 3, F] (Cartesian axis in the middle), the layout of SchNetPack, whose PaiNN
gives the same numbers with the same weights (``tests/test_parity_schnetpack_painn.py``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn import BesselRBF, CosineCutoff
from equinnp.nn.painn_message import painn_message_sum
from equinnp.nn.scatter import scatter_sum

__all__ = ["PaiNN", "PaiNNMessage", "PaiNNUpdate", "FUSED_MIN_EDGES"]

#: From this many edges the message runs as one fused autograd function; below, as PyG's
#: ``propagate``: for an MD step of a small molecule (ethanol: 72 edges) the Python-level
#: backward of the fused function costs more than the passes over memory it saves.
FUSED_MIN_EDGES = 1024


class PaiNNMessage(MessagePassing):
    r"""PaiNN message block (paper eq. 7-8).

    .. math::
        [\phi^s, \phi^{vv}, \phi^{vs}]_j = \phi(q_j), \qquad
        [W^s, W^{vv}, W^{vs}]_{ij} = W(\lVert r_{ij} \rVert)\, f_c(\lVert r_{ij} \rVert)

        \Delta q_i = \sum_j \phi^s_j \circ W^s_{ij}, \qquad
        \Delta \vec\mu_i = \sum_j \vec\mu_j \circ \phi^{vv}_j \circ W^{vv}_{ij}
                        + \phi^{vs}_j \circ W^{vs}_{ij} \, \frac{\vec r_{ij}}{\lVert r_{ij} \rVert}

    ``message`` and ``aggregate`` define the block (PyG's ``propagate`` runs
    them in training mode, when ``fused`` is False, or for fewer than
    :data:`FUSED_MIN_EDGES` edges); in eval mode ``forward`` evaluates the
    same sum by :func:`equinnp.nn.painn_message.painn_message_sum`, one
    autograd function whose backward makes fewer passes over the [E, 3, F]
    messages (same numbers to rounding, same derivatives of every order).
    Training differentiates the forces again, where the fused backward's
    recomputation makes a step 6 % slower than autograd's composite.

    ``mu`` None stands for all-zero vectors (the first layer).

    Shapes: ``q`` [N, F], ``mu`` [N, 3, F] or None, ``filters`` [E, 3F], ``edge_dir`` [E, 3]
    → ``(q, mu)`` updated, ``mu`` [N, 3, F].
    """

    def __init__(self, hidden_channels: int, fused: bool = True):
        super().__init__(aggr="add", node_dim=0)
        self.hidden_channels = hidden_channels
        self.fused = fused
        self.context_net = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, 3 * hidden_channels),
        )

    def forward(self, q: Tensor, mu: Tensor, edge_index: Tensor, filters: Tensor, edge_dir: Tensor):
        context = self.context_net(q)  # [N, 3F]
        if self.fused and not self.training and edge_index.shape[1] >= FUSED_MIN_EDGES:
            dq, dmu = painn_message_sum(context, filters, mu, edge_dir, edge_index[0], edge_index[1], q.shape[0])
        else:
            dq, dmu = self.propagate(edge_index, context=context, mu=mu, filters=filters, edge_dir=edge_dir,
                                     size=(q.shape[0], q.shape[0]))  # [N, F], [N, 3, F]
        return q + dq, dmu if mu is None else mu + dmu

    def message(self, context_j: Tensor, mu_j: Optional[Tensor], filters: Tensor, edge_dir: Tensor) -> Tuple[Tensor, Tensor]:
        dq, dmu_dir, dmu_mu = torch.split(context_j * filters, self.hidden_channels, dim=-1)  # 3 x [E, F]
        dmu = dmu_dir.unsqueeze(1) * edge_dir.unsqueeze(-1)  # [E, 3, F]
        if mu_j is not None:  # None: zero vectors (first layer), whose term vanishes
            dmu = dmu + dmu_mu.unsqueeze(1) * mu_j
        return dq, dmu

    def aggregate(self, inputs: Tuple[Tensor, Tensor], index: Tensor, dim_size: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        # the scalar and vector messages are summed separately (no [E, 4, F] concatenation)
        dq, dmu = inputs
        return scatter_sum(dq, index, dim_size), scatter_sum(dmu, index, dim_size)  # [N, F], [N, 3, F]


class PaiNNUpdate(nn.Module):
    r"""PaiNN update block (paper eq. 9-11): per-atom mixing of scalars and vectors.

    .. math::
        U\vec\mu_i,\ V\vec\mu_i = \text{linear channel mixes (no bias)}, \qquad
        [a^{vv}, a^{sv}, a^{ss}]_i = s(q_i, \sqrt{\lVert V\vec\mu_i \rVert^2 + \epsilon})

        \Delta \vec\mu_i = a^{vv}_i \circ U\vec\mu_i, \qquad
        \Delta q_i = a^{ss}_i + a^{sv}_i \circ \langle U\vec\mu_i, V\vec\mu_i \rangle

    The order of the three chunks of ``s`` is ``[ss, vv, sv]`` (SchNetPack's).

    Shapes: ``q`` [N, F], ``mu`` [N, 3, F] → same shapes.
    """

    def __init__(self, hidden_channels: int, epsilon: float = 1e-8):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.epsilon = epsilon
        self.vector_mix = nn.Linear(hidden_channels, 2 * hidden_channels, bias=False)
        self.context_net = nn.Sequential(
            nn.Linear(2 * hidden_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, 3 * hidden_channels),
        )

    def forward(self, q: Tensor, mu: Tensor):
        mu_v, mu_u = torch.split(self.vector_mix(mu), self.hidden_channels, dim=-1)  # 2 x [N, 3, F]
        mu_v_norm = torch.sqrt((mu_v**2).sum(dim=1) + self.epsilon)  # [N, F]
        a_ss, a_vv, a_sv = torch.split(
            self.context_net(torch.cat([q, mu_v_norm], dim=-1)), self.hidden_channels, dim=-1
        )  # 3 x [N, F]
        q = q + a_ss + a_sv * (mu_v * mu_u).sum(dim=1)
        mu = mu + a_vv.unsqueeze(1) * mu_u
        return q, mu


class PaiNN(AtomisticModel):
    r"""Polarizable atom interaction neural network.

    Scalars start from an element embedding, vectors from zero; each of
    ``num_interactions`` layers applies a :class:`PaiNNMessage` then a
    :class:`PaiNNUpdate`; the atomic energy is a two-layer SiLU MLP of the
    final scalars, :math:`E_i = W_2\,\mathrm{SiLU}(W_1 q_i + b_1) + b_2`.

    Defaults are the paper's MD17/QM9 settings, which are also SchNetPack's
    (128 features, 3 interactions, 20 Bessel functions, 5 Å cosine cutoff).

    Parameters
    ----------
    cutoff : float
        Cutoff (Å) of the cosine envelope and the Bessel basis (paper: 5 Å).
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_channels : int
        Feature size F (paper: 128).
    num_interactions : int
        Message + update layers (paper: 3).
    num_rbf : int
        Bessel functions :math:`\sin(n\pi r/r_c)/r` (paper: 20).
    shared_filters : bool
        One filter network output reused by every layer.
    epsilon : float
        Added under the square root of the vector norm for a finite gradient at 0.
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

    paper = "Schütt, Unke, Gastegger, Equivariant message passing for the prediction of tensorial properties and molecular spectra, ICML 2021"
    tiny = dict(hidden_channels=16, num_interactions=2, num_rbf=8)
    tabulatable = True

    def __init__(
        self,
        *,
        cutoff: float = 5.0,
        elements: Sequence[int] = (1, 6, 7, 8),
        hidden_channels: int = 128,
        num_interactions: int = 3,
        num_rbf: int = 20,
        shared_filters: bool = False,
        epsilon: float = 1e-8,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
        charge_head: bool = False,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        self.hidden_channels = hidden_channels
        self.num_interactions = num_interactions
        self.shared_filters = shared_filters
        self.embedding = nn.Embedding(self.num_elements, hidden_channels)
        self.radial_basis = BesselRBF(num_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        num_filter_sets = 1 if shared_filters else num_interactions
        self.filter_net = nn.Linear(num_rbf, num_filter_sets * 3 * hidden_channels)
        self.messages = nn.ModuleList(PaiNNMessage(hidden_channels) for _ in range(num_interactions))
        self.updates = nn.ModuleList(PaiNNUpdate(hidden_channels, epsilon) for _ in range(num_interactions))
        self.readout = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels // 2), nn.SiLU(), nn.Linear(hidden_channels // 2, 1)
        )
        self.add_electronic_blocks(hidden_channels, charge_embedding, spin_embedding, charge_head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in (self.electronic_embedding, self.charge_head):
            if block is not None:
                block.reset_parameters()

    def radial_network(self, r: Tensor) -> Tensor:
        """The filters of every layer, :math:`W(r) f_c(r)`: ``r`` [E] → [E, T 3F] (one set: [E, 3F])."""
        return self.filter_net(self.radial_basis(r)) * self.cutoff_fn(r).unsqueeze(-1)

    def radial_modules(self) -> list:
        return [self.radial_basis, self.cutoff_fn, self.filter_net]

    def forward(self, graph: Graph) -> AtomicOutput:
        F = self.hidden_channels
        length = graph.edge_length
        edge_dir = graph.edge_vec / length.clamp(min=1e-12).unsqueeze(-1)  # [E, 3]
        filters = self.radial_parts(length, 3 * F)  # T (or 1) x [E, 3F]

        q = self.embedding(graph.species)  # [N, F]
        q = self.embed_totals(q, graph)  # [N, F]
        mu = None  # [N, 3, F], zero before the first message
        for t, (message, update) in enumerate(zip(self.messages, self.updates)):
            W = filters[0 if self.shared_filters else t]
            q, mu = message(q, mu, graph.edge_index, W, edge_dir)
            q, mu = update(q, mu)
        energy = self.readout(q).squeeze(-1)  # [N]
        return self.atomic_output(energy, q)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_channels={self.hidden_channels}, "
            f"num_interactions={self.num_interactions}, cutoff={self.cutoff:g}, elements={self.elements})"
        )
