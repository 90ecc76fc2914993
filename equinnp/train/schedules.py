"""Learning-rate schedule: linear warmup, then reduce-on-plateau or cosine decay.

.. math::
    \\eta(s, e) = \\eta_0 \\cdot \\min\\Big(1, \\frac{s + 1}{S_w}\\Big) \\cdot g(e)

with s the optimizer step, :math:`S_w` the warmup steps, and g either a
factor multiplied by ``factor`` after ``patience`` epochs without a better
validation loss (as ``torch.optim.lr_scheduler.ReduceLROnPlateau``) or the
cosine :math:`g(e) = m + (1 - m)\\,\\tfrac12(1 + \\cos(\\pi e / E_{\\max}))`
with :math:`m = \\eta_{\\min} / \\eta_0`. The learning rate never falls below
``min_lr`` after warmup.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LearningRateSchedule"]


class LearningRateSchedule:
    """Sets ``lr`` of every parameter group of an optimizer.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    base_lr : float
    kind : {"plateau", "cosine", "none"}
    warmup_steps : int
    max_epochs : int
        Length of the cosine decay.
    factor, patience : float, int
        Reduce-on-plateau settings.
    min_lr : float
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, kind: str = "plateau", warmup_steps: int = 0,
                 max_epochs: int = 1, factor: float = 0.8, patience: int = 10, min_lr: float = 0.0):
        if kind not in ("plateau", "cosine", "none"):
            raise ValueError(f"scheduler must be plateau, cosine or none, got {kind!r}")
        self.optimizer = optimizer
        self.base_lr = float(base_lr)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.max_epochs = max(int(max_epochs), 1)
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_lr = float(min_lr)
        self.decay = 1.0  # g(e)
        self.best = math.inf
        self.bad_epochs = 0
        self.step_count = 0
        self._apply()

    @property
    def lr(self) -> float:
        warmup = min(1.0, (self.step_count + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        decayed = max(self.base_lr * self.decay, min(self.min_lr, self.base_lr))
        return decayed * warmup

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def set_base_lr(self, lr: float) -> None:
        """A new base learning rate (a loss stage that sets ``lr``); the decay starts over."""
        self.base_lr = float(lr)
        self.decay = 1.0
        self.reset_plateau()
        self._apply()

    def reset_plateau(self) -> None:
        """Forget the best validation loss (the loss itself changed, e.g. new weights)."""
        self.best, self.bad_epochs = math.inf, 0

    def step_batch(self) -> None:
        """After each optimizer step (advances the warmup)."""
        self.step_count += 1
        self._apply()

    def step_epoch(self, epoch: int, val_loss: float) -> None:
        """After epoch ``epoch`` (0-based) with its validation loss."""
        if self.kind == "plateau":
            if val_loss < self.best:
                self.best, self.bad_epochs = val_loss, 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs > self.patience:
                    self.decay *= self.factor
                    self.bad_epochs = 0
        elif self.kind == "cosine":
            floor = min(self.min_lr / self.base_lr, 1.0)
            progress = min((epoch + 1) / self.max_epochs, 1.0)
            self.decay = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        self._apply()

    # The settings (kind, warmup, max_epochs, ...) come from the config of the
    # resumed run; only the evolving state is saved.
    STATE = ("base_lr", "decay", "best", "bad_epochs", "step_count")

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.STATE}

    def load_state_dict(self, state: dict) -> None:
        for key in self.STATE:
            setattr(self, key, state[key])
        self._apply()
