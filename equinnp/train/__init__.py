"""Training: ``equinnp.train.train(config)`` / :class:`Trainer`, and the pieces it is built from.

>>> from equinnp.train import train
>>> summary = train("configs/demo.yaml", overrides=["training.max_epochs=5"])
>>> summary["test"]["forces_mae"]  # meV/Å
"""

from equinnp.train.config import DEFAULTS, apply_overrides, load_config, resolve_data_path, validate_config
from equinnp.train.ema import ExponentialMovingAverage
from equinnp.train.losses import LossStage, LossTerms, WeightedLoss, loss_weights_at
from equinnp.train.metrics import MetricAccumulator, evaluate_potential
from equinnp.train.schedules import LearningRateSchedule
from equinnp.train.trainer import Trainer, TrainingDivergedError, train

__all__ = [
    "DEFAULTS",
    "ExponentialMovingAverage",
    "LearningRateSchedule",
    "LossStage",
    "LossTerms",
    "MetricAccumulator",
    "Trainer",
    "TrainingDivergedError",
    "WeightedLoss",
    "apply_overrides",
    "evaluate_potential",
    "load_config",
    "loss_weights_at",
    "resolve_data_path",
    "train",
    "validate_config",
]
