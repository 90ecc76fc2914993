r"""Tabulated radial networks: a Hermite table in place of a network of the distance.

Many architectures pass each pair distance through a network of that distance
alone, :math:`r \mapsto W(r) \in \mathbb{R}^C` (SchNet's filter networks times
their cutoff, PaiNN's filters). At inference the weights are fixed, so
:math:`W` can be tabulated once on a fine grid of distances
:math:`r_g = r_0 + g h` (from :data:`TABLE_START` to the cutoff) and
interpolated piecewise by Hermite polynomials (``equinnp.nn.hermite_table``):
quintic by default, from the values, first and second derivatives at the
knots (C2), or cubic from values and first derivatives (C1). The derivatives
are exact, by forward-mode autograd through a float64 copy of the network.
So the interpolant and its derivative are continuous and the forces, which
need :math:`W'`, are too.

The error is :math:`O(h^{n+1})` in the value and :math:`O(h^n)` in the
derivative (n = 5 or 3). It is measured against the network between the knots
when a table is built (:attr:`RadialTable.error`): the largest deviation at
:data:`ERROR_SAMPLES` points inside every interval, over the largest magnitude
on the grid. Without an explicit spacing, :class:`RadialTabulation` halves the
spacing until both are at most its tolerance.

Shapes: distances ``r`` [E] → ``W`` [E, C].
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Dict, List, NamedTuple, Optional

import torch
from torch import Tensor, nn

from equinnp.nn.hermite_table import HermiteTable, evaluate

__all__ = ["RadialTable", "RadialTabulation", "build_table", "TABLE_START"]

#: First knot (Å). The potential refuses pairs closer than 0.1 Å; the range below is never evaluated.
TABLE_START = 0.05
#: Samples per interval at which the error against the network is measured (interior points t = s / (S + 1)).
ERROR_SAMPLES = 3
#: Largest table (coefficients) a refinement may build: 32 MB in float32.
MAX_TABLE_ENTRIES = 8_000_000


def _derivatives(network: Callable[[Tensor], Tensor], r: Tensor, order: int) -> List[Tensor]:
    """``[W(r), W'(r), ...]`` up to ``order``, each [G, C], by forward-mode autograd
    (each output depends on its own ``r`` only, so one pass per order gives every channel)."""
    ones = torch.ones_like(r)

    def first(x):
        return torch.func.jvp(network, (x,), (ones,))[1]

    if order == 1:
        return list(torch.func.jvp(network, (r,), (ones,)))
    return [network(r), *torch.func.jvp(first, (r,), (ones,))]


class RadialTable(NamedTuple):
    """A built table.

    Attributes
    ----------
    interpolant : HermiteTable
        Per-interval coefficients [G - 1, n + 1, C] in the model's dtype, with start, spacing and
        stop (the cutoff), Å.
    error : dict
        ``value`` and ``derivative``: the largest deviation from the network at
        the sampled points between the knots, over the largest magnitude of
        the network's value / derivative on the grid (relative, float64).
    key : tuple
        The state of the weights it was built from (:meth:`RadialTabulation.weights_key`).
    """

    interpolant: HermiteTable
    error: Dict[str, float]
    key: tuple

    def __call__(self, r: Tensor, size: Optional[int] = None):
        """``W(r)`` [E, C] by the interpolant, or C / ``size`` parts [E, size]; exactly 0 at and beyond
        the cutoff, as the envelopes."""
        return self.interpolant(r, size=size)

    @property
    def spacing(self) -> float:
        return self.interpolant.spacing


def build_table(network: Callable[[Tensor], Tensor], stop: float, spacing: float, key: tuple = (),
                dtype: torch.dtype = torch.float64, start: float = TABLE_START, degree: int = 5) -> RadialTable:
    """Tabulate ``network`` (float64, ``r`` [G] → [G, C]) on knots ``start, start + h, ..., stop``
    for Hermite polynomials of ``degree`` 3 (cubic, C1) or 5 (quintic, C2).

    The spacing is rounded down so that ``stop`` is a knot. The error is measured at
    :data:`ERROR_SAMPLES` points inside every interval.
    """
    if not spacing > 0:
        raise ValueError(f"tabulation spacing must be positive (Å), got {spacing}")
    if not stop > start:
        raise ValueError(f"tabulation range is empty: start {start} Å, stop (cutoff) {stop} Å")
    if degree not in (3, 5):
        raise ValueError(f"tabulation degree must be 3 (cubic Hermite) or 5 (quintic Hermite), got {degree}")
    num_intervals = max(1, math.ceil((stop - start) / spacing - 1e-9))
    h = (stop - start) / num_intervals
    knots = start + h * torch.arange(num_intervals + 1, dtype=torch.float64)  # [G]
    # the last knot is the cutoff, where the network switches to 0: take its limits from below there
    below = knots.clone()
    below[-1] = torch.nextafter(below[-1], below.new_zeros(()))
    known = _derivatives(network, below, 1 if degree == 3 else 2)  # [G, C] each
    data = torch.stack([series * h**k for k, series in enumerate(known)], dim=1)  # [G, a, C]
    exact_table = HermiteTable.from_knots(data, start, h, stop)

    fractions = torch.arange(1, ERROR_SAMPLES + 1, dtype=torch.float64) / (ERROR_SAMPLES + 1)  # [S]
    probes = (knots[:-1, None] + h * fractions).reshape(-1)  # [(G-1) S]
    probes = probes[probes < stop]
    exact, exact_derivative = _derivatives(network, probes, 1)  # [P, C]
    error = {
        "value": float((evaluate(probes, exact_table, 0) - exact).abs().max() / known[0].abs().max().clamp(min=1e-300)),
        "derivative": float((evaluate(probes, exact_table, 1) - exact_derivative).abs().max()
                            / known[1].abs().max().clamp(min=1e-300)),
    }
    return RadialTable(HermiteTable.from_knots(data, start, h, stop, dtype), error, key)


class RadialTabulation:
    """The tabulation state of one model: whether it is on, its options and the current table.

    Not an ``nn.Module`` and not part of the ``state_dict``: saved files do not
    hold tables, and a table follows the weights it was built from. Before each
    use, :meth:`table` compares the weights' identity and version counters
    (``data_ptr``, ``_version``, dtype, device) with those the table was built
    from, and rebuilds it when they differ (an optimizer step, ``load_state_dict``,
    ``.to(...)``).

    Parameters
    ----------
    network : callable
        ``(model, r [G]) -> [G, C]``: the radial network of a model (called on a float64 copy of it).
    modules : callable
        ``model -> list of nn.Module`` holding every parameter and buffer the network reads.
    spacing : float, optional
        Knot spacing (Å); None: start at ``initial_spacing`` and halve until the
        measured derivative error is at most ``tolerance``.
    tolerance : float
        Bound on the measured relative error of the derivative (and of the value).
    """

    def __init__(self, network: Callable, modules: Callable, spacing: Optional[float] = None,
                 tolerance: float = 1e-7, initial_spacing: float = 0.05, degree: int = 5):
        if spacing is not None and not spacing > 0:
            raise ValueError(f"tabulation spacing must be positive (Å), got {spacing}")
        if not tolerance > 0:
            raise ValueError(f"tabulation tolerance must be positive, got {tolerance}")
        self.network = network
        self.modules = modules
        self.spacing = spacing
        self.tolerance = tolerance
        self.initial_spacing = initial_spacing
        if degree not in (3, 5):
            raise ValueError(f"tabulation degree must be 3 (cubic Hermite) or 5 (quintic Hermite), got {degree}")
        self.degree = degree
        self.current: Optional[RadialTable] = None
        #: Number of tables built so far.
        self.builds = 0

    def tensors(self, model: nn.Module) -> List[Tensor]:
        return [t for module in self.modules(model) for t in list(module.parameters()) + list(module.buffers())]

    def weights_key(self, model: nn.Module) -> tuple:
        return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in self.tensors(model))

    def table(self, model: nn.Module) -> RadialTable:
        """The table of the current weights (rebuilt when they changed)."""
        key = self.weights_key(model)
        if self.current is None or self.current.key != key:
            self.current = self._build(model, key)
            self.builds += 1
        return self.current

    def _build(self, model: nn.Module, key: tuple) -> RadialTable:
        with torch.inference_mode(False), torch.no_grad():
            copy64 = _float64_copy(model)
            device = self.tensors(model)[0].device
            dtype = self.tensors(model)[0].dtype

            def network(r: Tensor) -> Tensor:
                return self.network(copy64, r)

            spacing = self.spacing or self.initial_spacing
            while True:
                table = build_table(network, model.cutoff, spacing, key, dtype, degree=self.degree)
                worst = max(table.error.values())
                if self.spacing is not None or worst <= self.tolerance:
                    break
                if 2 * table.interpolant.coefficients.numel() > MAX_TABLE_ENTRIES:  # the next, halved spacing
                    raise ValueError(
                        f"tabulating {type(model).__name__}'s radial network to a relative error of {self.tolerance:g} "
                        f"needs a spacing below {table.spacing:.3g} Å (measured error {worst:.3g} there): "
                        "pass a larger tolerance or an explicit spacing"
                    )
                spacing = table.spacing / 2
        interpolant = table.interpolant
        return table._replace(interpolant=interpolant._replace(coefficients=interpolant.coefficients.to(device)))


def _float64_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` sharing nothing with it (the tabulation state left out)."""
    state = getattr(model, "tabulation", None)
    try:
        model.tabulation = None
        copied = copy.deepcopy(model)
    finally:
        model.tabulation = state
    return copied.double().to("cpu")
