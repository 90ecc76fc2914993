"""The outputs a run is trained on and evaluated against, one registry entry per output name.

Each entry of :data:`OUTPUTS` says where the prediction is (a field of
``PotentialOutput``), where the label is (an attribute of the batch), how the
errors are normalised, and the unit of its metrics. Everything else is
derived from it: the keys of ``training.loss.weights`` and of the loss stages,
the loss terms (:mod:`equinnp.train.losses`), the validation and test metrics
(:mod:`equinnp.train.metrics`), the columns of ``metrics.csv`` and the console
lines (:mod:`equinnp.train.reporting`). A new label is one entry here.

Normalisation of the error of one output:

- per-atom outputs ([N, ...], forces, charges): every component counts once;
- per-system outputs ([B, ...], energy, stress, dipole): every component of
  every system counts once; with ``per_atom`` the error of system b is
  divided by its number of atoms :math:`N_b` in the loss (energies in eV/atom),
  and the metrics report both the total and the per-atom error;
- ``periodic_only`` keeps only the systems with a periodic direction (stress).

Metrics are in milli-units of the label (meV, meV/Å, meV/Å³, me, me·Å).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

__all__ = ["OUTPUTS", "OutputSpec", "Pairs", "forward_flags", "paired_values", "run_outputs"]


@dataclass(frozen=True)
class OutputSpec:
    """How one output is compared with its label.

    Attributes
    ----------
    prediction : str
        Field of ``PotentialOutput``.
    label : str
        Attribute of the batch holding the reference values.
    unit : str
        Unit of the label (eV, eV/Å); the metrics (MAE, RMSE) are in its thousandth, :attr:`metric_unit`.
    symbol : str
        Short name in the console lines.
    default_weight : float
        Its ``training.loss.weights`` entry when a config gives none.
    per_atom : bool
        A per-system quantity whose loss uses the error divided by the system's atom count.
    periodic_only : bool
        Only systems with a periodic direction are compared.
    compute : str, optional
        The ``Potential.forward`` flag that produces the prediction (``compute_forces``).
    needs : tuple of str
        Batch attributes that the prediction needs besides the label (stress: ``cell``).
    """

    prediction: str
    label: str
    unit: str
    symbol: str
    default_weight: float = 0.0
    per_atom: bool = False
    periodic_only: bool = False
    compute: Optional[str] = None
    needs: Tuple[str, ...] = ()

    @property
    def metric_unit(self) -> str:
        """The unit of the metrics: meV for eV, me·Å for e·Å."""
        return f"m{self.unit}"


OUTPUTS: Dict[str, OutputSpec] = {
    "energy": OutputSpec("energy", "energy", "eV", "E", default_weight=1.0, per_atom=True),
    "forces": OutputSpec("forces", "forces", "eV/Å", "F", default_weight=100.0, compute="compute_forces"),
    "stress": OutputSpec("stress", "stress", "eV/Å³", "σ", periodic_only=True, compute="compute_stress", needs=("cell",)),
    "charges": OutputSpec("charges", "charges", "e", "q"),
    "dipole": OutputSpec("dipole", "dipole", "e·Å", "μ"),
}


class Pairs(NamedTuple):
    """Predicted and reference values of one output over a batch (the compared entries only).

    ``prediction`` and ``reference`` have the prediction's shape, [M, ...] with M
    atoms or systems; ``reference`` is in the prediction's dtype. ``num_atoms``
    [M] (float64) is given for ``per_atom`` outputs.
    """

    prediction: object
    reference: object
    num_atoms: Optional[object]


def paired_values(name: str, output, batch) -> Optional[Pairs]:
    """The predictions of output ``name`` with their labels, or None when either is absent.

    Parameters
    ----------
    name : str
        A key of :data:`OUTPUTS`.
    output : PotentialOutput
    batch : Batch
        With the label attribute and ``batch`` [N] (``pbc`` [B, 3] for ``periodic_only``).
    """
    import torch

    spec = OUTPUTS[name]
    prediction = getattr(output, spec.prediction, None)
    reference = getattr(batch, spec.label, None)
    if prediction is None or reference is None:
        return None
    if reference.numel() != prediction.numel():
        raise ValueError(
            f"the {name!r} label of the batch has {reference.numel()} values ({tuple(reference.shape)}) "
            f"but the prediction has {prediction.numel()} ({tuple(prediction.shape)})"
        )
    reference = reference.reshape(prediction.shape).to(prediction.dtype)
    num_atoms = None
    if spec.per_atom or spec.periodic_only:
        num_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs).double()  # [B]
    if spec.periodic_only:
        pbc = getattr(batch, "pbc", None)
        if pbc is not None:
            periodic = pbc.reshape(-1, 3).any(dim=1).to(prediction.device)  # [B]
            prediction, reference, num_atoms = prediction[periodic], reference[periodic], num_atoms[periodic]
    return Pairs(prediction, reference, num_atoms if spec.per_atom else None)


def forward_flags(names: Iterable[str], batch) -> dict:
    """``Potential.forward`` flags that produce the outputs ``names`` whose labels the batch holds."""
    flags = {spec.compute: False for spec in OUTPUTS.values() if spec.compute is not None}
    for name in names:
        spec = OUTPUTS[name]
        if spec.compute is None or getattr(batch, spec.label, None) is None:
            continue
        if all(getattr(batch, attribute, None) is not None for attribute in spec.needs):
            flags[spec.compute] = True
    return flags


def run_outputs(loss_config: Mapping, records: Sequence, train_path) -> List[str]:
    """The outputs a run reports: those with a weight in any loss stage, and those its training records label.

    Parameters
    ----------
    loss_config : dict
        ``training.loss`` of the run config.
    records : sequence of Data
        The training structures.
    train_path : str
        ``data.train``, for the error message.

    Raises
    ------
    ValueError
        For a weighted output that no training structure labels.
    """
    weighted = {name for name, weight in loss_config["weights"].items() if weight > 0}
    weighted |= {name for stage in loss_config["stages"] for name, weight in stage.get("weights", {}).items() if weight > 0}
    outputs = []
    for name, spec in OUTPUTS.items():
        labelled = any(getattr(record, spec.label, None) is not None for record in records)
        if name in weighted and not labelled:
            raise ValueError(
                f"training.loss.weights.{name} > 0 but no training structure of data.train = {train_path} has a "
                f"{spec.label!r} label: give its key (data.{name}_key for the formats that take one) or set the weight to 0"
            )
        if name in weighted or labelled:
            outputs.append(name)
    return outputs
