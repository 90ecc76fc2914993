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

__all__ = ["aimnet2_parameters", "potential_from_aimnet_state", "load_aimnet2_file"]

#: aimnet state-dict prefix → equinnp ``AIMNet2`` parameter prefix (the MLPs share the ``Sequential`` layout).
PREFIXES = {"mlps.": "passes.", "outputs.energy_mlp.mlp.": "energy_mlp.", "conv_a.agh": "conv_a.agh", "conv_q.agh": "conv_q.agh"}
#: aimnet tensors that equinnp does not take as parameters (constants it recomputes or takes as options).
CONSTANTS = ("aev.rc_s", "aev.eta_s", "aev.shifts_s", "aev.rc_v", "aev.eta_v", "aev.shifts_v", "outputs.lrcoulomb.rc",
             "outputs.srcoulomb.rc")


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
                                float32_constants: bool = True, hyperparameters: Optional[dict] = None,
                                extra_terms: Sequence[dict] = ()):
    """An equinnp ``Potential`` with aimnet's AIMNet2 weights and, with ``coulomb``, aimnet's LR Coulomb term.

    The hyperparameters default to those of the packaged ``aimnet2.yaml``
    (``hyperparameters`` overrides them; the AEV cutoff is read from
    ``aev.rc_s``). The Coulomb cutoff is aimnet's ``outputs.lrcoulomb.rc`` (a
    float32 number: 4.599999904632568 for 4.6); ``extra_terms`` are more energy terms
    (configs, e.g. D3). ``exact_charge_conservation=False``
    reproduces aimnet's charges to rounding (``neural_charge_equilibration``).
    """
    import equinnp

    state = {k: v.detach().to(torch.float64) for k, v in state.items()}
    options = dict(hyperparameters or {})
    options.setdefault("cutoff", float(state["aev.rc_s"]) if "aev.rc_s" in state else 5.0)
    rc_tensor = state.get("outputs.lrcoulomb.rc", state.get("outputs.srcoulomb.rc"))
    rc = float(torch.tensor(4.6, dtype=torch.float32)) if rc_tensor is None else float(rc_tensor)
    terms = ([{"name": "coulomb", "shielding": "aimnet2", "switch_radius": rc}] if coulomb else []) + list(extra_terms)
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


#: Output modules of aimnet's AIMNet2 that the file loader understands (aimnet class name → role).
KNOWN_OUTPUTS = {"Output": "energy MLP", "AtomicShift": "per-element shifts", "AtomicSum": "sum",
                 "SRCoulomb": "short-range Coulomb subtracted", "LRCoulomb": "long-range Coulomb"}


def _hyperparameters(config: dict) -> dict:
    """equinnp ``AIMNet2`` hyperparameters from aimnet's model YAML (``class: aimnet.models.AIMNet2``)."""
    if not str(config.get("class", "")).endswith("AIMNet2"):
        raise ValueError(f"aimnet2 file: the model class is {config.get('class')!r}, not aimnet.models.AIMNet2")
    kwargs = config["kwargs"]
    if not kwargs.get("d2features", False):
        raise ValueError("aimnet2 file: d2features: false (1-D atom features) is not implemented in equinnp's AIMNet2")
    outputs = kwargs.get("outputs", {})
    unknown = {name: spec.get("class") for name, spec in outputs.items()
               if str(spec.get("class", "")).rsplit(".", 1)[-1] not in KNOWN_OUTPUTS}
    if unknown:
        raise ValueError(f"aimnet2 file: output modules {unknown} are not implemented in equinnp (known: {sorted(KNOWN_OUTPUTS)})")
    for name, spec in outputs.items():
        if spec.get("class", "").endswith("Coulomb") and spec.get("kwargs", {}).get("envelope", "exp") != "exp":
            raise ValueError(f"aimnet2 file: {name} uses the {spec['kwargs']['envelope']!r} envelope; only 'exp' is implemented")
    aev = kwargs["aev"]
    if aev.get("rc_v") is not None and aev.get("rc_v") != aev["rc_s"]:
        raise ValueError(f"aimnet2 file: a separate vector cutoff rc_v={aev['rc_v']} is not implemented")
    energy_mlp = outputs["energy_mlp"]["kwargs"]["mlp"]
    return dict(cutoff=float(aev["rc_s"]), num_features=int(kwargs["nfeature"]), num_shifts=int(aev["nshifts_s"]),
                rmin=float(aev.get("rmin", 0.8)), num_vector_combinations=int(kwargs["ncomb_v"]),
                hidden=[list(h) for h in kwargs["hidden"]], aim_size=int(kwargs["aim_size"]),
                output_hidden=list(energy_mlp.get("hidden", [])), num_charge_channels=int(kwargs.get("num_charge_channels", 1)))


def load_aimnet2_file(path, *, dtype: str = "float32", exact_charge_conservation: bool = True):
    """An equinnp ``Potential`` from an AIMNet2 model file in aimnet's distribution format (version 2 ``.pt``).

    That format (written by ``aimnet export``; the published models) is a
    ``torch.save`` dict: ``model_yaml`` (the core model's YAML, with the LR Coulomb
    removed and its short-range part embedded as ``SRCoulomb``), ``state_dict``
    (the self-atomic energies baked into the float64 atomic shifts; elements
    without them NaN), ``implemented_species``, ``needs_coulomb``,
    ``coulomb_mode``, ``coulomb_sr_rc``, ``needs_dispersion`` and ``d3_params``.
    The potential gets the model's elements, aimnet's full-minus-short-range
    Coulomb term when the file has it, and D3(BJ) with the file's parameters and
    aimnet's 15 Å cutoff (switched over the last 20 %) when it needs dispersion.
    Legacy TorchScript ``.jpt`` files hold code, not a documented layout: refused.

    Read with ``torch.load(weights_only=True)``: tensors and plain values only.
    """
    import yaml

    path = str(path)
    if path.lower().endswith(".jpt"):
        raise ValueError(f"aimnet2 file {path}: legacy TorchScript (.jpt) models are not supported; "
                         "use a version-2 .pt file (aimnet's `aimnet export`, or the package's model registry)")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format_version", 2) != 2 or "model_yaml" not in data:
        raise ValueError(f"aimnet2 file {path}: not an aimnet version-2 model file (a dict with format_version 2 and model_yaml)")
    hyperparameters = _hyperparameters(yaml.safe_load(data["model_yaml"]))
    cutoff = float(data.get("cutoff", hyperparameters["cutoff"]))
    if cutoff != hyperparameters["cutoff"]:
        raise ValueError(f"aimnet2 file {path}: cutoff {cutoff} differs from the AEV cutoff {hyperparameters['cutoff']}")
    coulomb = data.get("coulomb_mode", "none") == "sr_embedded" or bool(data.get("needs_coulomb", False))
    extra = []
    if data.get("needs_dispersion", False):
        params = data.get("d3_params") or {}
        extra.append({"name": "d3", "s6": float(params.get("s6", 1.0)), "s8": float(params["s8"]), "a1": float(params["a1"]),
                      "a2": float(params["a2"]), "cutoff": 15.0, "smoothing": 0.2})
    return potential_from_aimnet_state(data["state_dict"], data["implemented_species"], dtype=dtype, coulomb=coulomb,
                                       exact_charge_conservation=exact_charge_conservation,
                                       hyperparameters=hyperparameters, extra_terms=extra)
