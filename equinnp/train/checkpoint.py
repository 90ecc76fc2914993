"""Training checkpoints: written atomically, read without running code, and usable as a potential.

A checkpoint holds everything a run needs to continue as if it had never
stopped: model, EMA, optimizer and schedule states, the epoch, early-stopping
counters, and the RNG states of Python, NumPy and torch (of every process in a
distributed run), all as tensors, numbers, strings, lists and dicts. The data
order needs no state of its own: the sampler draws epoch e's permutation from
``seed + e``. It also holds the potential's config (``potential``), so that
:func:`potential_from_checkpoint` rebuilds the potential it trains.

Checkpoints are read with ``torch.load(weights_only=True)``; those of equinnp
0.1, whose NumPy RNG state is an array, with exactly the NumPy globals that
rebuild a ``uint32`` array allowed besides. A file whose pickle would build
anything else (and could run code) is refused without running it.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, Mapping, Tuple, Union

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "atomic_torch_save",
    "capture_rng_state",
    "describe_checkpoint",
    "is_checkpoint",
    "load_checkpoint",
    "load_model_file",
    "plain_data",
    "potential_from_checkpoint",
    "restore_rng_state",
    "restore_trainer_state",
    "trainer_state",
]

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


def plain_data(value: Any) -> Any:
    """``value`` with mappings as dicts, tuples as lists, paths as strings and NumPy scalars as Python
    numbers: what ``torch.load(weights_only=True)`` reads back (tensors are kept)."""
    if isinstance(value, Mapping):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_array_globals() -> list:
    """The globals that unpickle a NumPy ``uint32`` array (the MT19937 key of equinnp 0.1's checkpoints)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    names = [(_reconstruct, "numpy.core.multiarray._reconstruct"), (_reconstruct, "numpy._core.multiarray._reconstruct")]
    return [np.ndarray, np.dtype, np.dtypes.UInt32DType, *names]


def _safe_load(path: Path, map_location="cpu", what: str = "training checkpoint"):
    """``torch.load(weights_only=True)``, retried with NumPy arrays allowed; ``ValueError`` for anything else."""
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise ValueError(f"{path} is not an equinnp {what}: it is not a file written by torch.save")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass
    except (RuntimeError, EOFError) as error:  # not a torch file, or a truncated one
        raise ValueError(f"{path} is not an equinnp {what}: torch cannot read it ({str(error).splitlines()[0]})") from None
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors, numbers, strings and NumPy arrays, "
            f"which a {what} never does (its pickle could run code). torch said: {_unpickler_reason(error)}"
        ) from None


def _unpickler_reason(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if "WeightsUnpickler error" in line]
    reason = reasons[0] if reasons else lines[0] if lines else type(error).__name__
    return reason.split(". Please use")[0]  # not torch's advice to allow the global


def is_checkpoint(payload) -> bool:
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


def load_checkpoint(path: Union[str, Path], map_location="cpu") -> dict:
    """Read a training checkpoint safely (see the module docstring).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a training checkpoint, or its pickle holds objects other than plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume (train without --resume first)")
    payload = _safe_load(path, map_location)
    if not is_checkpoint(payload):
        raise ValueError(f"{path} is not an equinnp training checkpoint")
    return payload


# ------------------------------------------------------------------ RNG states
def capture_rng_state() -> dict:
    """The RNG states of Python, NumPy and torch (and CUDA when in use), as plain data and tensors."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=True)  # ('MT19937', key [624] uint32, pos, has_gauss, cached_gaussian)
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": numpy_state[0],
            "key": torch.from_numpy(numpy_state[1].astype(np.int64)),  # [624]
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Set the RNGs from :func:`capture_rng_state`'s dict (or the tuples of equinnp 0.1's checkpoints)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["bit_generator"], numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                       numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------- checkpoints as models
def _potential_config(payload: dict, path: Path) -> Tuple[dict, dict]:
    """The potential's config (``Potential.config`` layout) and fit info of a checkpoint.

    Checkpoints of equinnp 0.1 lack them: then the config of the ``model.pt``
    next to the checkpoint (the same run's potential file), or else the run
    config's ``model`` section with the elements of its training data.
    """
    if "potential" in payload:
        return dict(payload["potential"]["config"]), dict(payload["potential"].get("fit_info", {}))
    sibling = path.parent / "model.pt"
    if sibling.is_file():
        saved = _safe_load(sibling, what="potential file")
        if isinstance(saved, dict) and "config" in saved and "architecture" in saved["config"]:
            return dict(saved["config"]), dict(saved.get("metadata", {}).get("fit", {}))
    model = dict(payload["config"]["model"])
    if "elements" not in model:
        from equinnp.train.data import load_run_data

        try:
            model["elements"] = load_run_data(payload["config"]["data"]).elements()
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{path} is a checkpoint of equinnp 0.1, which does not record the model's elements, and neither "
                f"{sibling} nor the training data of its config can give them ({error}). Evaluate the run's model.pt instead."
            ) from None
    return model, {}


