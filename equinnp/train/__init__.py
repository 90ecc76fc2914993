"""Training: ``equinnp.train.train(config)`` / :class:`Trainer`, and the pieces it is built from.

>>> from equinnp.train import train
>>> summary = train("demo", overrides=["training.max_epochs=5"])
>>> summary["test"]["forces_mae"]  # meV/Å

The names below are imported on first use, so that ``import equinnp.train.cli``
(the command line's parser) does not import torch.
"""

import importlib

_EXPORTS = {
    "DEFAULTS": "equinnp.train.config",
    "apply_overrides": "equinnp.train.config",
    "load_config": "equinnp.train.config",
    "resolve_data_path": "equinnp.train.config",
    "validate_config": "equinnp.train.config",
    "ExponentialMovingAverage": "equinnp.train.ema",
    "LossStage": "equinnp.train.losses",
    "LossTerms": "equinnp.train.losses",
    "WeightedLoss": "equinnp.train.losses",
    "loss_weights_at": "equinnp.train.losses",
    "MetricAccumulator": "equinnp.train.metrics",
    "evaluate_potential": "equinnp.train.metrics",
    "OUTPUTS": "equinnp.train.outputs",
    "LearningRateSchedule": "equinnp.train.schedules",
    "potential_from_checkpoint": "equinnp.train.checkpoint",
    "Trainer": "equinnp.train.trainer",
    "TrainingDivergedError": "equinnp.train.trainer",
    "train": "equinnp.train.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'equinnp.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
