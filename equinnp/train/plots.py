"""Parity plot of predicted versus reference energies and forces (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["parity_plot"]


def parity_plot(arrays: dict, path, title: Optional[str] = None) -> Path:
    """Write a two-panel PNG: total energies (eV, relative to the
    mean reference energy) and force components (eV/Å), predicted against reference.

    Parameters
    ----------
    arrays : dict
        ``energy_pred``, ``energy_ref`` [M] (eV) and ``forces_pred``, ``forces_ref`` [3N] (eV/Å).
    path : str or Path
        Output PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    offset = float(np.mean(arrays["energy_ref"]))
    e_ref = arrays["energy_ref"] - offset  # [M]
    e_pred = arrays["energy_pred"] - offset  # [M]
    panels = [("energy", e_ref, e_pred, "eV")]
    if arrays.get("forces_ref") is not None:
        panels.append(("forces", arrays["forces_ref"], arrays["forces_pred"], "eV/Å"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (name, ref, pred, unit) in zip(axes[0], panels):
        mae = 1000.0 * float(np.mean(np.abs(pred - ref)))
        low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([low, high], [low, high], color="0.6", lw=1)
        ax.scatter(ref, pred, s=4, alpha=0.5, edgecolors="none")
        label = f"{name} (minus mean reference)" if name == "energy" else "force components"
        ax.set_xlabel(f"reference {label} ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{name}: MAE {mae:.1f} m{unit}")
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