def potential_from_checkpoint(path: Union[str, Path], weights: str = "ema"):
    """Rebuild the potential of a training checkpoint with its weights at that epoch.

    Parameters
    ----------
    path : str or Path
        ``last.pt`` or ``best.pt`` of a run.
    weights : {"ema", "model"}
        The exponential moving average of the weights (what the run validates
        and saves; the raw weights when the run has no EMA), or the raw weights.

    Returns
    -------
    (Potential, dict)
        The potential (in eval mode) and the checkpoint's ``epoch``, ``output_dir`` and the ``weights`` used.
    """
    from equinnp.build import architecture_class, build_potential

    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    path = Path(path)
    payload = load_checkpoint(path)
    config, fit_info = _potential_config(payload, path)
    if "hyperparameters" in config:
        # As load_potential: hyperparameters added after the file was written take the values of its release.
        hyperparameters = dict(config["hyperparameters"])
        for key, value in architecture_class(config["architecture"]).legacy_hyperparameters.items():
            hyperparameters.setdefault(key, value)
        config["hyperparameters"] = hyperparameters
    potential = build_potential(config)
    used = "ema" if weights == "ema" and payload.get("ema") is not None else "model"
    potential.load_state_dict(payload["ema"]["module"] if used == "ema" else payload["model"])
    potential.fit_info = fit_info
    potential.eval()
    info = {"epoch": int(payload["epoch"]), "output_dir": str(payload["config"].get("output_dir")), "weights": used}
    return potential, info


def describe_checkpoint(info: dict) -> str:
    """``a training checkpoint (epoch 12 of runs/demo); evaluating its EMA weights``."""
    which = "EMA weights" if info["weights"] == "ema" else "weights (no EMA)"
    return f"a training checkpoint (epoch {info['epoch']} of {info['output_dir']}); evaluating its {which}"


def load_model_file(path: Union[str, Path]):
    """A potential from a potential file (``model.pt``) or a training checkpoint (``last.pt``, ``best.pt``).

    Returns
    -------
    (Potential, str or None)
        The potential and, for a checkpoint, a sentence saying what the file is
        (:func:`describe_checkpoint`).
    """
    from equinnp.build import load_potential

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    payload = _safe_load(path, what="potential file or training checkpoint")
    if is_checkpoint(payload):
        potential, info = potential_from_checkpoint(path)
        return potential, describe_checkpoint(info)
    return load_potential(path), None


def trainer_state(trainer) -> dict:
    """Everything a :class:`~equinnp.train.Trainer` needs to continue its run (collective under ``torchrun``)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": plain_data(trainer.config),
        "potential": {"config": plain_data(trainer.potential.config), "fit_info": plain_data(trainer.potential.fit_info)},
        "epoch": trainer.epoch,
        "elapsed": trainer.elapsed,
        "epoch_time": trainer.epoch_time,
        "run_id": trainer.run_id,
        "model": trainer.potential.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "best_loss": trainer.best_loss,
        "best_epoch": trainer.best_epoch,
        "best_metrics": trainer.best_metrics,
        "best_state": trainer.best_state,
        "bad_epochs": trainer.bad_epochs,
        "stage": trainer.stage,
        "last_metrics": trainer.last_metrics,
        "rng": trainer.ctx.gather_objects(capture_rng_state()),
        "world_size": trainer.ctx.world_size,
    }


def restore_trainer_state(trainer, state: dict) -> None:
    """Put a checkpoint written by :func:`trainer_state` back into ``trainer``."""
    trainer.potential.load_state_dict(state["model"])
    if trainer.ema is not None and state["ema"] is not None:
        trainer.ema.load_state_dict(state["ema"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.schedule.load_state_dict(state["schedule"])
    for key in ("epoch", "elapsed", "best_loss", "best_epoch", "best_metrics", "best_state", "bad_epochs", "stage", "last_metrics"):
        setattr(trainer, key, state[key])
    # Checkpoints of equinnp 0.1 have neither: the next epoch's duration is then unknown.
    trainer.epoch_time = state.get("epoch_time", 0.0)
    trainer.run_id = state.get("run_id")
    rng = state["rng"]
    restore_rng_state(rng[trainer.ctx.rank] if len(rng) == trainer.ctx.world_size else rng[0])
