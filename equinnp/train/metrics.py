"""Validation and test metrics: energy and force MAE/RMSE in meV and meV/Å.

Energies are compared per structure (meV) and per atom (meV/atom); forces per
Cartesian component (meV/Å), the convention of the rMD17 literature; stress
per component (meV/Å³) for periodic structures with a stress label.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch

__all__ = ["MetricAccumulator", "evaluate_potential"]

# Running sums, in this order, kept in one float64 tensor so that one
# ``all_reduce`` combines the shards of every process.
_SUMS = (
    "n_structures", "energy_abs", "energy_sq", "energy_per_atom_abs", "energy_per_atom_sq",
    "forces_count", "forces_abs", "forces_sq", "stress_count", "stress_abs", "stress_sq", "loss_sum",
)


class MetricAccumulator:
    """Sums of absolute and squared errors over batches (eV in, meV out)."""

    def __init__(self):
        self.sums = torch.zeros(len(_SUMS), dtype=torch.float64)

    def _add(self, name: str, value) -> None:
        self.sums[_SUMS.index(name)] += float(value)

    @torch.no_grad()
    def update(self, output, batch, loss: Optional[float] = None) -> None:
        """Add one batch. ``output`` is a ``PotentialOutput``, ``batch`` a PyG ``Batch`` with labels."""
        num_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs).double().cpu()  # [B]
        error = (output.energy.detach().double().cpu() - batch.energy.reshape(-1).double().cpu())  # [B]
        self._add("n_structures", error.numel())
        self._add("energy_abs", error.abs().sum())
        self._add("energy_sq", error.square().sum())
        self._add("energy_per_atom_abs", (error / num_atoms).abs().sum())
        self._add("energy_per_atom_sq", (error / num_atoms).square().sum())
        if output.forces is not None and getattr(batch, "forces", None) is not None:
            f_error = output.forces.detach().double().cpu() - batch.forces.double().cpu()  # [N, 3]
            self._add("forces_count", f_error.numel())
            self._add("forces_abs", f_error.abs().sum())
            self._add("forces_sq", f_error.square().sum())
        if output.stress is not None and getattr(batch, "stress", None) is not None:
            pbc = getattr(batch, "pbc", None)
            periodic = pbc.reshape(-1, 3).any(dim=1).cpu() if pbc is not None else torch.ones(output.stress.shape[0], dtype=torch.bool)
            s_error = (output.stress.detach().double().cpu() - batch.stress.reshape(-1, 3, 3).double().cpu())[periodic]  # [B', 3, 3]
            self._add("stress_count", s_error.numel())
            self._add("stress_abs", s_error.abs().sum())
            self._add("stress_sq", s_error.square().sum())
        if loss is not None:
            self._add("loss_sum", loss * error.numel())

    def all_reduce(self) -> None:
        """Sum the accumulators of all processes (no-op without torch.distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            backend = dist.get_backend()
            sums = self.sums.cuda() if backend == "nccl" else self.sums
            dist.all_reduce(sums)
            self.sums = sums.cpu()

    def compute(self) -> dict:
        """Metrics in meV, meV/atom, meV/Å and meV/Å³ (``n_structures`` as an int)."""
        s = dict(zip(_SUMS, self.sums.tolist()))
        n = s["n_structures"]
        if n == 0:
            raise ValueError("no structures were evaluated: the dataset or its shard is empty")
        metrics = {
            "n_structures": int(n),
            "energy_mae": 1000.0 * s["energy_abs"] / n,
            "energy_rmse": 1000.0 * math.sqrt(s["energy_sq"] / n),
            "energy_per_atom_mae": 1000.0 * s["energy_per_atom_abs"] / n,
            "energy_per_atom_rmse": 1000.0 * math.sqrt(s["energy_per_atom_sq"] / n),
        }
        if s["forces_count"] > 0:
            metrics["forces_mae"] = 1000.0 * s["forces_abs"] / s["forces_count"]
            metrics["forces_rmse"] = 1000.0 * math.sqrt(s["forces_sq"] / s["forces_count"])
        if s["stress_count"] > 0:
            metrics["stress_mae"] = 1000.0 * s["stress_abs"] / s["stress_count"]
            metrics["stress_rmse"] = 1000.0 * math.sqrt(s["stress_sq"] / s["stress_count"])
        if s["loss_sum"] != 0.0:
            metrics["loss"] = s["loss_sum"] / n
        return metrics


def evaluate_potential(potential, batches: Iterable, device=None, loss_fn=None, weights: Optional[dict] = None,
                       collect: bool = False, distributed: bool = False):
    """Metrics of a potential over batches with labels.

    Parameters
    ----------
    potential : Potential
    batches : iterable of Batch
    device : torch.device, optional
    loss_fn, weights : optional
        A ``WeightedLoss`` and its weights, to report the validation loss too.
    collect : bool
        Also return the predicted and reference energies and forces (numpy, eV
        and eV/Å) for a parity plot.
    distributed : bool
        Sum the metrics over all processes.

    Returns
    -------
    dict, or (dict, dict) with ``collect``
    """
    accumulator = MetricAccumulator()
    collected = {"energy_pred": [], "energy_ref": [], "forces_pred": [], "forces_ref": []}
    was_training = potential.training
    potential.eval()
    try:
        for batch in batches:
            if device is not None:
                batch = batch.to(device)
            needs_stress = getattr(batch, "stress", None) is not None and getattr(batch, "cell", None) is not None
            output = potential(batch, compute_forces=True, compute_stress=needs_stress)
            loss = None
            if loss_fn is not None:
                loss = float(loss_fn(output, batch, **weights).total.detach())
            accumulator.update(output, batch, loss)
            if collect:
                collected["energy_pred"].append(output.energy.detach().cpu().double())
                collected["energy_ref"].append(batch.energy.reshape(-1).cpu().double())
                collected["forces_pred"].append(output.forces.detach().cpu().double().reshape(-1))
                collected["forces_ref"].append(batch.forces.cpu().double().reshape(-1))
    finally:
        potential.train(was_training)
    if distributed:
        accumulator.all_reduce()
    metrics = accumulator.compute()
    if collect:
        arrays = {k: (torch.cat(v).numpy() if v else None) for k, v in collected.items()}
        return metrics, arrays
    return metrics
