"""Weighted loss over the outputs of :data:`equinnp.train.outputs.OUTPUTS`.

.. math::
    \\mathcal{L} = \\sum_k \\lambda_k \\frac{1}{M_k} \\sum_{m=1}^{M_k} \\ell(y_{km} - \\hat y_{km})

over the outputs k with weight :math:`\\lambda_k > 0` (``training.loss.weights``),
with :math:`\\ell(x) = x^2` (MSE) or the Huber function and :math:`M_k` the
number of compared components of output k (:mod:`equinnp.train.outputs`):
energies per atom (eV/atom), force components (eV/Å), stress components of
the periodic systems with a stress label (eV/Å³). With the default outputs
this is

.. math::
    \\mathcal{L} = \\frac{\\lambda_E}{B} \\sum_b \\ell\\Big(\\frac{E_b - \\hat E_b}{N_b}\\Big)
                 + \\frac{\\lambda_F}{3N} \\sum_{i,\\alpha} \\ell\\big(F_{i\\alpha} - \\hat F_{i\\alpha}\\big)
                 + \\frac{\\lambda_\\sigma}{9B_\\sigma} \\sum_{b,\\alpha\\beta} \\ell\\big(\\sigma_{b\\alpha\\beta} - \\hat\\sigma_{b\\alpha\\beta}\\big)

as in MACE (Batatia et al., NeurIPS 2022, eq. 12, with per-atom energies).

Penalties that a model computes itself (:data:`MODEL_PENALTIES`, weights in
``training.loss.<name>``) are added by :func:`add_model_penalties`:

.. math:: \\mathcal{L} \\leftarrow \\mathcal{L} + \\lambda_\\text{nh} L_\\text{nh}

with :math:`L_\\text{nh}` PhysNet's non-hierarchicality penalty of the batch
(Unke & Meuwly 2019, eq. 18; ``PhysNet.nonhierarchicality``, paper weight
:math:`\\lambda_\\text{nh} = 0.01`). They regularise training only: the
validation loss compares predictions with labels.
"""

from __future__ import annotations

from typing import Dict, Mapping, NamedTuple, Optional

import torch
from torch import Tensor
from torch.nn import functional as F

from equinnp.train.outputs import OUTPUTS, paired_values

__all__ = ["MODEL_PENALTIES", "LossStage", "LossTerms", "WeightedLoss", "add_model_penalties", "loss_weights_at"]

#: Loss terms a model reports as a scalar tensor attribute after each forward
#: (name of the attribute, and of the ``training.loss`` weight) → what it is.
MODEL_PENALTIES: Dict[str, str] = {
    "nonhierarchicality": "PhysNet's non-hierarchicality penalty (paper eq. 18, weight 0.01)",
}


class LossTerms(NamedTuple):
    """The total loss and the unweighted term of every output compared in the batch (detached scalars).

    ``parts`` holds the outputs whose prediction and label were both present,
    in :data:`OUTPUTS` order, weighted or not.
    """

    total: Tensor
    parts: Dict[str, Tensor]


class LossStage(NamedTuple):
    """The loss weights {output name: weight} in effect at an epoch, and the base learning rate a stage set (or None)."""

    weights: Dict[str, float]
    lr: Optional[float]


def loss_weights_at(loss_config: Mapping, epoch: int) -> LossStage:
    """Loss weights (and learning rate, when a stage sets one) in effect at ``epoch`` (0-based).

    The base ``loss_config["weights"]`` are updated by the ``weights`` of every
    entry of ``loss_config["stages"]`` whose ``epoch`` is ``<= epoch``, in epoch
    order (e.g. MACE's switch to a large energy weight for the last epochs); the
    last such stage that sets ``lr`` gives the learning rate.
    """
    weights = {name: float(value) for name, value in loss_config["weights"].items()}
    lr = None
    for stage in sorted(loss_config.get("stages", []), key=lambda s: s["epoch"]):
        if stage["epoch"] <= epoch:
            weights.update({name: float(value) for name, value in stage.get("weights", {}).items()})
            if stage.get("lr") is not None:
                lr = float(stage["lr"])
    return LossStage(weights, lr)


