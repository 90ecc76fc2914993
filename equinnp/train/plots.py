"""Parity plots of predicted versus reference values, one panel per output (matplotlib, Agg backend).

Each panel states its count, MAE and RMSE (in the metric units of
:data:`~equinnp.train.outputs.OUTPUTS`, the numbers ``equinnp evaluate``
reports). Panels with more than :data:`DENSITY_THRESHOLD` points (the force
components of a test set: 27,000 for 1000 ethanol frames) are drawn as a
hexagonal-bin density with a logarithmic colour scale, where a scatter would
hide all but the outermost points; smaller ones as a scatter.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Optional

import numpy as np

from equinnp.train.outputs import OUTPUTS

__all__ = ["DENSITY_THRESHOLD", "ParityPanel", "parity_figure", "parity_panels", "parity_plot"]

DENSITY_THRESHOLD = 2000


class ParityPanel(NamedTuple):
    """One output's reference and predicted values (label units, [M]) and their statistics (metric units)."""

    name: str
    reference: np.ndarray
    prediction: np.ndarray
    count: int
    mae: float
    rmse: float
    density: bool


def parity_panels(arrays: dict) -> List[ParityPanel]:
    """The panels of the outputs that ``arrays`` holds (``<name>_pred``, ``<name>_ref``), in registry order.

    Energies are shown relative to the mean reference energy (differences are what
    a potential predicts); MAE and RMSE do not depend on the offset.
    """
    panels = []
    for name in OUTPUTS:
        if arrays.get(f"{name}_ref") is None or arrays.get(f"{name}_pred") is None:
            continue
        reference = np.asarray(arrays[f"{name}_ref"], dtype=np.float64).reshape(-1)  # [M]
        prediction = np.asarray(arrays[f"{name}_pred"], dtype=np.float64).reshape(-1)  # [M]
        if reference.size == 0:
            continue
        error = prediction - reference
        if name == "energy":
            offset = float(np.mean(reference))
            reference, prediction = reference - offset, prediction - offset
        panels.append(ParityPanel(
            name, reference, prediction, int(reference.size), 1000.0 * float(np.mean(np.abs(error))),
            1000.0 * float(np.sqrt(np.mean(error ** 2))), reference.size > DENSITY_THRESHOLD,
        ))
    return panels


def parity_figure(arrays: dict, title: Optional[str] = None):
    """A matplotlib figure with one parity panel per output (see :func:`parity_panels`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    panels = parity_panels(arrays)
    if not panels:
        raise ValueError("nothing to plot: the arrays hold no predicted and reference values")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        spec = OUTPUTS[panel.name]
        low = float(min(panel.reference.min(), panel.prediction.min()))
        high = float(max(panel.reference.max(), panel.prediction.max()))
        pad = 0.03 * (high - low or 1.0)
        low, high = low - pad, high + pad
        if panel.density:
            bins = ax.hexbin(panel.reference, panel.prediction, gridsize=80, extent=(low, high, low, high),
                             norm=LogNorm(), mincnt=1, cmap="viridis", linewidths=0)
            fig.colorbar(bins, ax=ax, fraction=0.046, pad=0.04, label="points per bin")
        else:
            ax.scatter(panel.reference, panel.prediction, s=6, alpha=0.6, edgecolors="none")
        ax.plot([low, high], [low, high], color="0.4", lw=0.8, zorder=3)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        what = f"{panel.name} minus mean reference" if panel.name == "energy" else f"{panel.name}, per component"
        ax.set_xlabel(f"reference {what} ({spec.unit})")
        ax.set_ylabel(f"predicted ({spec.unit})")
        ax.set_title(panel.name)
        ax.text(0.04, 0.96, f"n = {panel.count:,}\nMAE {panel.mae:.2f} {spec.metric_unit}\n"
                            f"RMSE {panel.rmse:.2f} {spec.metric_unit}",
                transform=ax.transAxes, va="top", ha="left", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def parity_plot(arrays: dict, path, title: Optional[str] = None) -> Path:
    """Write the parity figure of ``arrays`` (``<name>_pred``, ``<name>_ref`` [M], label units) to a PNG.

    Parameters
    ----------
    arrays : dict
        As :func:`equinnp.train.metrics.evaluate_potential` collects them, e.g.
        ``energy_pred``, ``energy_ref`` [M] (eV) and ``forces_pred``, ``forces_ref`` [3N] (eV/Å).
    path : str or Path
        Output PNG (written atomically).
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = parity_figure(arrays, title)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
