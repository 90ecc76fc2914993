"""Run configuration: schema with defaults, ``--set`` overrides and validation.

A run is described by one YAML file (or dict) with four sections::

    output_dir: runs/demo
    data:      {train: ..., val: ..., test: ..., val_fraction: 0.05, batch_size: 32, seed: 0, ...}
    model:     {architecture: schnet, cutoff: 5.0, hidden_channels: 64, dtype: float32, ...}
    training:  {max_epochs: ..., lr: ..., loss: {...}, ...}

Every key except those under ``model`` is checked against :data:`DEFAULTS`; an
unknown key is a ``ValueError`` naming it and the closest valid key. The
``model`` section is handed to :func:`equinnp.build_potential`, which validates
the architecture's hyperparameters the same way.

Data paths are file paths (relative paths are resolved against the current
working directory) or ``bundled:<file name>`` for a file shipped in
``equinnp/data/bundled`` (e.g. ``bundled:rmd17_ethanol_train_01.npz``).
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union

import yaml

from equinnp.suggest import unknown_key_error
from equinnp.train.outputs import OUTPUTS
from equinnp.train.rewrites import drop_bundled_companions, upgrade_legacy_keys, upgrade_override

__all__ = [
    "DEFAULTS",
    "CONFIG_DIR",
    "apply_overrides",
    "find_config",
    "load_config",
    "resolve_data_path",
    "validate_config",
]

# The package's configs (one YAML per architecture, plus demo.yaml), shipped as package
# data so that an installed equinnp finds them; a clone's ``configs/`` holds copies.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# ``None`` marks an optional value that is off or absent by default.
DEFAULTS: dict = {
    "output_dir": "runs/run",
    "data": {
        "train": None,  # path (required)
        "val": None,  # path; when absent, ``val_fraction`` or ``val_size`` of train is held out
        "test": None,  # path; evaluated with the final model when given
        "val_fraction": 0.05,
        "val_size": None,  # number of validation structures; overrides val_fraction
        "train_size": None,  # use only this many training structures (after the split)
        "test_size": None,  # evaluate on only the first test_size structures
        "energy_key": None,  # label keys (ASE, HDF5 files); null: the format's default
        "forces_key": None,
        "stress_key": None,
        "options": {},  # more options for the dataset class (energy_unit, index, ...)
        "batch_size": 32,
        "val_batch_size": 64,
        "num_workers": 0,
        "seed": 0,  # seed of the train/validation split
    },
    "model": {},  # passed to equinnp.build_potential; validated there
    "training": {
        "seed": 0,  # model initialisation and data-loader shuffling
        "device": "auto",  # auto | cpu | cuda | cuda:<k>
        "num_threads": None,  # torch CPU threads; null leaves torch's default
        "max_epochs": 100,
        "max_time": None,  # seconds of training; no epoch starts that would end past it (equinnp.train.stopping)
        "lr": 1e-3,
        "weight_decay": 0.0,
        "amsgrad": True,
        "warmup_steps": 0,  # linear learning-rate warmup over this many optimizer steps
        "scheduler": "plateau",  # plateau | cosine | none
        "plateau_factor": 0.8,
        "plateau_patience": 10,
        "min_lr": 1e-6,
        "clip_grad_norm": 10.0,  # null disables clipping
        "ema_decay": 0.99,  # null disables the exponential moving average
        "early_stopping_patience": None,  # epochs without a better validation loss
        "loss": {
            "type": "mse",  # mse | huber
            "huber_delta": 0.01,
            # {output name: weight}, one per entry of equinnp.train.outputs.OUTPUTS; names not
            # given keep these defaults: energy 1 (per-atom error, eV/atom), forces 100 (force
            # components, eV/Å), stress and the others 0.
            "weights": {name: spec.default_weight for name, spec in OUTPUTS.items()},
            # From (0-based) epoch N on, other weights (updating those in effect) and optionally
            # a new base lr: [{epoch: 200, weights: {energy: 1000}, lr: ...}, ...]
            "stages": [],
            # weight of PhysNet's non-hierarchicality penalty (paper: 0.01); 0 is off (equinnp.train.losses)
            "nonhierarchicality": 0.0,
        },
        "reference_energies": "fit",  # fit (least squares on train) | none; model.reference_energies wins
        "scale": "rms_forces",  # rms_forces | energy_std | none | a number; model.scale wins
        "progress_bar": True,
        "log_every": 1,  # epochs between printed summary lines
        "tensorboard": True,  # when torch.utils.tensorboard is importable
    },
}

STAGE_KEYS = ("epoch", "weights", "lr")
CHOICES = {
    ("training", "scheduler"): ("plateau", "cosine", "none"),
    ("training", "loss", "type"): ("mse", "huber"),
}


# --------------------------------------------------------------------- reading
class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; a config means the number."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str):
    """YAML with scientific-notation floats (``5e-4``) read as numbers."""
    return yaml.load(text, Loader=_ConfigLoader)


def find_config(name_or_path: Union[str, Path]) -> Path:
    """A config file path, or the name of one of the package's configs (``equinnp/configs``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    available = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
    raise FileNotFoundError(
        f"config {str(name_or_path)!r} is neither a file nor one of the bundled configs {available}"
    )


