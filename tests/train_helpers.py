"""Shared pieces of the training tests: a tiny run config on the bundled rMD17 ethanol."""

import copy

import numpy as np

from equinnp.models import SchNet


def tiny_config(output_dir, **training):
    """A run that takes a few seconds: tiny SchNet, 32 train / 8 val / 16 test frames, float64."""
    config = {
        "output_dir": str(output_dir),
        "data": {
            "train": "bundled:rmd17_ethanol_train_01.npz",
            "test": "bundled:rmd17_ethanol_test_01.npz",
            "val_size": 8,
            "train_size": 32,
            "test_size": 16,
            "batch_size": 8,
            "val_batch_size": 8,
        },
        "model": {"architecture": "schnet", "cutoff": 4.0, "dtype": "float64", **SchNet.tiny},
        "training": {
            "max_epochs": 4,
            "lr": 1e-3,
            "warmup_steps": 3,
            "num_threads": 1,
            "progress_bar": False,
            "tensorboard": False,
            "plateau_patience": 0,
            "plateau_factor": 0.5,
            "loss": {"weights": {"energy": 1.0, "forces": 10.0}, "stages": [{"epoch": 3, "weights": {"energy": 100.0, "forces": 1.0}}]},
        },
    }
    config["training"].update(training)
    return copy.deepcopy(config)


def as_equinnp_0_1(payload):
    """A checkpoint as equinnp 0.1 wrote it: NumPy's RNG state as an array, no potential config, run id or epoch time."""
    old = {k: v for k, v in payload.items() if k not in ("potential", "run_id", "epoch_time")}
    old["rng"] = []
    for state in payload["rng"]:
        numpy_state = state["numpy"]
        old["rng"].append({
            "python": (state["python"][0], tuple(state["python"][1]), state["python"][2]),
            "numpy": ("MT19937", numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                      numpy_state["has_gauss"], numpy_state["cached_gaussian"]),
            "torch": state["torch"],
        })
    return old


class FreezeWeights:
    """Training callback that undoes every update: the validation loss then never improves."""

    def __init__(self):
        self.initial = None

    def on_step_end(self, trainer, epoch, step, terms):
        if self.initial is None:
            self.initial = {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}
        trainer.ema.module.load_state_dict(self.initial)
