"""The interface between ``Potential`` and a core network.

A core network receives a :class:`Graph` (atoms, edges and their vectors,
already computed by the potential so that autograd sees them) and returns an
:class:`AtomicOutput` with one energy contribution per atom. It never calls
autograd and never sums over systems: both belong to ``Potential``.
"""

from __future__ import annotations

import functools
import inspect
from typing import ClassVar, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["Graph", "AtomicOutput", "AtomisticModel"]


class Graph(NamedTuple):
    """Input of a core network.

    Attributes
    ----------
    species : Tensor, [N] long
        Index of each atom's element in the model's ``elements`` (0..K-1).
    z : Tensor, [N] long
        Atomic numbers.
    pos : Tensor, [N, 3]
        Positions (Å), possibly strained for the stress derivative.
    edge_index : Tensor, [2, E] long
        ``edge_index[0] = j`` (neighbor), ``edge_index[1] = i`` (center). Edges
        come sorted by center, then neighbor, then shift, and every edge's
        reverse is present.
    edge_vec : Tensor, [E, 3]
        ``r_ij = pos[j] - pos[i] + shift_ij`` (Å), ``shift_ij = cell_shifts @ cell[batch[i]]``.
    edge_length : Tensor, [E]
        ``|r_ij|`` (Å), all within the consumer's cutoff.
    batch : Tensor, [N] long
        System index of each atom.
    num_graphs : int
        Number of systems B.
    charge : Tensor, [B]
        Total charge (e) per system; 0 where the data gives none.
    spin : Tensor, [B]
        Spin multiplicity 2S+1 per system; 1 where the data gives none.
    cell_shifts : Tensor, [E, 3]
        Integer lattice-vector multiples of each edge's image (zeros without periodicity).
    cell, pbc : Tensor, [B, 3, 3] and [B, 3] bool, or None
        Lattice vectors as rows and periodic directions; None when no system is periodic.
    reverse_edge : Tensor, [E] long, or None
        Index of the edge (i → j, -shift) of each edge (j → i, shift): exact in
        cells shorter than the cutoff. Computed for models that declare
        ``needs_reverse_edges``; None otherwise.
    """

    species: Tensor
    z: Tensor
    pos: Tensor
    edge_index: Tensor
    edge_vec: Tensor
    edge_length: Tensor
    batch: Tensor
    num_graphs: int
    charge: Optional[Tensor] = None
    spin: Optional[Tensor] = None
    cell_shifts: Optional[Tensor] = None
    cell: Optional[Tensor] = None
    pbc: Optional[Tensor] = None
    reverse_edge: Optional[Tensor] = None

    def within(self, cutoff: float) -> "Graph":
        """The same graph with only the pairs of length <= ``cutoff`` (a mask; edge order kept,
        ``reverse_edge`` renumbered). Returns ``self`` when every pair is within it."""
        keep = self.edge_length <= cutoff  # [E]
        if bool(keep.all()):
            return self
        reverse = None
        if self.reverse_edge is not None:
            new_index = torch.cumsum(keep, 0) - 1  # [E] position of each kept edge
            reverse = new_index[self.reverse_edge[keep]]
        return self._replace(
            edge_index=self.edge_index[:, keep],
            edge_vec=self.edge_vec[keep],
            edge_length=self.edge_length[keep],
            cell_shifts=None if self.cell_shifts is None else self.cell_shifts[keep],
            reverse_edge=reverse,
        )


class AtomicOutput(NamedTuple):
    """Output of a core network.

    Attributes
    ----------
    energy : Tensor, [N]
        Per-atom energy contribution before scale, shift and reference energies.
    charges : Tensor, [N], optional
        Partial charges (e), for models that predict them (before the
        charge-conservation transform of the potential, after it in what the
        energy terms see).
    charge_weights : Tensor, [N], optional
        Non-negative share of each atom in the weighted charge correction
        (``equinnp.postprocessing.charges.WeightedChargeConservation``).
    member_energies : Tensor, [N, M], optional
        Per-atom energy of each of the M members of an ensemble (``energy`` is
        their mean), for ensemble models (ANI-2x); transformed like ``energy``.
    """

    energy: Tensor
    charges: Optional[Tensor] = None
    charge_weights: Optional[Tensor] = None
    member_energies: Optional[Tensor] = None