def load_config(config: Union[str, Path, Mapping, None] = None, overrides: Iterable[str] = (),
                notes: Optional[List[str]] = None) -> dict:
    """Read a config (path, bundled config name or dict), apply overrides, fill defaults, validate.

    Parameters
    ----------
    config : str, Path or dict
        A YAML path, the name of a bundled config (``"demo"``, ``"schnet"``) or a dict.
    overrides : iterable of str
        ``"dotted.key=value"`` strings; values are parsed as YAML.
    notes : list, optional
        Receives one line per change the config needed: a deprecated key read in
        its new form (also a ``DeprecationWarning``), or a bundled test or
        validation file dropped because ``data.train`` was overridden (see
        :func:`equinnp.train.rewrites.drop_bundled_companions`). The trainer prints them.

    Returns
    -------
    dict
        The complete, validated config (defaults filled in).
    """
    if config is None:
        raw = {}
    elif isinstance(config, Mapping):
        raw = copy.deepcopy(dict(config))
    else:
        with open(find_config(config)) as handle:
            raw = parse_yaml(handle.read()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{config}: a config file must hold a mapping, got {type(raw).__name__}")
    deprecated: List[str] = []
    upgrade_legacy_keys(raw, deprecated)
    overrides = [upgrade_override(item, deprecated) for item in overrides or ()]
    dropped = drop_bundled_companions(raw, overrides)
    raw = apply_overrides(raw, overrides)
    upgrade_legacy_keys(raw, deprecated)  # stages given by an override
    for note in deprecated:
        warnings.warn(note, DeprecationWarning, stacklevel=2)
    if notes is not None:
        notes.extend(deprecated + dropped)
    full = _merge(DEFAULTS, raw, where="")
    validate_config(full)
    return full


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """Set ``dotted.key=value`` pairs (YAML-parsed values) in a copy of ``config``."""
    config = copy.deepcopy(config)
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. training.lr=1e-3")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ValueError(f"override {item!r} has an empty key")
        value = parse_yaml(text) if text.strip() else None
        node = config
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: '{'.'.join(parts[:depth + 1])}' is not a section")
            node = child
        node[parts[-1]] = value
    return config


def _merge(defaults: Mapping, given: Mapping, where: str) -> dict:
    """Defaults updated by ``given``; unknown keys raise (except inside ``model``)."""
    if not isinstance(given, Mapping):
        raise ValueError(f"'{where.rstrip('.') or 'config'}' must be a mapping, got {given!r}")
    merged = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if key not in defaults:
            raise unknown_key_error(f"{where}{key}", [f"{where}{k}" for k in defaults], "config key")
        if where == "" and key == "model":
            if not isinstance(value, Mapping):
                raise ValueError(f"'model' must be a mapping with an 'architecture' key, got {value!r}")
            merged[key] = copy.deepcopy(dict(value))
        elif isinstance(defaults[key], dict) and defaults[key]:
            merged[key] = _merge(defaults[key], value if value is not None else {}, f"{where}{key}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ------------------------------------------------------------------ validation
def _number(value, name: str, minimum: float = -math.inf, integer: bool = False, allow_none: bool = False, strict: bool = False):
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}")


def validate_config(config: dict) -> None:
    """Check types and ranges of a merged config and that ``model`` builds.

    Raises
    ------
    ValueError
        Naming the offending key and value.
    """
    data, training, loss = config["data"], config["training"], config["training"]["loss"]
    if not config.get("output_dir"):
        raise ValueError("output_dir must be a folder path")
    if not data["train"]:
        raise ValueError("data.train is required: a dataset path or bundled:<file>")
    for key in ("train", "val", "test"):
        if data[key] is not None and not isinstance(data[key], (str, Path)):
            raise ValueError(f"data.{key} must be a path, got {data[key]!r}")
    _number(data["val_fraction"], "data.val_fraction", 0.0)
    if not data["val_fraction"] < 1.0:
        raise ValueError(f"data.val_fraction must be below 1, got {data['val_fraction']!r}")
    for key in ("val_size", "train_size", "test_size"):
        _number(data[key], f"data.{key}", 1, integer=True, allow_none=True)
    for key in ("batch_size", "val_batch_size"):
        _number(data[key], f"data.{key}", 1, integer=True)
    _number(data["num_workers"], "data.num_workers", 0, integer=True)
    _number(data["seed"], "data.seed", 0, integer=True)
    for key in ("energy_key", "forces_key", "stress_key"):
        if data[key] is not None and not isinstance(data[key], str):
            raise ValueError(f"data.{key} must be a string, got {data[key]!r}")
    if not isinstance(data["options"], Mapping):
        raise ValueError(f"data.options must be a mapping of dataset options, got {data['options']!r}")

    _number(training["seed"], "training.seed", 0, integer=True)
    _number(training["max_epochs"], "training.max_epochs", 1, integer=True)
    _number(training["num_threads"], "training.num_threads", 1, integer=True, allow_none=True)
    _number(training["max_time"], "training.max_time", 0, allow_none=True, strict=True)
    _number(training["lr"], "training.lr", 0, strict=True)
    _number(training["weight_decay"], "training.weight_decay", 0)
    _number(training["warmup_steps"], "training.warmup_steps", 0, integer=True)
    _number(training["plateau_factor"], "training.plateau_factor", 0, strict=True)
    if not training["plateau_factor"] < 1:
        raise ValueError(f"training.plateau_factor must be below 1, got {training['plateau_factor']!r}")
    _number(training["plateau_patience"], "training.plateau_patience", 0, integer=True)
    _number(training["min_lr"], "training.min_lr", 0)
    _number(training["clip_grad_norm"], "training.clip_grad_norm", 0, allow_none=True, strict=True)
    _number(training["early_stopping_patience"], "training.early_stopping_patience", 1, integer=True, allow_none=True)
    _number(training["log_every"], "training.log_every", 1, integer=True)
    if training["ema_decay"] is not None:
        _number(training["ema_decay"], "training.ema_decay", 0)
        if not training["ema_decay"] < 1:
            raise ValueError(f"training.ema_decay must be below 1 (or null to disable), got {training['ema_decay']!r}")
    device = str(training["device"])
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ValueError(f"training.device must be auto, cpu, cuda or cuda:<k>, got {device!r}")
    for path, choices in CHOICES.items():
        value = config
        for part in path:
            value = value[part]
        if value not in choices:
            raise ValueError(f"{'.'.join(path)} must be one of {list(choices)}, got {value!r}")
    if training["reference_energies"] not in ("fit", "none", None):
        raise ValueError(f"training.reference_energies must be 'fit' or 'none', got {training['reference_energies']!r}")
    scale = training["scale"]
    if not (scale in ("rms_forces", "energy_std", "none", None) or (isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0)):
        raise ValueError(f"training.scale must be rms_forces, energy_std, none or a positive number, got {scale!r}")

    _number(loss["huber_delta"], "training.loss.huber_delta", 0, strict=True)
    _number(loss["nonhierarchicality"], "training.loss.nonhierarchicality", 0)
    _validate_weights(loss["weights"], "training.loss.weights")
    if not isinstance(loss["stages"], list):
        raise ValueError(f"training.loss.stages must be a list of {{epoch: ..., weights: {{...}}, lr: ...}}, got {loss['stages']!r}")
    for k, stage in enumerate(loss["stages"]):
        if not isinstance(stage, Mapping) or "epoch" not in stage:
            raise ValueError(f"training.loss.stages[{k}] must be a mapping with an 'epoch' key, got {stage!r}")
        for key, value in stage.items():
            if key not in STAGE_KEYS:
                raise unknown_key_error(str(key), STAGE_KEYS, f"key in training.loss.stages[{k}]:")
        _number(stage["epoch"], f"training.loss.stages[{k}].epoch", 0, integer=True)
        if "lr" in stage:
            _number(stage["lr"], f"training.loss.stages[{k}].lr", 0, strict=True)
        if "weights" in stage:
            _validate_weights(stage["weights"], f"training.loss.stages[{k}].weights")

    validate_model(config["model"])


def _validate_weights(weights, where: str) -> None:
    if not isinstance(weights, Mapping):
        raise ValueError(f"{where} must be a mapping of output name to weight, e.g. {{energy: 1.0, forces: 100.0}}, got {weights!r}")
    for name, value in weights.items():
        if name not in OUTPUTS:
            raise unknown_key_error(f"{where}.{name}", [f"{where}.{n}" for n in OUTPUTS], "loss output")
        _number(value, f"{where}.{name}", 0)


def validate_model(model: dict) -> None:
    """Build the model once on the CPU so that ``build_potential`` checks every hyperparameter."""
    from equinnp.build import build_potential

    if "architecture" not in model:
        from equinnp import ARCHITECTURES

        raise ValueError("model.architecture is required, one of: " + ", ".join(ARCHITECTURES))
    build_potential(dict(model))


def resolve_data_path(path: Optional[Union[str, Path]], key: Optional[str] = None) -> Optional[Path]:
    """``bundled:<name>`` → the file in ``equinnp/data/bundled``; other paths as given.

    ``key`` (``"data.train"``) names the config key in the error for a missing file.
    """
    if path is None:
        return None
    text = str(path)
    where = f"{key} = {text}" if key else text
    if text.startswith("bundled:"):
        from equinnp.data.bundled import BUNDLED_DIR

        name = text[len("bundled:"):]
        resolved = BUNDLED_DIR / name
        if not resolved.is_file():
            available = sorted(p.name for p in BUNDLED_DIR.iterdir() if p.suffix in (".npz", ".xyz", ".h5", ".hdf5", ".db"))
            raise FileNotFoundError(f"{where}: no bundled file {name!r}; bundled data: {available}")
        return resolved
    resolved = Path(text).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(f"{where}: data file {text} does not exist" if key else f"data file {text} does not exist")
    return resolved


def dump_config(config: dict, path: Union[str, Path]) -> None:
    """Write a config as YAML (used to record the resolved config of a run)."""
    with open(path, "w") as handle:
        yaml.safe_dump(_plain(config), handle, sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
