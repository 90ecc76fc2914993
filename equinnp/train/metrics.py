"""Validation and test metrics: MAE and RMSE of every output in :data:`~equinnp.train.outputs.OUTPUTS`.

Each output with a prediction and a label gives ``<name>_mae`` and
``<name>_rmse`` over its compared components, in milli-units of the label
(energies per structure in meV, forces per Cartesian component in meV/Å, the
convention of the rMD17 literature; stress per component of the periodic
structures in meV/Å³). A ``per_atom`` output also gives ``<name>_per_atom_mae``
and ``<name>_per_atom_rmse`` (energies in meV/atom).
"""

from __future__ import annotations

import math
from typing import Iterable, List, Mapping, Optional

import torch

from equinnp.train.outputs import OUTPUTS, forward_flags, paired_values

__all__ = ["MetricAccumulator", "evaluate_potential", "metric_names"]


def _sum_names() -> List[str]:
    names = ["n_structures", "loss_sum"]
    for name, spec in OUTPUTS.items():
        names += [f"{name}_count", f"{name}_abs", f"{name}_sq"]
        if spec.per_atom:
            names += [f"{name}_per_atom_abs", f"{name}_per_atom_sq"]
    return names


# Running sums, in this order, kept in one float64 tensor so that one
# ``all_reduce`` combines the shards of every process.
_SUMS = _sum_names()


def metric_names(name: str) -> List[str]:
    """The metrics of output ``name``: ``<name>_mae``, ``<name>_rmse`` and, for per-atom outputs, their per-atom twins."""
    names = [f"{name}_mae", f"{name}_rmse"]
    if OUTPUTS[name].per_atom:
        names += [f"{name}_per_atom_mae", f"{name}_per_atom_rmse"]
    return names


class MetricAccumulator:
    """Sums of absolute and squared errors over batches (label units in, milli-units out)."""

    def __init__(self):
        self.sums = torch.zeros(len(_SUMS), dtype=torch.float64)

    def _add(self, name: str, value) -> None:
        self.sums[_SUMS.index(name)] += float(value)

    @torch.no_grad()
    def update(self, output, batch, loss: Optional[float] = None) -> None:
        """Add one batch. ``output`` is a ``PotentialOutput``, ``batch`` a PyG ``Batch`` with labels."""
        self._add("n_structures", batch.num_graphs)
        for name, spec in OUTPUTS.items():
            pairs = paired_values(name, output, batch)
            if pairs is None:
                continue
            error = pairs.prediction.detach().double().cpu() - pairs.reference.detach().double().cpu()  # [M, ...]
            self._add(f"{name}_count", error.numel())
            self._add(f"{name}_abs", error.abs().sum())
            self._add(f"{name}_sq", error.square().sum())
            if spec.per_atom:
                per_atom = error / pairs.num_atoms.cpu().reshape((-1,) + (1,) * (error.dim() - 1))  # [M, ...]
                self._add(f"{name}_per_atom_abs", per_atom.abs().sum())
                self._add(f"{name}_per_atom_sq", per_atom.square().sum())
        if loss is not None:
            self._add("loss_sum", loss * batch.num_graphs)

    def all_reduce(self) -> None:
        """Sum the accumulators of all processes (no-op without torch.distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            backend = dist.get_backend()
            sums = self.sums.cuda() if backend == "nccl" else self.sums
            dist.all_reduce(sums)
            self.sums = sums.cpu()

    def compute(self) -> dict:
        """``n_structures`` (int), the metrics of every output that was compared, and the mean ``loss`` when given."""
        s = dict(zip(_SUMS, self.sums.tolist()))
        n = s["n_structures"]
        if n == 0:
            raise ValueError("no structures were evaluated: the dataset or its shard is empty")
        metrics = {"n_structures": int(n)}
        for name, spec in OUTPUTS.items():
            count = s[f"{name}_count"]
            if count == 0:
                continue
            metrics[f"{name}_mae"] = 1000.0 * s[f"{name}_abs"] / count
            metrics[f"{name}_rmse"] = 1000.0 * math.sqrt(s[f"{name}_sq"] / count)
            if spec.per_atom:
                metrics[f"{name}_per_atom_mae"] = 1000.0 * s[f"{name}_per_atom_abs"] / count
                metrics[f"{name}_per_atom_rmse"] = 1000.0 * math.sqrt(s[f"{name}_per_atom_sq"] / count)
        if s["loss_sum"] != 0.0:
            metrics["loss"] = s["loss_sum"] / n
        return metrics


def evaluate_potential(potential, batches: Iterable, device=None, loss_fn=None, weights: Optional[Mapping[str, float]] = None,
                       collect: bool = False, distributed: bool = False):
    """Metrics of a potential over batches with labels.

    Every output of :data:`OUTPUTS` whose label the batches hold is computed
    (forces, and stress for periodic batches with a stress label) and compared.

    Parameters
    ----------
    potential : Potential
    batches : iterable of Batch
    device : torch.device, optional
    loss_fn, weights : optional
        A ``WeightedLoss`` and its {output name: weight}, to report the validation loss too.
    collect : bool
        Also return the compared predictions and labels of every output,
        flattened (numpy, label units): ``<name>_pred`` and ``<name>_ref``, for
        a parity plot.
    distributed : bool
        Sum the metrics over all processes.

    Returns
    -------
    dict, or (dict, dict) with ``collect``
    """
    accumulator = MetricAccumulator()
    collected = {name: ([], []) for name in OUTPUTS}
    was_training = potential.training
    potential.eval()
    try:
        for batch in batches:
            if device is not None:
                batch = batch.to(device)
            output = potential(batch, **forward_flags(OUTPUTS, batch))
            loss = None
            if loss_fn is not None:
                loss = float(loss_fn(output, batch, weights).total.detach())
            accumulator.update(output, batch, loss)
            if collect:
                for name, (predictions, references) in collected.items():
                    pairs = paired_values(name, output, batch)
                    if pairs is not None:
                        predictions.append(pairs.prediction.detach().cpu().double().reshape(-1))
                        references.append(pairs.reference.detach().cpu().double().reshape(-1))
    finally:
        potential.train(was_training)
    if distributed:
        accumulator.all_reduce()
    metrics = accumulator.compute()
    if collect:
        arrays = {}
        for name, (predictions, references) in collected.items():
            if predictions:
                arrays[f"{name}_pred"] = torch.cat(predictions).numpy()
                arrays[f"{name}_ref"] = torch.cat(references).numpy()
        return metrics, arrays
    return metrics
