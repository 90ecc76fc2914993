"""AIMNet2 weights in the layout of the authors' ``aimnet`` package, mapped onto equinnp's ``AIMNet2``.

aimnet's ``AIMNet2`` (``aimnet/models/aimnet2.py``, packaged ``aimnet2.yaml``)
names its tensors ``afv.weight`` [64, F·G] (per-Z embedding rows,
feature-major over the shifts), ``conv_a.agh``, ``conv_q.agh``,
``mlps.<pass>.<layer>.{weight,bias}``, ``outputs.energy_mlp.mlp.<layer>.*``
and ``outputs.atomic_shift.shifts.weight`` [64, 1]; the frozen AEV constants
``aev.{rc_s, eta_s, shifts_s}`` and the Coulomb cutoff ``outputs.lrcoulomb.rc``.
equinnp's model keeps one embedding row and one shift per element of its
``elements``, and recomputes the AEV constants (float32-rounded, as aimnet's).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["aimnet2_parameters", "potential_from_aimnet_state"]

#: aimnet state-dict prefix → equinnp ``AIMNet2`` parameter prefix (the MLPs share the ``Sequential`` layout).
PREFIXES = {"mlps.": "passes.", "outputs.energy_mlp.mlp.": "energy_mlp.", "conv_a.agh": "conv_a.agh", "conv_q.agh": "conv_q.agh"}
#: aimnet tensors that equinnp does not take as parameters (constants it recomputes or takes as options).
CONSTANTS = ("aev.rc_s", "aev.eta_s", "aev.shifts_s", "aev.rc_v", "aev.eta_v", "aev.shifts_v", "outputs.lrcoulomb.rc")


def aimnet2_parameters(state: Mapping[str, Tensor], elements: Sequence[int]) -> Dict[str, Tensor]:
    """equinnp ``AIMNet2`` parameters (name → tensor) from an aimnet ``AIMNet2`` state dict.

    The per-Z tables (``afv.weight``, the atomic shifts) are cut to the rows of
    ``elements``; a row that aimnet leaves NaN (an element the model was not
    trained for) is refused.

    Shapes: ``afv.weight`` [64, F·G] → ``embedding.weight`` [K, F·G];
    ``outputs.atomic_shift.shifts.weight`` [64, 1] → ``energy_shift`` [K].
    """
    rows = torch.as_tensor([int(z) for z in elements])
    table = state["afv.weight"]
    if int(rows.max()) >= table.shape[0]:
        raise ValueError(f"aimnet2 weights: the embedding has {table.shape[0]} rows (Z < {table.shape[0]}), "
                         f"elements {list(elements)} ask for Z = {int(rows.max())}")
    out = {"embedding.weight": table[rows], "energy_shift": state["outputs.atomic_shift.shifts.weight"][rows, 0]}
    bad = [int(z) for z, row in zip(rows, out["embedding.weight"]) if not bool(torch.isfinite(row).all())]
    if bad:
        raise ValueError(f"aimnet2 weights: no embedding for elements {bad} (NaN rows): the model was not trained for them")
    for name, value in state.items():
        if name in CONSTANTS or name in ("afv.weight", "outputs.atomic_shift.shifts.weight"):
            continue
        target = next((new + name[len(old):] for old, new in PREFIXES.items() if name.startswith(old)), None)
        if target is None:
            raise ValueError(f"aimnet2 weights: unknown tensor {name!r} (not part of the packaged aimnet2.yaml layout)")
        out[target] = value
    return out


def potential_from_aimnet_state(state: Mapping[str, Tensor], elements: Sequence[int], *, dtype: str = "float32",
                                coulomb: bool = True, exact_charge_conservation: bool = True,
                                float32_constants: bool = True, hyperparameters: Optional[dict] = None):
    """An equinnp ``Potential`` with aimnet's AIMNet2 weights and, with ``coulomb``, aimnet's LR Coulomb term.

    The hyperparameters default to those of the packaged ``aimnet2.yaml``
    (``hyperparameters`` overrides them; the AEV cutoff is read from
    ``aev.rc_s``). The Coulomb cutoff is aimnet's ``outputs.lrcoulomb.rc`` (a
    float32 number: 4.599999904632568 for 4.6). ``exact_charge_conservation=False``
    reproduces aimnet's charges to rounding (``neural_charge_equilibration``).
    """
    import equinnp

    state = {k: v.detach().to(torch.float64) for k, v in state.items()}
    options = dict(hyperparameters or {})
    options.setdefault("cutoff", float(state["aev.rc_s"]) if "aev.rc_s" in state else 5.0)
    rc = float(state.get("outputs.lrcoulomb.rc", torch.tensor(4.6, dtype=torch.float32).double()))
    terms = [{"name": "coulomb", "shielding": "aimnet2", "switch_radius": rc}] if coulomb else []
    pot = equinnp.build_potential("aimnet2", elements=list(elements), dtype=dtype,
                                  exact_charge_conservation=exact_charge_conservation,
                                  float32_constants=float32_constants,
                                  postprocessing={"transforms": ["scale_shift"], "energy_terms": terms}, **options)
    parameters = aimnet2_parameters(state, elements)
    model = pot.model
    missing = sorted(set(dict(model.named_parameters())) - set(parameters))
    if missing:
        raise ValueError(f"aimnet2 weights: no values for {missing}")
    with torch.no_grad():
        for name, value in parameters.items():
            target = model.get_parameter(name)
            if target.shape != value.shape:
                raise ValueError(f"aimnet2 weights: {name} has shape {tuple(value.shape)}, the model {tuple(target.shape)}: "
                                 "pass the hyperparameters the weights were trained with")
            target.copy_(value)
    return pot.eval()
