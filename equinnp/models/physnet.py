"""PhysNet (Unke & Meuwly, J. Chem. Theory Comput. 15, 3678 (2019)).

Layout and equations follow the authors' TensorFlow code (MMunibas/PhysNet,
``neural_network/NeuralNetwork.py``), which agrees with the paper; the blocks
are in ``equinnp.nn.physnet_layers``. Electrostatics (shielded Coulomb), the
uniform charge correction, D3 and the per-element energy scale and shift are
postprocessing of the potential (``configs/physnet.yaml``); differences from
the TF code are listed in ``docs/models/physnet.md``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn.physnet_layers import PhysNetInteractionBlock, PhysNetOutputBlock, PhysNetRBF, nonhierarchicality_penalty

__all__ = ["PhysNet"]


class PhysNet(AtomisticModel):
    r"""PhysNet: modules of interaction and output blocks whose atomic energies and charges are summed.

    .. math::
        x_i^{(0)} = e_{Z_i}, \qquad
        x^{(m)} = \mathrm{InteractionBlock}^{(m)}(x^{(m-1)}, g), \qquad
        (E_i^m, q_i^m) = \mathrm{OutputBlock}^{(m)}(x^{(m)}),

    .. math::
        \epsilon_i = \sum_{m=1}^{M} E_i^m, \qquad
        \tilde q_i = s^q_{Z_i} \sum_{m=1}^{M} q_i^m + b^q_{Z_i}

    with g the exponential radial basis (``PhysNetRBF``). The per-element energy
    scale and shift :math:`E_i = s^E_{Z_i} \epsilon_i + b^E_{Z_i}` are the
    potential's ``scale_shift`` transform (fitted buffers; learned variables in
    the TF code); the charge scale :math:`s^q` (ones) and shift :math:`b^q`
    (zeros) are learned parameters here, as in the TF code. ``AtomicOutput.charges``
    holds :math:`\tilde q`; the ``uniform_charges`` transform then gives
    :math:`q_i = \tilde q_i + (Q - \sum_j \tilde q_j)/N`.

    ``charge_weights`` are all ones, so that ``weighted_charges`` reduces to the
    same uniform correction (PhysNet has no per-atom weights).

    After every forward, two attributes hold that batch's per-module results
    (tensors in the autograd graph, replaced at the next forward):

    - ``self.module_outputs`` [M, N, 2]: :math:`(E_i^m, q_i^m)` of every module m
      (before the charge scale and shift; the energies before ``scale_shift``);
    - ``self.nonhierarchicality`` (scalar): the non-hierarchicality penalty of
      the batch (``equinnp.nn.physnet_layers.nonhierarchicality_penalty``).
      ``equinnp train`` adds :math:`\lambda_\text{nh}` times it to the training
      loss with ``training.loss.nonhierarchicality: 0.01`` (the paper's weight;
      0, the default, leaves it out).

    Parameters
    ----------
    cutoff : float
        Cutoff of the network (paper: 10 Å).
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_channels : int
        Feature size F (paper: 128).
    num_rbf : int
        Number of radial basis functions K (paper: 64).
    num_modules : int
        Number of modules M (paper: 5).
    num_residual_atomic, num_residual_interaction, num_residual_output : int
        Residual layers after each interaction layer, inside it, and in each
        output block (paper: 2, 3, 1).
    charge_head : bool
        Report the atomic charges (PhysNet's second output column; on by
        default, as in the paper): ``outputs`` then includes "charges". Pair it
        with ``uniform_charges``. Off, the model predicts energies only.
    charge_embedding, spin_embedding : bool
        Add the total charge / spin multiplicity to the initial features
        (``equinnp.nn.TotalChargeSpinEmbedding``; not in PhysNet, off by default).

    Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N], ``charges`` [N].
    """

    paper = ("Unke & Meuwly, PhysNet: A Neural Network for Predicting Energies, Forces, Dipole Moments, "
             "and Partial Charges, J. Chem. Theory Comput. 15, 3678 (2019)")
    tiny = dict(hidden_channels=16, num_rbf=8, num_modules=2, num_residual_atomic=1, num_residual_interaction=1,
                num_residual_output=1)
    outputs = ("energy", "charges")

    def __init__(
        self,
        *,
        cutoff: float = 10.0,
        elements: Sequence[int] = (1, 6, 7, 8),
        hidden_channels: int = 128,
        num_rbf: int = 64,
        num_modules: int = 5,
        num_residual_atomic: int = 2,
        num_residual_interaction: int = 3,
        num_residual_output: int = 1,
        charge_head: bool = True,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        for name, value, minimum in (("hidden_channels", hidden_channels, 1), ("num_rbf", num_rbf, 1),
                                     ("num_modules", num_modules, 1), ("num_residual_atomic", num_residual_atomic, 0),
                                     ("num_residual_interaction", num_residual_interaction, 0),
                                     ("num_residual_output", num_residual_output, 0)):
            if int(value) != value or value < minimum:
                raise ValueError(f"PhysNet: {name} must be an integer >= {minimum}, got {value!r}")
        self.hidden_channels = hidden_channels
        self.embedding = nn.Embedding(self.num_elements, hidden_channels)
        self.rbf = PhysNetRBF(num_rbf, cutoff)
        self.interactions = nn.ModuleList(
            PhysNetInteractionBlock(hidden_channels, num_rbf, num_residual_interaction, num_residual_atomic)
            for _ in range(num_modules)
        )
        self.output_blocks = nn.ModuleList(PhysNetOutputBlock(hidden_channels, num_residual_output) for _ in range(num_modules))
        self.charge_scale = nn.Parameter(torch.empty(self.num_elements))
        self.charge_shift = nn.Parameter(torch.empty(self.num_elements))
        # the total charge/spin embedding only; PhysNet's charges come from its output blocks
        self.add_electronic_blocks(hidden_channels, charge_embedding, spin_embedding, charge_head=False)
        self.predicts_charges = bool(charge_head)
        self.outputs = ("energy", "charges") if charge_head else ("energy",)
        self.nonhierarchicality: Optional[Tensor] = None
        self.module_outputs: Optional[Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.embedding.weight, -math.sqrt(3.0), math.sqrt(3.0))
        self.rbf.reset_parameters()
        for block in (*self.interactions, *self.output_blocks):
            block.reset_parameters()
        nn.init.ones_(self.charge_scale)
        nn.init.zeros_(self.charge_shift)
        if self.electronic_embedding is not None:
            self.electronic_embedding.reset_parameters()

    def forward(self, graph: Graph) -> AtomicOutput:
        x = self.embedding(graph.species)  # [N, F]
        x = self.embed_totals(x, graph)  # [N, F]
        rbf = self.rbf(graph.edge_length)  # [E, K]
        module_outputs = []
        for interaction, output_block in zip(self.interactions, self.output_blocks):
            x = interaction(x, graph.edge_index, rbf)  # [N, F]
            module_outputs.append(output_block(x))  # [N, 2]
        self.nonhierarchicality = nonhierarchicality_penalty(module_outputs)
        self.module_outputs = torch.stack(module_outputs)  # [M, N, 2]
        summed = self.module_outputs.sum(0)  # [N, 2]
        energy = summed[:, 0]  # [N]
        if not self.predicts_charges:
            return AtomicOutput(energy=energy)
        charges = self.charge_scale[graph.species] * summed[:, 1] + self.charge_shift[graph.species]  # [N]
        return AtomicOutput(energy=energy, charges=charges, charge_weights=torch.ones_like(charges))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_channels={self.hidden_channels}, num_modules={len(self.interactions)}, "
            f"num_rbf={self.rbf.num_rbf}, cutoff={self.cutoff:g}, elements={self.elements})"
        )