def _plain(value):
    """Tuples → lists, recursively, so hyperparameters round-trip through YAML and torch.save."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class AtomisticModel(nn.Module):
    """Base class of every architecture in ``equinnp.ARCHITECTURES``.

    Subclasses take keyword-only hyperparameters, always including ``cutoff``
    (Å) and ``elements`` (the atomic numbers the model accepts), and define:

    - ``paper``: the citation shown by ``equinnp models``;
    - ``tiny``: a small hyperparameter set for fast tests;
    - ``forward(graph: Graph) -> AtomicOutput``;
    - optionally ``fit(statistics) -> dict`` for constants taken from the training
      data (MACE's average neighbor count), reached through ``Potential.fit``.

    The constructor arguments are recorded in ``self.hyperparameters`` so that a
    saved potential can be rebuilt.
    """

    paper: ClassVar[str] = ""
    tiny: ClassVar[dict] = {}
    #: The model reads ``graph.charge`` / ``graph.spin``: a batch without them is refused.
    #: Architectures with a charge/spin embedding option set these per instance
    #: (:meth:`add_electronic_blocks`); read them from the instance, not the class.
    requires_charge: ClassVar[bool] = False
    requires_spin: ClassVar[bool] = False
    #: The model reads ``graph.reverse_edge`` (computed only for models that declare it).
    needs_reverse_edges: ClassVar[bool] = False
    #: Per-atom outputs the model predicts (fields of ``AtomicOutput``); "charges" is
    #: added per instance by the charge-head option (:meth:`add_electronic_blocks`).
    outputs: ClassVar[Tuple[str, ...]] = ("energy",)
    #: Values of hyperparameters added after a release, for saved configs that lack them,
    #: so that a file keeps the layout it was trained with (``load_potential``).
    legacy_hyperparameters: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        # Record every constructor argument (defaults filled in) as plain values in
        # ``self.hyperparameters``, so that ``Potential.save`` can rebuild the model.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            init(self, *args, **kw)
            if type(self) is cls:
                bound = inspect.signature(init).bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                self.hyperparameters = {k: _plain(v) for k, v in arguments.items()}

        cls.__init__ = recording_init

    def __init__(self, *, cutoff: float, elements: Sequence[int]):
        super().__init__()
        elements = [int(e) for e in elements]
        if not elements:
            raise ValueError("elements must list at least one atomic number")
        if len(set(elements)) != len(elements):
            raise ValueError(f"elements has duplicates: {elements}")
        if any(e < 1 or e > 118 for e in elements):
            raise ValueError(f"elements must be atomic numbers 1..118, got {elements}")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.cutoff = float(cutoff)
        self.elements = elements
        self.num_elements = len(elements)

    def add_electronic_blocks(self, hidden_channels: int, charge_embedding: bool, spin_embedding: bool, charge_head: bool) -> None:
        """The total charge/spin embedding and charge head options (``equinnp.nn.electronic``).

        Sets, on this instance, ``requires_charge``/``requires_spin`` (the
        potential then refuses a batch without ``charge``/``spin``) and
        ``outputs`` (with "charges" when the head is on); creates the
        submodules ``electronic_embedding`` and ``charge_head`` only when
        enabled, so that files saved without these options load unchanged.
        Architectures call :meth:`embed_totals` on their initial scalar
        features and :meth:`atomic_output` on their final ones.
        """
        from equinnp.nn.electronic import ChargeHead, TotalChargeSpinEmbedding

        cls = type(self)
        self.requires_charge = cls.requires_charge or bool(charge_embedding)
        self.requires_spin = cls.requires_spin or bool(spin_embedding)
        self.outputs = tuple(cls.outputs) + (("charges",) if charge_head and "charges" not in cls.outputs else ())
        self.electronic_embedding = (
            TotalChargeSpinEmbedding(self.num_elements, hidden_channels, bool(charge_embedding), bool(spin_embedding))
            if charge_embedding or spin_embedding
            else None
        )
        self.charge_head = ChargeHead(hidden_channels) if charge_head else None

    def embed_totals(self, h: Tensor, graph: Graph) -> Tensor:
        """``h`` [N, F] plus the total charge/spin embedding when enabled."""
        if self.electronic_embedding is None:
            return h
        return self.electronic_embedding(h, graph.species, graph.charge, graph.spin, graph.batch)  # [N, F]

    def atomic_output(self, energy: Tensor, h: Tensor) -> AtomicOutput:
        """The per-atom energy [N] with the charge head's charges and weights from ``h`` [N, F] when enabled."""
        if self.charge_head is None:
            return AtomicOutput(energy=energy)
        charges, weights = self.charge_head(h)  # [N], [N]
        return AtomicOutput(energy=energy, charges=charges, charge_weights=weights)

    # ------------------------------------------------------- tabulation
    #: The model has a radial network of the distance alone (:meth:`radial_network`) that
    #: :meth:`tabulate_radial` can replace by a table at inference (``equinnp.nn.tabulation``).
    tabulatable: ClassVar[bool] = False

    def radial_network(self, r: Tensor) -> Tensor:
        """The radial network of the distance, ``r`` [E] → [E, C] (architectures with ``tabulatable``)."""
        raise TypeError(f"{type(self).__name__} has no radial network that equinnp can tabulate")

    def radial_modules(self) -> list:
        """The submodules whose parameters and buffers :meth:`radial_network` reads."""
        raise TypeError(f"{type(self).__name__} has no radial network that equinnp can tabulate")

    def tabulate_radial(self, enabled: bool = True, *, spacing: Optional[float] = None, tolerance: float = 1e-7,
                        degree: int = 5):
        """Evaluate :meth:`radial_network` by a cubic Hermite table in eval mode (``equinnp.nn.tabulation``).

        The table is built on first use and rebuilt whenever the weights it reads
        change; in training mode the network itself runs, so gradients reach its
        weights. ``spacing`` (Å) fixes the knot spacing; by default it is halved
        from 0.01 Å until the measured relative error of the value and the
        derivative is at most ``tolerance``. ``degree``: 5 (quintic Hermite, C2)
        or 3 (cubic Hermite, C1). ``enabled=False`` switches it off.
        Returns the model.
        """
        if not enabled:
            self.tabulation = None
            return self
        if not self.tabulatable:
            raise TypeError(
                f"{type(self).__name__} has no radial network that equinnp can tabulate "
                "(tabulate_radial supports the architectures with tabulatable = True)"
            )
        from equinnp.nn.tabulation import RadialTabulation

        self.tabulation = RadialTabulation(type(self).radial_network, type(self).radial_modules, spacing, tolerance,
                                           degree=degree)
        return self

    def uses_table(self) -> bool:
        """Whether :meth:`radial` reads the table: tabulation on and the model in eval mode."""
        return getattr(self, "tabulation", None) is not None and not self.training

    def radial(self, r: Tensor) -> Tensor:
        """``radial_network(r)`` [E, C]: by the table when :meth:`uses_table`."""
        if self.uses_table():
            return self.tabulation.table(self)(r)
        return self.radial_network(r)

    def radial_parts(self, r: Tensor, size) -> Tuple[Tensor, ...]:
        """``radial(r).split(size, dim=-1)`` (one part per layer; ``size`` an int or a list of sizes);
        the table writes the parts as separate tensors, whose gradients need no concatenation in the backward."""
        if self.uses_table():
            return self.tabulation.table(self)(r, size=size)
        return self.radial_network(r).split(size, dim=-1)

    def fit(self, statistics) -> dict:
        """Fit data-dependent constants (not weights) from an ``equinnp.data.DatasetStatistics``.

        Called by ``Potential.fit``. Returns what was set (name → value); the
        base class has nothing to fit.
        """
        return {}

    def forward(self, graph: Graph) -> AtomicOutput:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(graph)")
