"""Exponential moving average of the weights (Polyak averaging).

.. math:: \\bar\\theta \\leftarrow d_t\\, \\bar\\theta + (1 - d_t)\\, \\theta,
          \\qquad d_t = \\min\\Big(d, \\frac{1 + t}{10 + t}\\Big)

after optimizer step t (the warm-up of :math:`d_t` lets the average forget the
random initial weights quickly). The averaged copy is used for validation and
saved as the trained model, as in MACE and NequIP.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """An averaged copy of a module's parameters; buffers are copied as they are.

    Parameters
    ----------
    module : nn.Module
        The module being trained.
    decay : float
        The long-run decay d (e.g. 0.99).
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.module = copy.deepcopy(module)
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.num_updates += 1
        decay = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        # Matched by name, not by position: a deep copy may hold a different set of buffers.
        current_parameters = dict(module.named_parameters())
        for name, averaged in self.module.named_parameters():
            averaged.lerp_(current_parameters[name].detach(), 1.0 - decay)
        current_buffers = dict(module.named_buffers())
        for name, averaged in self.module.named_buffers():
            if name in current_buffers:
                averaged.copy_(current_buffers[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.module.load_state_dict(state["module"])