class WeightedLoss:
    """The weighted sum of one error term per output.

    Parameters
    ----------
    kind : {"mse", "huber"}
    huber_delta : float
        Transition point of the Huber function (in the unit of each term).

    Shapes: predictions as in ``PotentialOutput`` (``energy`` [B] float64,
    ``forces`` [N, 3], ``stress`` [B, 3, 3], ``charges`` [N], ``dipole`` [B, 3]);
    labels of the same names on the batch, any shape with as many values;
    ``batch.batch`` [N].
    """

    def __init__(self, kind: str = "mse", huber_delta: float = 0.01):
        if kind not in ("mse", "huber"):
            raise ValueError(f"loss type must be 'mse' or 'huber', got {kind!r}")
        self.kind = kind
        self.huber_delta = float(huber_delta)

    def _elementwise(self, error: Tensor) -> Tensor:
        if self.kind == "mse":
            return error.square()
        return F.huber_loss(error, torch.zeros_like(error), reduction="none", delta=self.huber_delta)

    def term(self, name: str, output, batch, dtype: torch.dtype) -> Optional[Tensor]:
        """The unweighted mean loss of output ``name`` (None when its prediction or label is absent)."""
        pairs = paired_values(name, output, batch)
        if pairs is None:
            return None
        if pairs.prediction.numel() == 0:  # e.g. stress in a batch without periodic systems
            return torch.zeros((), dtype=dtype, device=pairs.prediction.device)
        # Energies are compared in float64 (totals of ~1e5 eV lose meV in float32), then cast.
        error = pairs.prediction - pairs.reference  # [M, ...]
        if pairs.num_atoms is not None:
            error = error / pairs.num_atoms.to(error.device).reshape((-1,) + (1,) * (error.dim() - 1))
        return self._elementwise(error.to(dtype)).mean()

    def __call__(self, output, batch, weights: Mapping[str, float]) -> LossTerms:
        """The loss of one batch.

        Parameters
        ----------
        output : PotentialOutput
        batch : Batch
        weights : dict
            {output name: weight}; names not given weigh 0.

        Raises
        ------
        ValueError
            An output with a positive weight whose prediction or label is missing.
        """
        unknown = sorted(set(weights) - set(OUTPUTS))
        if unknown:
            raise ValueError(f"unknown loss output(s) {unknown}; the outputs are {list(OUTPUTS)}")
        dtype = batch.pos.dtype  # the model's dtype
        total = torch.zeros((), dtype=dtype, device=batch.pos.device)
        parts = {}
        for name in OUTPUTS:
            weight = float(weights.get(name, 0.0))
            with torch.set_grad_enabled(weight > 0 and torch.is_grad_enabled()):
                term = self.term(name, output, batch, dtype)
            if term is None:
                if weight > 0:
                    spec = OUTPUTS[name]
                    missing = (f"the potential did not return {spec.prediction!r}" if getattr(output, spec.prediction, None) is None
                               else f"the batch has no {spec.label!r} label")
                    raise ValueError(f"the loss weight of {name!r} is {weight:g} but {missing}")
                continue
            if weight > 0:
                total = total + weight * term
            parts[name] = term.detach()
        return LossTerms(total, parts)


def add_model_penalties(terms: LossTerms, model, weights: Mapping[str, float]) -> LossTerms:
    """``terms`` with :math:`\\sum_p \\lambda_p P_p` added, ``P_p`` the model's attribute ``p`` of the last forward.

    Parameters
    ----------
    terms : LossTerms
        The label loss of the batch.
    model : AtomisticModel
        The core network that ran the batch (``potential.model``).
    weights : dict
        {penalty name (a key of :data:`MODEL_PENALTIES`): weight}; weights of 0 are skipped.

    Returns the total with the penalties and ``parts`` with their unweighted values.

    Raises
    ------
    ValueError
        A positive weight for a penalty the model does not compute.
    """
    total, parts = terms.total, dict(terms.parts)
    for name, weight in weights.items():
        if name not in MODEL_PENALTIES:
            raise ValueError(f"unknown model penalty {name!r}; known: {list(MODEL_PENALTIES)}")
        if not weight > 0:
            continue
        value = getattr(model, name, None)
        if not isinstance(value, Tensor):
            raise ValueError(f"training.loss.{name} = {weight:g} but the {type(model).__name__} model does not compute "
                             f"{name!r} ({MODEL_PENALTIES[name]}): set it to 0")
        total = total + weight * value.to(total.dtype)
        parts[name] = value.detach()
    return LossTerms(total, parts)
