"""AIMNet2 (Anstine, Zubatyuk & Isayev, Chem. Sci. 16, 10228 (2025)).

Layout and equations follow the authors' ``aimnet`` package (0.2.6,
``aimnet/models/aimnet2.py`` with the packaged ``aimnet2.yaml``); the blocks are
in ``equinnp.nn.aimnet2_layers``. The long-range Coulomb term (full minus the
enveloped short range) is the potential's ``coulomb`` energy term with
``shielding: aimnet2`` (``configs/aimnet2.yaml``); the differences from the
package are listed in ``docs/models/aimnet2.md``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn.aimnet2_layers import (
    AIMNet2AEV,
    NeighborSlots,
    ScalarVectorConvolution,
    aimnet_mlp,
    neural_charge_equilibration,
)
from equinnp.nn.scatter import scatter_sum

__all__ = ["AIMNet2"]

PACKAGED_HIDDEN = ((512, 380), (512, 380), (512, 380, 380))


class AIMNet2(AtomisticModel):
    r"""AIMNet2: passes that update atom features and charges from their environment, then an energy MLP.

    Atom features :math:`a_i \in \mathbb R^{F \times G}` start from an element embedding.
    Pass k reads :math:`x_i = [a_i \,\|\, \mathrm{ConvSV}_a(a)_i]` (k = 0) or
    :math:`x_i = [a_i \,\|\, \mathrm{ConvSV}_a(a)_i \,\|\, q_i \,\|\, \mathrm{ConvSV}_q(q)_i]` (k ≥ 1),
    with ``ScalarVectorConvolution`` over the AEV (``AIMNet2AEV``), and its MLP gives

    .. math::
        [\Delta q_i, \tilde f_i, \Delta a_i] = \mathrm{MLP}_k(x_i), \qquad
        \tilde q_i = \begin{cases} \Delta q_i & k = 0 \\ q_i + \Delta q_i & k \ge 1 \end{cases}, \qquad
        q \leftarrow \mathrm{NQE}(\tilde q, \tilde f^{\,2}, Q), \qquad a_i \leftarrow a_i + \Delta a_i

    (NQE: ``neural_charge_equilibration``). The last pass gives the AIM vector
    :math:`h_i = \mathrm{MLP}_{K-1}(x_i)` and no charges, so the final charges are those of
    pass K-2. The atomic energy is :math:`E_i = \mathrm{MLP}_E(h_i) + s_{Z_i}` with a learned
    per-element shift s (aimnet ``AtomicShift``). GELU (exact) throughout; the MLP of pass 0
    and the energy MLP end linear, the others end with GELU.

    ``AtomicOutput.charges`` are the final charges (float64; they sum to the total charge).
    After every forward, ``self.pass_charges`` holds the charges after each charge
    pass ([N] per pass), ``self.raw_charges`` the charges :math:`\tilde q` before the correction
    of each pass ([N]; aimnet's ``charges_pre``), ``self.charge_excess`` :math:`Q - \sum \tilde q` of each pass ([B]; aimnet's
    ``_delta_Q`` for a training penalty), ``self.aim`` the AIM vectors [N, aim_size] and, with two
    charge channels, ``self.spin_charges`` :math:`q^\alpha - q^\beta` [N].

    Parameters
    ----------
    cutoff : float
        AEV cutoff (Å; aimnet ``rc_s``: 5.0).
    elements : sequence of int
        Atomic numbers the model accepts.
    num_features : int
        F (aimnet ``nfeature``: 16).
    num_shifts : int
        G, Gaussians of the AEV (``nshifts_s``: 16); the features are F × G (``d2features``).
    rmin : float
        First Gaussian centre (Å; 0.8).
    num_vector_combinations : int
        H, learned combinations of the vector features (``ncomb_v``: 12).
    hidden : sequence of sequences of int
        Hidden sizes of each pass's MLP (packaged: [[512, 380], [512, 380], [512, 380, 380]]);
        their number is the number of passes (at least 2).
    aim_size : int
        Width of the AIM vector (256).
    output_hidden : sequence of int
        Hidden sizes of the energy MLP ([128, 128]).
    num_charge_channels : int
        1: closed shell; 2: the two spin channels of aimnet's open-shell NSE,
        :math:`Q_{\alpha,\beta} = \tfrac12(Q \pm (M - 1))` with M the multiplicity (``graph.spin``).
    exact_charge_conservation : bool
        The charge correction conserves the total charge exactly (default) or in
        aimnet's form, up to ε of the excess (``neural_charge_equilibration``).
    charge_epsilon : float
        ε of the charge correction (1e-6).
    float32_constants : bool
        AEV shifts and η rounded to float32, as aimnet stores them.
    charge_required : bool
        Refuse a batch without ``data.charge`` (default); False: a missing total charge is 0.
    charge_head : bool
        Report the charges (``outputs`` includes "charges"); the passes use them either way.
    charge_embedding, spin_embedding : bool
        Add equinnp's total charge / spin embedding to the initial features (not in AIMNet2; off).

    Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N], ``charges`` [N] float64.
    """

    paper = ("Anstine, Zubatyuk & Isayev, AIMNet2: a neural network potential to meet your neutral, charged, "
             "organic, and elemental-organic needs, Chem. Sci. 16, 10228 (2025)")
    tiny = dict(num_features=4, num_shifts=4, num_vector_combinations=3, hidden=[[16, 12], [16, 12], [16, 12, 12]],
                aim_size=8, output_hidden=[8], charge_required=False)
    requires_charge = True
    outputs = ("energy", "charges")

    def __init__(
        self,
        *,
        cutoff: float = 5.0,
        elements: Sequence[int] = (1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 53),
        num_features: int = 16,
        num_shifts: int = 16,
        rmin: float = 0.8,
        num_vector_combinations: int = 12,
        hidden: Sequence[Sequence[int]] = PACKAGED_HIDDEN,
        aim_size: int = 256,
        output_hidden: Sequence[int] = (128, 128),
        num_charge_channels: int = 1,
        exact_charge_conservation: bool = True,
        charge_epsilon: float = 1e-6,
        float32_constants: bool = True,
        charge_required: bool = True,
        charge_head: bool = True,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        for name, value in (("num_features", num_features), ("num_shifts", num_shifts),
                            ("num_vector_combinations", num_vector_combinations), ("aim_size", aim_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"AIMNet2: {name} must be a positive integer, got {value!r}")
        if num_charge_channels not in (1, 2):
            raise ValueError(f"AIMNet2: num_charge_channels must be 1 (closed shell) or 2 (spin channels), got {num_charge_channels!r}")
        hidden = [list(h) for h in hidden]
        if len(hidden) < 2:
            raise ValueError(f"AIMNet2: hidden needs one list of sizes per pass, at least 2 passes, got {hidden!r}")
        if not charge_epsilon > 0:
            raise ValueError(f"AIMNet2: charge_epsilon must be positive, got {charge_epsilon}")
        self.num_features, self.num_shifts, self.num_channels = int(num_features), int(num_shifts), int(num_charge_channels)
        self.exact_charge_conservation = bool(exact_charge_conservation)
        self.charge_epsilon = float(charge_epsilon)
        width = self.num_features * self.num_shifts  # F·G
        self.embedding = nn.Embedding(self.num_elements, width)  # rows by species; feature-major over shifts
        self.aev = AIMNet2AEV(cutoff, num_shifts, rmin, float32_constants)
        self.conv_a = ScalarVectorConvolution(num_features, num_shifts, num_vector_combinations, per_shift=True)
        self.conv_q = ScalarVectorConvolution(num_charge_channels, num_shifts, num_vector_combinations, per_shift=False)
        first_in = width + self.conv_a.output_size
        later_in = first_in + num_charge_channels + self.conv_q.output_size
        update = width + 2 * num_charge_channels
        self.passes = nn.ModuleList(
            [aimnet_mlp([first_in, *hidden[0], update], last_linear=True)]
            + [aimnet_mlp([later_in, *h, update], last_linear=False) for h in hidden[1:-1]]
            + [aimnet_mlp([later_in, *hidden[-1], aim_size], last_linear=False)]
        )
        self.energy_mlp = aimnet_mlp([aim_size, *output_hidden, 1], last_linear=True)
        self.energy_shift = nn.Parameter(torch.zeros(self.num_elements))
        self.add_electronic_blocks(width, charge_embedding, spin_embedding, charge_head=False)
        self.requires_charge = bool(charge_required) or bool(charge_embedding)
        self.requires_spin = self.num_channels == 2 or bool(spin_embedding)
        self.reports_charges = bool(charge_head)
        self.outputs = ("energy", "charges") if charge_head else ("energy",)
        self.pass_charges: List[Tensor] = []
        self.raw_charges: List[Tensor] = []
        self.charge_excess: List[Tensor] = []
        self.aim: Optional[Tensor] = None
        self.spin_charges: Optional[Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # aimnet: orthogonal rows of F, repeated over the G shifts
        rows = torch.empty(self.num_elements, self.num_features)
        nn.init.orthogonal_(rows)
        with torch.no_grad():
            self.embedding.weight.copy_(rows.unsqueeze(-1).expand(-1, -1, self.num_shifts).reshape(self.num_elements, -1))
            self.energy_shift.zero_()
        self.conv_a.reset_parameters()
        self.conv_q.reset_parameters()
        for mlp in (*self.passes, self.energy_mlp):
            for layer in mlp:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_normal_(layer.weight)
                    nn.init.zeros_(layer.bias)
        if self.electronic_embedding is not None:
            self.electronic_embedding.reset_parameters()

    def _channel_totals(self, graph: Graph) -> Tensor:
        """Total charge of each channel [B, C]: Q, or :math:`\\tfrac12(Q \\pm (M - 1))` for two spin channels."""
        charge = graph.charge.double()  # [B]
        if self.num_channels == 1:
            return charge.unsqueeze(-1)
        half_spin = 0.5 * (graph.spin.double() - 1.0)
        return torch.stack([0.5 * charge + half_spin, 0.5 * charge - half_spin], dim=-1)  # [B, 2]

    def forward(self, graph: Graph) -> AtomicOutput:
        n, c = graph.species.shape[0], self.num_channels
        a = self.embed_totals(self.embedding(graph.species), graph)  # [N, F·G]
        slots = NeighborSlots.of(graph.edge_index, n)
        g = slots.scatter(self.aev(graph.edge_vec, graph.edge_length))  # [N, M, G, 4]
        totals = self._channel_totals(graph)  # [B, C]
        charges = torch.zeros(n, c, dtype=torch.float64, device=a.device)  # [N, C]
        weights = torch.zeros_like(charges)
        self.pass_charges, self.raw_charges, self.charge_excess = [], [], []
        last = len(self.passes) - 1
        for k, mlp in enumerate(self.passes):
            x = torch.cat([a, self.conv_a(a, slots, g)], dim=-1)  # [N, F·G + F·(G+H)]
            if k > 0:
                q = charges.to(a.dtype)
                x = torch.cat([x, q, self.conv_q(q, slots, g)], dim=-1)  # [N, ... + C + C·(G+H)]
            out = mlp(x)
            if k == last:
                break
            delta_q, raw_weight, delta_a = out.split([c, c, out.shape[-1] - 2 * c], dim=-1)
            raw = delta_q.double() if k == 0 else charges + delta_q.double()  # [N, C]
            self.raw_charges.append(raw.sum(-1))
            self.charge_excess.append(totals - scatter_sum(raw, graph.batch, graph.num_graphs))  # [B, C]
            weights = raw_weight.square()  # [N, C]
            charges = neural_charge_equilibration(raw, weights, totals, graph.batch, graph.num_graphs,
                                                  self.charge_epsilon, self.exact_charge_conservation)  # [N, C]
            self.pass_charges.append(charges.sum(-1))
            a = a + delta_a
        self.aim = out  # [N, aim_size]
        energy = self.energy_mlp(out).squeeze(-1) + self.energy_shift[graph.species]  # [N]
        self.spin_charges = charges[:, 0] - charges[:, 1] if c == 2 else None
        if not self.reports_charges:
            return AtomicOutput(energy=energy)
        return AtomicOutput(energy=energy, charges=charges.sum(-1), charge_weights=weights.sum(-1).to(energy.dtype))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_features={self.num_features}, num_shifts={self.num_shifts}, "
                f"passes={len(self.passes)}, cutoff={self.cutoff:g}, elements={self.elements})")
