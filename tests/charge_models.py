"""Test helpers: a core network with fixed per-element charges, and potentials around it.

``FixedCharges`` predicts zero atomic energy and the charge of each element
from a table, so that a potential around it gives exactly the energy of its
physics terms for known point charges (ions of rock salt, two charges).
"""

import torch
from torch import nn

import equinnp
from equinnp.models.base import AtomicOutput, AtomisticModel
from equinnp.postprocessing import ElementScaleShift, UniformChargeConservation


class FixedCharges(AtomisticModel):
    """Zero energy and charge ``charges[k]`` on every atom of ``elements[k]``."""

    outputs = ("energy", "charges")

    def __init__(self, *, cutoff: float = 2.0, elements=(11, 17), charges=(1.0, -1.0)):
        super().__init__(cutoff=cutoff, elements=elements)
        self.register_buffer("table", torch.tensor(charges, dtype=torch.float64))
        self.unused = nn.Parameter(torch.zeros(1, dtype=torch.float64))  # gives the potential its dtype

    def forward(self, graph):
        energy = graph.pos.new_zeros(graph.z.shape[0]) + 0.0 * self.unused
        return AtomicOutput(energy=energy, charges=self.table.to(graph.pos.dtype)[graph.species])


def fixed_charge_potential(terms, elements=(11, 17), charges=(1.0, -1.0), cutoff: float = 2.0, conserve: bool = False):
    """A float64 potential of ``FixedCharges`` with the energy terms ``terms`` (EnergyTerm instances) only."""
    model = FixedCharges(cutoff=cutoff, elements=elements, charges=charges)
    transforms = [ElementScaleShift(len(elements))] + ([UniformChargeConservation()] if conserve else [])
    return equinnp.Potential(model, architecture="fixed_charges", transforms=transforms, energy_terms=list(terms)).double()
