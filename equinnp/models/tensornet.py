r"""TensorNet (Simeon & De Fabritiis, NeurIPS 2023, "TensorNet: Cartesian Tensor
Representations for Efficient Learning of Molecular Potentials").

Every atom carries F channels of a 3x3 Cartesian tensor :math:`X = I + A + S`
(scalar, antisymmetric and symmetric traceless parts). Internally each channel
is stored as its 9 coefficients in e3nn's orthonormal basis of 3x3 matrices
(:mod:`equinnp.nn.cartesian_tensors`): slices 0, 1..3 and 4..8 hold I, A and S,
so that the features are e3nn irreps features ``F x (0e + 1o + 2e)`` of shape
[N, 9, F], channel-wise linear layers act on each slice, squared norms are
sums of squares, and the matrix products of the update are taken on the 3x3
Cartesian form.

Agreement with TorchMD-Net 3.1.0 (``torchmdnet.models.tensornet`` with its
``Scalar`` output head): with the same weights, energies and forces agree to
float64 round-off (``tests/test_tensornet.py`` against
``tests/data/tensornet_golden.pt``). Deliberate differences:

- Elements: one embedding row per entry of ``elements`` (TorchMD-Net: one per
  atomic number up to ``max_z``).
- Self-loops: TorchMD-Net's neighbor list includes every atom as its own
  neighbor at distance 0 (``loop=True``). These terms are kept
  (``self_loops=True``) and computed per atom instead of as graph edges; at
  r = 0 the bond direction is zero, so they feed only I (embedding) and
  :math:`f(0) \odot Y_i` (interaction). ``self_loops=False`` sums over
  :math:`j \ne i` only.
- Total charge: TorchMD-Net scales the products by :math:`1 + 0.1 q` when a
  total charge q is given; this model ignores the charge (q = 0).
- Bond vector: TorchMD-Net builds A from :math:`\hat r = (x_i - x_j)/r`
  (center minus neighbor), the opposite of equinnp's :math:`r_{ij}`; the same
  sign is kept here so that the SO(3) variant gives the same numbers. Energies
  of the O(3) variant do not depend on it (they are invariant under
  :math:`X \to X^\top`).
- Priors, standardisation and reference energies live in ``Potential``.

Computation (same sums, in another order): the radial networks are evaluated
once per atom pair and shared by its two directed edges, found from
``Graph.reverse_edge`` (:func:`~equinnp.nn.tensor_messages.reverse_pairs`;
exact in periodic cells shorter than the cutoff, where several images join
two atoms and an atom is its own neighbor); the interaction messages are
chunked segment sums over center-sorted edges
(:func:`~equinnp.nn.tensor_messages.weighted_aggregate`; ``layer.fused = False``
runs PyG's ``propagate`` of :meth:`TensorInteraction.message` instead, and the
tests check that both agree); channel mixing, part expansion and the 3x3
products are batched ``einsum``/``bmm`` calls.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn import CosineCutoff, ShiftedSoftplus
from equinnp.nn.cartesian_tensors import (
    change_of_basis,
    matmul,
    part_expansion,
    skew,
    squared_norms,
    to_cartesian,
    to_irreps,
)
from equinnp.nn.activations import sequential_forward_ad
from equinnp.nn.expnorm_rbf import ExpNormalRBF
from equinnp.nn.tensor_messages import EdgeSet, per_edge, reverse_pairs, segment_sum, weighted_aggregate

__all__ = ["TensorNet", "TensorEmbedding", "TensorInteraction", "BlockLinear", "edge_basis"]

ACTIVATIONS = {"silu": nn.SiLU, "ssp": ShiftedSoftplus, "tanh": nn.Tanh}
GROUPS = ("O(3)", "SO(3)")
PART_OF_COEFFICIENT = (0, 1, 1, 1, 2, 2, 2, 2, 2)  # irreps coefficient k belongs to I (0), A (1) or S (2)


def expand_parts(w: Tensor) -> Tensor:
    """Repeat per-part weights over the 1, 3 and 5 coefficients of I, A, S. Shapes: [..., 3, F] → [..., 9, F]."""
    return torch.matmul(part_expansion(w.dtype, w.device), w)  # [..., 9, F]


def edge_basis(unit: Tensor, Q: Tensor) -> Tensor:
    r"""Irreps coefficients of the three edge tensors of paper eq. 4.

    Row e holds :math:`\langle Q_k, \mathbb{1}\rangle` (k = 0),
    :math:`\langle Q_k, \mathrm{skew}(\hat r_e)\rangle` (k = 1..3) and
    :math:`\langle Q_k, \hat r_e \hat r_e^\top\rangle` (k = 4..8; the trace drops
    out because these ``Q_k`` are traceless).

    Shapes: ``unit`` [E, 3], ``Q`` [9, 3, 3] → [E, 9].
    """
    scalar = Q[0].diagonal().sum().expand(unit.shape[0], 1)  # [E, 1]
    antisymmetric = torch.einsum("kab,eab->ek", Q[1:4], skew(unit))  # [E, 3]
    symmetric = torch.einsum("kab,ea,eb->ek", Q[4:9], unit, unit)  # [E, 5]
    return torch.cat([scalar, antisymmetric, symmetric], dim=1)  # [E, 9]


class BlockLinear(nn.Module):
    r"""Channel mixing of I, A and S with separate bias-free weights (paper eq. 5).

    .. math:: I' = W^I I, \quad A' = W^A A, \quad S' = W^S S

    acting on the channel dimension only, so each part stays in its irrep.

    Shapes: ``x`` [N, 9, F] → [N, 9, F].
    """

    def __init__(self, channels: int):
        super().__init__()
        self.scalar = nn.Linear(channels, channels, bias=False)
        self.antisymmetric = nn.Linear(channels, channels, bias=False)
        self.symmetric = nn.Linear(channels, channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.stack([self.scalar.weight, self.antisymmetric.weight, self.symmetric.weight])  # [3, F, F]
        weights = weights[list(PART_OF_COEFFICIENT)]  # [9, F, F]: one matrix per coefficient
        return torch.einsum("nkf,kgf->nkg", x, weights)  # [N, 9, F]


class TensorEmbedding(MessagePassing):
    r"""Initial atomic tensors from the neighborhood (paper eq. 4-6).

    .. math::
        X_i = \sum_j f_c(r_{ij})\, Z_{ij} \circ \left(
              f^I(r_{ij})\,\mathbb{1} + f^A(r_{ij})\,\mathrm{skew}(\hat r_{ij})
              + f^S(r_{ij})\,(\hat r_{ij}\hat r_{ij}^\top - \tfrac13\mathbb{1})\right),
        \qquad Z_{ij} = W[z_i \Vert z_j] + b

    with :math:`f^{I,A,S}` linear in the radial basis; then, with
    :math:`[a^I, a^A, a^S] = \phi(\mathrm{LayerNorm}(\lVert X_i \rVert^2))`
    (two SiLU layers), :math:`X_i \leftarrow a^I \circ W^I I_i + a^A \circ W^A A_i + a^S \circ W^S S_i`.

    Shapes: ``species`` [N], ``edge_index`` [2, E], ``rbf`` [P, K] and ``cutoff`` [P]
    per atom pair (``pair`` maps pairs to edges; without it P = E), ``basis``
    [E, 9] → ``x`` [N, 9, F].
    """

    def __init__(self, hidden_channels: int, num_rbf: int, num_elements: int, activation: type):
        super().__init__(aggr="add", node_dim=0)
        F = hidden_channels
        self.hidden_channels = F
        self.species_embedding = nn.Embedding(num_elements, F)
        self.pair_embedding = nn.Linear(2 * F, F)
        self.distance_proj = nn.Linear(num_rbf, 3 * F)  # [f^I | f^A | f^S]
        self.norm = nn.LayerNorm(F)
        self.scalar_net = nn.Sequential(nn.Linear(F, 2 * F), activation(), nn.Linear(2 * F, 3 * F), activation())
        self.mix = BlockLinear(F)

    def pair_table(self) -> Tensor:
        """:math:`Z_{ij}` for every (center, neighbor) pair of elements. Shapes: → [K, K, F]."""
        emb = self.species_embedding.weight  # [K, F]
        K, F = emb.shape
        pairs = torch.cat([emb.unsqueeze(1).expand(K, K, F), emb.unsqueeze(0).expand(K, K, F)], dim=-1)  # [K, K, 2F]
        return self.pair_embedding(pairs)  # [K, K, F]

    def forward(self, species, edge_index, rbf, cutoff, basis, pair=None, self_rbf=None, radial=None) -> Tensor:
        """``radial`` [P, 3F] (optional): :math:`f^{I,A,S}` times the cutoff, given (by a table)."""
        F, N = self.hidden_channels, species.shape[0]
        table = self.pair_table()  # [K, K, F]
        K = table.shape[0]
        j, i = edge_index
        z_ij = table.reshape(K * K, F)[species[i] * K + species[j]]  # [E, F]
        if radial is None:
            radial = self.distance_proj(rbf) * cutoff.unsqueeze(-1)  # [P, 3F]
        radial = per_edge(radial, pair)  # [E, 3F]
        weights = radial.view(-1, 3, F) * z_ij.unsqueeze(1)  # [E, 3, F]
        x = self.propagate(edge_index, weights=weights, basis=basis, size=(N, N))  # [N, 9, F]
        if self_rbf is not None:  # r = 0: the direction vanishes, only the scalar part remains
            self_weight = self.distance_proj(self_rbf)[..., :F]  # [1, F]
            self_term = basis.new_tensor(math.sqrt(3.0)) * self_weight * table[species, species]  # [N, F]
            x = torch.cat([x[:, :1] + self_term.unsqueeze(1), x[:, 1:]], dim=1)  # [N, 9, F]

        scales = self.scalar_net(self.norm((x * x).sum(1))).view(N, 3, F)  # [N, 3, F]
        return self.mix(x) * expand_parts(scales)  # [N, 9, F]

    def message(self, weights: Tensor, basis: Tensor) -> Tensor:
        spread = part_expansion(basis.dtype, basis.device) * basis.unsqueeze(-1)  # [E, 9, 3]
        return torch.matmul(spread, weights)  # [E, 9, F]

    def aggregate(self, inputs: Tensor, index: Tensor, ptr=None, dim_size=None) -> Tensor:
        return segment_sum(inputs, index, dim_size)  # [N, 9, F]


class TensorInteraction(MessagePassing):
    r"""TensorNet interaction layer (paper eq. 7-10).

    .. math::
        X_i &\leftarrow X_i / (\lVert X_i \rVert^2 + 1), \qquad
        Y_i = W^I I_i + W^A A_i + W^S S_i \\
        M_i &= \sum_j f^I_{ij} \circ I(Y_j) + f^A_{ij} \circ A(Y_j) + f^S_{ij} \circ S(Y_j),
        \qquad f_{ij} = \phi(e(r_{ij}))\, f_c(r_{ij}) \\
        C_i &= Y_i M_i + M_i Y_i \ \ (\mathrm{O}(3)) \quad\text{or}\quad 2\,Y_i M_i \ \ (\mathrm{SO}(3)) \\
        \Delta X_i &= W'^I I(\hat C_i) + W'^A A(\hat C_i) + W'^S S(\hat C_i),
        \qquad \hat C_i = C_i / (\lVert C_i \rVert^2 + 1) \\
        X_i &\leftarrow X_i + \Delta X_i + \Delta X_i^2

    where :math:`\phi` is three linear layers each followed by the activation,
    products are channel-wise 3x3 matrix products, and :math:`I(\cdot), A(\cdot),
    S(\cdot)` take the parts of a tensor.

    Shapes: ``x`` [N, 9, F], ``edge_index`` [2, E], ``rbf`` [P, K], ``cutoff`` [P] per atom
    pair (as in :class:`TensorEmbedding`) → [N, 9, F].
    """

    def __init__(self, hidden_channels: int, num_rbf: int, activation: type, group: str = "O(3)"):
        super().__init__(aggr="add", node_dim=0)
        F = hidden_channels
        self.hidden_channels = F
        self.group = group
        self.edge_net = nn.Sequential(
            nn.Linear(num_rbf, F), activation(), nn.Linear(F, 2 * F), activation(), nn.Linear(2 * F, 3 * F), activation()
        )
        self.mix_in = BlockLinear(F)
        self.mix_out = BlockLinear(F)
        self.fused = True  # chunked weighted_aggregate; False: PyG propagate of message(), same sums

    def forward(self, x, edge_index, rbf, cutoff, Q, pair=None, self_rbf=None, edges=None, radial=None) -> Tensor:
        """``radial`` [P, 3F] (optional): :math:`\phi(e(r))` times the cutoff, given (by a table)."""
        F, N = self.hidden_channels, x.shape[0]
        if radial is None:
            radial = self.edge_net(rbf) * cutoff.unsqueeze(-1)  # [P, 3F]
        factors = per_edge(radial, pair).view(-1, 3, F)  # [E, 3, F]
        x = x / ((x * x).sum(1, keepdim=True) + 1.0)  # [N, 9, F]
        y = self.mix_in(x)  # [N, 9, F]
        if self.fused:
            edges = EdgeSet.from_index(edge_index[0], edge_index[1]) if edges is None else edges
            m = weighted_aggregate(y, factors, edges, N, symmetric=pair is not None)  # [N, 9, F]
        else:
            m = self.propagate(edge_index, y=y, factors=factors, size=(N, N))  # [N, 9, F]
        if self_rbf is not None:  # each atom is its own neighbor at r = 0
            self_factors = self.edge_net(self_rbf).view(3, F)  # [3, F]
            m = m + expand_parts(self_factors) * y

        Y, M = to_cartesian(y, Q), to_cartesian(m, Q)  # [N, 3, 3, F]
        if self.group == "O(3)":
            product = matmul(Y, M) + matmul(M, Y)
        else:
            product = 2.0 * matmul(Y, M)
        c = to_irreps(product, Q)  # [N, 9, F]
        c = c / ((c * c).sum(1, keepdim=True) + 1.0)
        dx = self.mix_out(c)  # [N, 9, F]
        D = to_cartesian(dx, Q)  # [N, 3, 3, F]
        return x + dx + to_irreps(matmul(D, D), Q)

    def message(self, y_j: Tensor, factors: Tensor) -> Tensor:
        return y_j * expand_parts(factors)  # [E, 9, F]

    def aggregate(self, inputs: Tensor, index: Tensor, ptr=None, dim_size=None) -> Tensor:
        return segment_sum(inputs, index, dim_size)  # [N, 9, F]


class TensorNet(AtomisticModel):
    r"""TensorNet: O(3)- or SO(3)-equivariant message passing on Cartesian rank-2 tensors.

    A :class:`TensorEmbedding` builds :math:`X_i`, ``num_layers``
    :class:`TensorInteraction` layers update it, and the atomic energy is read
    from the norms of its parts (paper eq. 11):

    .. math::
        h_i = \sigma\!\left(W\,\mathrm{LayerNorm}\big[\lVert I_i\rVert^2 \,\Vert\, \lVert A_i\rVert^2
              \,\Vert\, \lVert S_i\rVert^2\big] + b\right), \qquad
        E_i = W_2\,\sigma(W_1 h_i + b_1) + b_2

    Parameters
    ----------
    cutoff : float
        Cutoff (Å) of the cosine envelope and the radial basis (TorchMD-Net's
        ``cutoff_upper`` default and the paper's rMD17 setting: 4.5 Å; QM9: 5 Å).
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_channels : int
        Channels F per tensor part (paper: 128).
    num_layers : int
        Interaction layers (paper: 2).
    num_rbf : int
        Exponential-normal radial basis functions (paper: 32).
    activation : str
        ``"silu"`` (paper), ``"ssp"`` or ``"tanh"``.
    equivariance_invariance_group : str
        ``"O(3)"`` (paper default; energies invariant under reflections) or
        ``"SO(3)"`` (products :math:`2\,YM`; energies invariant under rotations only).
    trainable_rbf : bool
        Train the centers and widths of the radial basis.
    self_loops : bool
        Count each atom as its own neighbor at r = 0, as TorchMD-Net does.
    charge_embedding, spin_embedding : bool
        Add the total charge / spin multiplicity of each system to the initial
        tensors' scalar (identity) part, X_i ← X_i + e_i I with e_i [F] the embedding of
        :class:`~equinnp.nn.TotalChargeSpinEmbedding`, after the embedding layer; TorchMD-Net's own charge
        scheme, the factors 1 + 0.1 q in its interaction layers, is not implemented (``equinnp.nn.TotalChargeSpinEmbedding``; not in the paper, off by
        default). The potential then requires ``data.charge`` / ``data.spin``.
    charge_head : bool
        Also predict partial charges from the final scalar features h_i [N, F] (``equinnp.nn.ChargeHead``;
        not in the paper, off by default): ``outputs`` then includes "charges". Pair
        it with ``uniform_charges`` or ``weighted_charges``.

    Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N].
    """

    paper = (
        "Simeon, De Fabritiis, TensorNet: Cartesian Tensor Representations for Efficient Learning "
        "of Molecular Potentials, NeurIPS 2023"
    )
    tiny = dict(hidden_channels=16, num_layers=2, num_rbf=8)
    tabulatable = True
    needs_reverse_edges = True  # the radial networks run once per atom pair (reverse_pairs)

    def __init__(
        self,
        *,
        cutoff: float = 4.5,
        elements: Sequence[int] = (1, 6, 7, 8),
        hidden_channels: int = 128,
        num_layers: int = 2,
        num_rbf: int = 32,
        activation: str = "silu",
        equivariance_invariance_group: str = "O(3)",
        trainable_rbf: bool = False,
        self_loops: bool = True,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
        charge_head: bool = False,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if equivariance_invariance_group not in GROUPS:
            raise ValueError(f"equivariance_invariance_group must be 'O(3)' or 'SO(3)', got {equivariance_invariance_group!r}")
        if hidden_channels < 2 or num_layers < 0 or num_rbf < 1:
            raise ValueError(
                f"need hidden_channels >= 2, num_layers >= 0, num_rbf >= 1; got {hidden_channels}, {num_layers}, {num_rbf}"
            )
        act = ACTIVATIONS[activation]
        F = hidden_channels
        self.hidden_channels = F
        self.num_layers = num_layers
        self.group = equivariance_invariance_group
        self.self_loops = self_loops
        self.radial_basis = ExpNormalRBF(num_rbf, cutoff, trainable=trainable_rbf)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.embedding = TensorEmbedding(F, num_rbf, self.num_elements, act)
        self.interactions = nn.ModuleList(TensorInteraction(F, num_rbf, act, self.group) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(3 * F)
        self.out_linear = nn.Linear(3 * F, F)
        self.out_activation = act()
        self.readout = nn.Sequential(nn.Linear(F, F // 2), act(), nn.Linear(F // 2, 1))
        self.add_electronic_blocks(F, charge_embedding, spin_embedding, charge_head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters") and not isinstance(module, ExpNormalRBF):
                module.reset_parameters()
        for layer in self.readout:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def radial_network(self, r: Tensor) -> Tensor:
        """The embedding's and every interaction's radial network times the cosine cutoff, side by side:
        ``r`` [P] → [P, (1 + num_layers) 3F] (what ``tabulate_radial`` tabulates; SiLU by
        ``equinnp.nn.activations.sequential_forward_ad``)."""
        rbf, cutoff = self.radial_basis(r), self.cutoff_fn(r).unsqueeze(-1)  # [P, K], [P, 1]
        nets = [self.embedding.distance_proj(rbf)] + [sequential_forward_ad(layer.edge_net, rbf) for layer in self.interactions]
        return torch.cat(nets, dim=-1) * cutoff

    def radial_modules(self) -> list:
        return [self.radial_basis, self.cutoff_fn, self.embedding.distance_proj] + [layer.edge_net for layer in self.interactions]

    def features(self, graph: Graph) -> list:
        """Atomic tensors after the embedding and after each interaction, as irreps coefficients.

        Shapes: → ``num_layers + 1`` tensors [N, 9, F] (``0e + 1o + 2e`` per channel for O(3)).
        """
        length = graph.edge_length
        unit = -graph.edge_vec / length.clamp(min=1e-12).unsqueeze(-1)  # [E, 3] center minus neighbor
        Q = change_of_basis(unit.dtype, unit.device)  # [9, 3, 3]
        j, i = graph.edge_index
        if graph.reverse_edge is None:  # a graph built by hand: every edge on its own
            pair, edges = None, EdgeSet.from_index(j, i)
        else:  # edges come sorted by center: in edge order, their reverses are sorted by neighbor
            pair, edges = reverse_pairs(graph.reverse_edge), EdgeSet.from_reverse(j, i, graph.reverse_edge)
        pair_length = length if pair is None else length[pair.first]  # [P] one per atom pair
        rbf = self.radial_basis(pair_length)  # [P, K]
        cutoff = self.cutoff_fn(pair_length)  # [P]
        self_rbf = self.radial_basis(length.new_zeros(1)) if self.self_loops else None  # [1, K]
        # the radial networks times the cutoff, [P, 3F] each: by the table (inference option), else in the layers
        radials = [None] * (1 + len(self.interactions))
        if self.uses_table():
            radials = self.radial_parts(pair_length, 3 * self.hidden_channels)
        x = self.embedding(graph.species, graph.edge_index, rbf, cutoff, edge_basis(unit, Q), pair, self_rbf, radials[0])
        if self.electronic_embedding is not None:  # the totals into the invariant (0e) coefficient, index 0
            x = torch.cat([self.embed_totals(x[:, 0], graph).unsqueeze(1), x[:, 1:]], dim=1)  # [N, 9, F]
        states = [x]
        for interaction, radial in zip(self.interactions, radials[1:]):
            x = interaction(x, graph.edge_index, rbf, cutoff, Q, pair, self_rbf, edges, radial)
            states.append(x)
        return states

    def forward(self, graph: Graph) -> AtomicOutput:
        x = self.features(graph)[-1]  # [N, 9, F]
        norms = squared_norms(x).reshape(x.shape[0], 3 * self.hidden_channels)  # [N, 3F]: I | A | S
        h = self.out_activation(self.out_linear(self.out_norm(norms)))  # [N, F]
        return self.atomic_output(self.readout(h).squeeze(-1), h)  # [N]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"group={self.group}, cutoff={self.cutoff:g}, elements={self.elements})"
        )
