"""The two kinds of postprocessing stage that follow the core network.

``Potential`` runs, in this order:

1. **transforms** (:class:`AtomicTransform`) of the per-atom outputs, one after
   the other: per-element scale and shift of the atomic energy, and (for models
   that predict charges) charge conservation;
2. **energy terms** (:class:`EnergyTerm`), each independent of the others: a
   per-atom energy [N] (float64) added to the network's. Their order cannot
   matter; each is reported separately in ``PotentialOutput.energy_terms``.

Every stage has a registry name (``name``), is rebuilt by ``load_potential``
from ``config()``, keeps its data-dependent constants in buffers (saved with
the weights) and fits them in ``fit`` (reached through ``Potential.fit``).
An energy term that needs pairs declares its ``cutoff``; the potential then
searches neighbors once at the largest cutoff of all consumers and hands each
term the pairs within its own.
"""

from __future__ import annotations

from typing import ClassVar, Optional, Sequence

from torch import Tensor, nn

__all__ = ["AtomicTransform", "EnergyTerm"]


class _Stage(nn.Module):
    name: ClassVar[str] = ""
    #: ``Potential.fit`` keyword arguments this stage takes (passed to :meth:`fit` by name).
    fit_options: ClassVar[Sequence[str]] = ()

    @classmethod
    def from_config(cls, elements: Sequence[int], **config) -> "_Stage":
        """Build from the model's elements and the options ``config()`` returned."""
        return cls(elements, **config)

    def config(self) -> dict:
        """Constructor arguments besides ``elements`` (plain values), saved in a potential's config."""
        return {}

    def fit(self, statistics, fitted: dict, **options) -> dict:
        """Set data-dependent constants from an ``equinnp.data.DatasetStatistics``.

        ``fitted`` holds what earlier stages set (energy terms are fitted before
        transforms, so a scale can use the reference energies). Returns what
        this stage set (name → plain value).
        """
        return {}


class AtomicTransform(_Stage):
    """Maps the core network's ``AtomicOutput`` to another ``AtomicOutput``.

    Shapes: ``forward(atomic, graph)``: ``atomic.energy`` [N] → [N] (float64 after the scale).
    """

    def forward(self, atomic, graph):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(atomic, graph)")


class EnergyTerm(_Stage):
    """An additive per-atom energy (eV, float64) computed from the graph and the network's outputs.

    ``cutoff`` (Å) is the radius of the pairs the term needs, or None when it
    needs none (atomic reference energies). ``graph`` holds exactly the pairs
    within ``cutoff``.

    Shapes: ``forward(graph, atomic)`` → [N] float64.
    """

    cutoff: Optional[float] = None

    def forward(self, graph, atomic) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(graph, atomic)")
