"""Rewrites of a raw config before it is merged with the defaults and validated.

- Keys of equinnp 0.1 in their new form: ``training.loss.<name>_weight`` is
  read as ``training.loss.weights.<name>`` (in a stage too), with a note.
- Data that belong to another run: an override of ``data.train`` drops the
  config's bundled ``data.val``/``data.test`` (they belong to the bundled
  training data), with a note.

Each function returns or appends the notes that the trainer prints.
"""

from __future__ import annotations

import difflib
from typing import List

from equinnp.train.outputs import OUTPUTS

__all__ = ["drop_bundled_companions", "upgrade_legacy_keys", "upgrade_override"]

_LEGACY_WEIGHTS = {f"{name}_weight": name for name in OUTPUTS}  # equinnp 0.1: training.loss.energy_weight, ...
# Keys of training.loss and of its stages (kept in step with equinnp.train.config.DEFAULTS and STAGE_KEYS).
_LOSS_KEYS = ("type", "huber_delta", "weights", "stages", "nonhierarchicality", "epoch", "lr")


def _parse(text: str):
    from equinnp.train.config import parse_yaml

    return parse_yaml(text) if text.strip() else None


def drop_bundled_companions(raw: dict, overrides: List[str]) -> List[str]:
    """Remove the file's bundled ``data.val``/``data.test`` when an override sets another ``data.train``.

    The bundled configs evaluate on the bundled ethanol test split; once a run
    trains on the user's file, that split (and the label keys it cannot take)
    belongs to another dataset. Files the config names that are not bundled are kept.
    """
    given = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep:
            given[key.strip()] = value
    data = raw.get("data")
    if "data.train" not in given or not isinstance(data, dict):
        return []
    new_train = _parse(given["data.train"])
    if new_train == data.get("train"):
        return []
    notes = []
    for role in ("val", "test"):
        old = data.get(role)
        if f"data.{role}" not in given and isinstance(old, str) and old.startswith("bundled:"):
            del data[role]
            notes.append(f"data.train is set to {new_train} without data.{role}: the config's data.{role} ({old}) "
                         f"belongs to its own training data and is not used; set data.{role} to evaluate on a file")
    return notes


def _legacy_note(old: str, new: str, value) -> str:
    return f"config key {old} is deprecated: read as {new} = {value!r}; write it so"


def upgrade_legacy_keys(raw: dict, notes: List[str]) -> None:
    """Rewrite the loss keys of equinnp 0.1 in place, in their new form, with a note for each.

    ``training.loss.<name>_weight`` becomes ``training.loss.weights.<name>``, and
    ``<name>_weight`` inside a stage becomes that stage's ``weights.<name>``.

    Raises
    ------
    ValueError
        When both forms of one weight are given, or for a misspelt old key.
    """
    training = raw.get("training")
    loss = training.get("loss") if isinstance(training, dict) else None
    if not isinstance(loss, dict):
        return
    _upgrade_weights(loss, "training.loss", notes)
    for k, stage in enumerate(loss.get("stages") or []):
        if isinstance(stage, dict):
            _upgrade_weights(stage, f"training.loss.stages[{k}]", notes)


def _upgrade_weights(section: dict, where: str, notes: List[str]) -> None:
    for key in list(section):
        if key in _LEGACY_WEIGHTS:
            name = _LEGACY_WEIGHTS[key]
            weights = section.get("weights")
            if weights is None:
                weights = section["weights"] = {}
            if not isinstance(weights, dict):
                raise ValueError(f"{where}.weights must be a mapping of output name to weight, got {weights!r}")
            if name in weights:
                raise ValueError(f"{where} gives both {key} and weights.{name}: keep {where}.weights.{name} only")
            weights[name] = section.pop(key)
            notes.append(_legacy_note(f"{where}.{key}", f"{where}.weights.{name}", weights[name]))
        elif isinstance(key, str) and key not in _LOSS_KEYS:
            close = difflib.get_close_matches(key, list(_LEGACY_WEIGHTS), n=1, cutoff=0.8)
            if close:
                raise ValueError(f"unknown config key '{where}.{key}'. Did you mean '{where}.weights.{_LEGACY_WEIGHTS[close[0]]}'?")


def upgrade_override(item: str, notes: List[str]) -> str:
    """``training.loss.forces_weight=10`` → ``training.loss.weights.forces=10`` (with a note)."""
    key, sep, value = item.partition("=")
    prefix, _, last = key.strip().rpartition(".")
    if sep and prefix == "training.loss" and last in _LEGACY_WEIGHTS:
        new = f"training.loss.weights.{_LEGACY_WEIGHTS[last]}"
        notes.append(_legacy_note(key.strip(), new, _parse(value)))
        return f"{new}={value}"
    return item
