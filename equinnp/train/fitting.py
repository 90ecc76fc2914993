"""Constants fitted from the training split before training: reference energies and scale.

With least-squares atomic reference energies :math:`E^{\\mathrm{ref}}_Z`
(:func:`equinnp.postprocessing.fit_reference_energies`) the per-atom shift is
0, and the network's per-atom output is multiplied by one scale σ:

- ``rms_forces`` (default, as MACE): :math:`\\sigma = \\sqrt{\\langle F_{i\\alpha}^2 \\rangle}`
  over all training force components, so that an O(1) network output gives
  forces of the size of the data's;
- ``energy_std``: the standard deviation of the per-atom energy residual
  :math:`(E_m - \\sum_i E^{\\mathrm{ref}}_{Z_i}) / N_m` (for data without forces);
- a number, or ``none`` (σ = 1).

Models fit their own constants in ``AtomisticModel.fit`` (MACE: the mean number
of neighbors within its cutoff, over atoms that have neighbors).

A value given in the ``model`` section (``reference_energies``, ``scale``,
``shift``, ``avg_num_neighbors``) is used as it is and not fitted.
"""

from __future__ import annotations

from typing import Sequence

from torch_geometric.data import Data

__all__ = ["describe_fit", "fit_postprocessing"]


def fit_postprocessing(potential, records: Sequence[Data], training: dict, model_config: dict) -> dict:
    """Fit the potential's data-dependent constants from the training records (``Potential.fit``).

    A constant given in the ``model`` section is kept as it is; the others follow
    ``training.reference_energies`` and ``training.scale``; the shift is 0.

    Returns
    -------
    dict
        What was set: ``reference_energies`` {Z: eV}, ``scale``, ``shift`` and the model's own constants.
    """
    reference = "fit" if "reference_energies" not in model_config and training["reference_energies"] == "fit" else None
    scale = None
    if "scale" not in model_config:
        choice = training["scale"]
        scale = 1.0 if choice in ("none", None) else choice if choice in ("rms_forces", "energy_std") else float(choice)
    shift = 0.0 if "shift" not in model_config else None
    return potential.fit(records, reference_energies=reference, scale=scale, shift=shift)


def describe_fit(potential, fitted: dict) -> list:
    """The log lines that say what ``fit_postprocessing`` set, and whether the reference energies mean anything."""
    parts = [f"{key} {fitted[key]:.4g}" for key in ("scale", "avg_num_neighbors") if key in fitted]
    lines = ["fitted from the training split" + (": " + ", ".join(parts) if parts else "")]
    reference = potential.fit_info.get("reference_energies", {})
    if reference.get("identifiable") is False:
        lines.append(
            f"reference energies: the training compositions determine only {reference['rank']} of "
            f"{reference['num_elements']} elements; the fitted per-element values are not physical "
            "(recorded in the model's metadata). Give model.reference_energies for transferable energies."
        )
    return lines
