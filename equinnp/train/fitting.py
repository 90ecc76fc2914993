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

Models that normalise their neighbor sums by the mean number of neighbors
(MACE, through ``model.set_avg_num_neighbors``) get that mean from the training
structures, counted with the model's cutoff.

A value given in the ``model`` section (``reference_energies``, ``scale``,
``shift``, ``avg_num_neighbors``) is used as it is and not fitted.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch_geometric.data import Batch, Data

from equinnp.neighbors import radius_graph
from equinnp.postprocessing import fit_reference_energies

__all__ = ["fit_postprocessing", "rms_forces", "energy_residual_std", "average_num_neighbors"]


def average_num_neighbors(records: Sequence[Data], cutoff: float, chunk: int = 256) -> float:
    """Mean number of neighbors within ``cutoff`` per atom over the structures (periodic images counted)."""
    edges, atoms = 0, 0
    for start in range(0, len(records), chunk):
        batch = Batch.from_data_list([Data(**{k: r[k] for k in ("z", "pos", "cell", "pbc") if k in r}) for r in records[start : start + chunk]])
        cell = getattr(batch, "cell", None)
        neighbors = radius_graph(batch.pos, cutoff, batch=batch.batch, cell=cell, pbc=getattr(batch, "pbc", None))
        edges += neighbors.edge_index.shape[1]
        atoms += batch.num_nodes
    if atoms == 0:
        raise ValueError("no atoms to count neighbors of")
    return edges / atoms


def rms_forces(records: Sequence[Data]) -> float:
    """Root mean square of all force components (eV/Å)."""
    total, count = 0.0, 0
    for record in records:
        if getattr(record, "forces", None) is None:
            raise ValueError("scale 'rms_forces' needs force labels; use training.scale=energy_std or a number")
        total += float(record.forces.double().square().sum())
        count += record.forces.numel()
    if count == 0:
        raise ValueError("no force components to compute the RMS of")
    return math.sqrt(total / count)


def energy_residual_std(records: Sequence[Data], reference: dict) -> float:
    """Standard deviation of :math:`(E - \\sum_i E^{ref}_{Z_i})/N` over structures (eV/atom)."""
    residuals = []
    for record in records:
        offset = sum(reference.get(int(z), 0.0) for z in record.z.tolist())
        residuals.append((float(record.energy.reshape(-1)[0]) - offset) / record.z.numel())
    if len(residuals) < 2:
        raise ValueError("scale 'energy_std' needs at least two training structures")
    return float(torch.tensor(residuals, dtype=torch.float64).std())


def fit_postprocessing(potential, records: Sequence[Data], training: dict, model_config: dict) -> dict:
    """Set reference energies, scale and shift on ``potential`` from training records.

    Returns
    -------
    dict
        What was set: ``reference_energies`` {Z: eV}, ``scale``, ``shift``.
    """
    fitted = {}
    if "reference_energies" not in model_config and training["reference_energies"] == "fit":
        reference = fit_reference_energies(records, potential.elements)
        potential.reference_energies.set(reference)
        fitted["reference_energies"] = reference
    reference = potential.reference_energies.as_dict()
    if "scale" not in model_config:
        choice = training["scale"]
        if choice == "rms_forces":
            scale = rms_forces(records)
        elif choice == "energy_std":
            scale = energy_residual_std(records, reference)
        elif choice in ("none", None):
            scale = 1.0
        else:
            scale = float(choice)
        if not scale > 0:
            raise ValueError(f"fitted scale {scale} is not positive: the training labels are constant")
        potential.scale_shift.set(scale=scale)
        fitted["scale"] = scale
    if "shift" not in model_config:
        potential.scale_shift.set(shift=0.0)
        fitted["shift"] = 0.0
    if hasattr(potential.model, "set_avg_num_neighbors") and "avg_num_neighbors" not in model_config:
        mean = average_num_neighbors(records, potential.cutoff)
        potential.model.set_avg_num_neighbors(mean)
        fitted["avg_num_neighbors"] = mean
    return fitted
