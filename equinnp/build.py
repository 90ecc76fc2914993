"""Build a ``Potential`` from a registry name, a config dict or a YAML file; load a saved one."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Union

import torch

from equinnp.models import ARCHITECTURES
from equinnp.postprocessing.registry import DEFAULT_ENERGY_TERMS, DEFAULT_TRANSFORMS, ENERGY_TERMS, TRANSFORMS
from equinnp.potential import FORMAT, Potential
from equinnp.suggest import unknown_key_error

__all__ = ["build_potential", "build_postprocessing", "load_potential", "model_hyperparameters", "unknown_key_error"]

# Keys of a model config that belong to the Potential rather than to the core network.
POTENTIAL_KEYS = ("dtype", "scale", "shift", "reference_energies", "postprocessing")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def architecture_class(name: str):
    if name not in ARCHITECTURES:
        raise unknown_key_error(name, ARCHITECTURES, "architecture")
    return ARCHITECTURES[name]


def model_hyperparameters(name: str) -> dict:
    """Hyperparameter names of an architecture with their defaults."""
    signature = inspect.signature(architecture_class(name).__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.name != "self" and p.kind == p.KEYWORD_ONLY
    }


def _read_spec(spec) -> dict:
    if isinstance(spec, (str, Path)) and (str(spec).endswith((".yaml", ".yml")) or Path(spec).is_file()):
        import yaml

        with open(spec) as handle:
            spec = yaml.safe_load(handle)
    if isinstance(spec, str):
        return {"architecture": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"a potential is described by a registry name, a dict or a YAML path, got {type(spec).__name__}")
    spec = dict(spec.get("model", spec))
    if "hyperparameters" in spec:  # the layout of Potential.config
        spec = {**spec.pop("hyperparameters"), **spec}
    return spec


def build_potential(spec: Union[str, dict, Path], **hyperparameters) -> Potential:
    """Build a ``Potential``.

    Parameters
    ----------
    spec : str, dict or path
        A registry name (``"painn"``), a dict with an ``architecture`` key and
        hyperparameters (or a full run config with a ``model`` section), or a
        YAML file holding either.
    **hyperparameters
        Override or add hyperparameters: the architecture's own (``cutoff``,
        ``elements``, ``hidden_channels`` ...) and the potential's ``dtype``
        (``"float32"`` or ``"float64"``), ``scale``, ``shift`` and
        ``reference_energies``.

    Raises
    ------
    ValueError
        For an unknown architecture or hyperparameter, naming the closest valid one.
    """
    config = {**_read_spec(spec), **hyperparameters}
    if "architecture" not in config:
        raise ValueError("the model config needs an 'architecture' key, one of: " + ", ".join(ARCHITECTURES))
    name = config.pop("architecture")
    valid = model_hyperparameters(name)
    potential_kwargs = {k: config.pop(k) for k in POTENTIAL_KEYS if k in config}
    for key in config:
        if key not in valid:
            raise unknown_key_error(key, list(valid) + list(POTENTIAL_KEYS), f"hyperparameter for '{name}':")
    dtype_name = potential_kwargs.pop("dtype", "float32")
    if dtype_name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype_name!r}")
    model = ARCHITECTURES[name](**config)
    stages = build_postprocessing(potential_kwargs.pop("postprocessing", None), model.elements)
    return Potential(model, architecture=name, **stages, **potential_kwargs).to(DTYPES[dtype_name])


def build_postprocessing(spec, elements) -> dict:
    """``transforms`` and ``energy_terms`` of a potential from a config's ``postprocessing`` section.

    ``spec`` is ``{"transforms": [{"name": ..., **options}], "energy_terms": [...]}``
    (either list may be omitted: then the defaults, scale/shift and atomic
    reference energies); None gives the defaults, the pipeline of every file
    saved by equinnp 0.1.0.
    """
    spec = dict(spec or {})
    unknown = set(spec) - {"transforms", "energy_terms"}
    if unknown:
        raise unknown_key_error(sorted(unknown)[0], ["transforms", "energy_terms"], "postprocessing key")
    built = {}
    for key, registry, default in (("transforms", TRANSFORMS, DEFAULT_TRANSFORMS), ("energy_terms", ENERGY_TERMS, DEFAULT_ENERGY_TERMS)):
        stages = []
        for entry in spec.get(key, default):
            entry = {"name": entry} if isinstance(entry, str) else dict(entry)
            stage_name = entry.pop("name", None)
            if stage_name not in registry:
                raise unknown_key_error(str(stage_name), registry, f"{key[:-1].replace('_', ' ')}")
            stages.append(registry[stage_name].from_config(elements, **entry))
        built[key] = stages
    return built


def load_potential(path, map_location="cpu") -> Potential:
    """Load a potential written by ``Potential.save``.

    The file is read with ``torch.load(weights_only=True)``: a saved potential
    holds only tensors, numbers and strings, so a file whose pickle would
    build other objects (and could run code) is refused without running it.
    Hyperparameters that a file from an earlier release lacks take the value
    that release used (``AtomisticModel.legacy_hyperparameters``), so the file
    gives the numbers it gave when it was saved.

    Raises
    ------
    ValueError
        When the file is not an equinnp potential or holds anything but plain data.
    """
    import pickle

    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors, numbers and strings, "
            f"which a potential file never does (its pickle could run code; a training checkpoint of "
            f"equinnp 0.1? equinnp.train.checkpoint.potential_from_checkpoint reads those). "
            f"torch said: {str(error).splitlines()[0]}"
        ) from None
    if isinstance(payload, dict) and payload.get("format") == "equinnp-training-checkpoint":
        raise ValueError(
            f"{path} is an equinnp training checkpoint, not a potential file: "
            f"equinnp.train.checkpoint.potential_from_checkpoint({str(path)!r}) rebuilds its potential "
            "(or load the run's model.pt)"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an equinnp potential file")
    config = dict(payload["config"])
    hyperparameters = dict(config.get("hyperparameters", {}))
    for key, value in architecture_class(config["architecture"]).legacy_hyperparameters.items():
        hyperparameters.setdefault(key, value)
    config["hyperparameters"] = hyperparameters
    potential = build_potential(config)
    potential.load_state_dict(payload["state_dict"])
    potential.fit_info = dict(payload.get("metadata", {}).get("fit", {}))
    return potential
