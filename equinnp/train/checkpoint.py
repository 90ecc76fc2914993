"""Training checkpoints, written atomically, and the random-number-generator states they carry.

A checkpoint holds everything a run needs to continue as if it had never
stopped: model, EMA, optimizer and schedule states, the epoch, early-stopping
counters, and the RNG states of Python, NumPy and torch (of every process in a
distributed run). The data order needs no state of its own: the sampler draws
epoch e's permutation from ``seed + e``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Union

import numpy as np
import torch

__all__ = ["atomic_torch_save", "capture_rng_state", "load_checkpoint", "restore_rng_state"]

CHECKPOINT_FORMAT = "equinnp-training-checkpoint"


def atomic_torch_save(payload, path: Union[str, Path]) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``: a reader
    (or a run killed while writing) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Union[str, Path], map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume (train without --resume first)")
    payload = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an equinnp training checkpoint")
    return payload


def capture_rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
