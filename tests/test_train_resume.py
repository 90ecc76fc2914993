"""Checkpoints: an interrupted run, resumed, ends exactly where an uninterrupted one does;
a diverging run stops with a clear message and keeps its last good checkpoint."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from equinnp import load_potential
from equinnp.train import Trainer, TrainingDivergedError, train
from train_helpers import FreezeWeights, as_equinnp_0_1, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return train(tiny_config(out)), out


def _rows(out):
    with open(out / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_same_run(summary, reference, out, reference_out):
    assert summary["epochs"] == reference["epochs"]
    assert summary["best_epoch"] == reference["best_epoch"]
    for key in ("best_val", "last_val", "test"):
        for metric, value in reference[key].items():
            assert summary[key][metric] == pytest.approx(value, rel=1e-6, abs=1e-9), (key, metric)
    rows, reference_rows = _rows(out), _rows(reference_out)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in reference_rows]
    for row, reference_row in zip(rows, reference_rows):
        for column in ("train_loss", "val_loss", "val_forces_mae", "lr"):
            assert float(row[column]) == pytest.approx(float(reference_row[column]), rel=1e-6), (row["epoch"], column)
    state, reference_state = load_potential(out / "model.pt").state_dict(), load_potential(reference_out / "model.pt").state_dict()
    for key, value in reference_state.items():
        torch.testing.assert_close(state[key], value, rtol=1e-6, atol=1e-9)


def test_uninterrupted_run_writes_its_files_and_learns(uninterrupted):
    summary, out = uninterrupted
    for name in ("last.pt", "best.pt", "model.pt", "metrics.csv", "config.yaml", "summary.json", "test_metrics.json", "parity.png"):
        assert (out / name).is_file(), name
    rows = _rows(out)
    assert len(rows) == 4
    assert float(rows[-1]["val_forces_mae"]) < float(rows[0]["val_forces_mae"])
    assert summary["test"]["n_structures"] == 16
    # The loss stage from epoch index 3 changes the loss: the best model is chosen within it.
    assert [float(r["energy_weight"]) for r in rows] == [1.0, 1.0, 1.0, 100.0]
    assert summary["best_epoch"] == 4


def test_stop_at_max_epochs_then_resume_to_more_epochs(uninterrupted, tmp_path):
    reference, reference_out = uninterrupted
    train(tiny_config(tmp_path, max_epochs=2))
    summary = train(tiny_config(tmp_path), resume=True)
    _assert_same_run(summary, reference, tmp_path, reference_out)


def test_a_checkpoint_of_equinnp_0_1_resumes_exactly(uninterrupted, tmp_path):
    reference, reference_out = uninterrupted
    train(tiny_config(tmp_path, max_epochs=2))
    torch.save(as_equinnp_0_1(torch.load(tmp_path / "last.pt", weights_only=True)), tmp_path / "last.pt")
    summary = train(tiny_config(tmp_path), resume=True)
    _assert_same_run(summary, reference, tmp_path, reference_out)


class _InterruptAt:
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_step_end(self, trainer, epoch, step, terms):
        if (epoch, step) == (self.epoch, self.step):
            raise KeyboardInterrupt


def test_keyboard_interrupt_mid_epoch_then_resume(uninterrupted, tmp_path):
    reference, reference_out = uninterrupted
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(tmp_path), callbacks=[_InterruptAt(epoch=2, step=1)]).fit()
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 2
    summary = train(tiny_config(tmp_path), resume=True)
    _assert_same_run(summary, reference, tmp_path, reference_out)


def test_killed_process_then_resume(uninterrupted, tmp_path):
    reference, reference_out = uninterrupted
    config = tiny_config(tmp_path)
    with open(tmp_path / "run.yaml", "w") as handle:
        yaml.safe_dump(config, handle)
    process = subprocess.Popen([sys.executable, "-m", "equinnp.cli", "train", str(tmp_path / "run.yaml")], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (tmp_path / "last.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (tmp_path / "last.pt").exists(), process.stderr.read().decode()
    killed_after = torch.load(tmp_path / "last.pt", weights_only=False)["epoch"]
    assert 1 <= killed_after < config["training"]["max_epochs"]  # killed mid-run, not after it ended
    summary = train(config, resume=True)
    _assert_same_run(summary, reference, tmp_path, reference_out)


def test_new_run_refuses_to_overwrite_a_run_unless_asked(uninterrupted, tmp_path):
    _, out = uninterrupted
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(out))
    train(tiny_config(tmp_path, max_epochs=2))
    summary = train(tiny_config(tmp_path, max_epochs=1), overwrite=True)
    assert summary["epochs"] == 1
    assert [row["epoch"] for row in _rows(tmp_path)] == ["1"]


class _PoisonWeights:
    """Put a NaN into one weight in the middle of epoch 2, as a blown-up update would."""

    def on_step_end(self, trainer, epoch, step, terms):
        if (epoch, step) == (1, 1):
            with torch.no_grad():
                next(trainer.potential.parameters()).view(-1)[0] = float("nan")


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"loss became nan .*at epoch 2, step 3.*Last good checkpoint: .*last.pt \(after epoch 1\)"):
        Trainer(tiny_config(tmp_path), callbacks=[_PoisonWeights()]).fit()
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
    potential = load_potential(tmp_path / "model.pt")
    assert all(torch.isfinite(p).all() for p in potential.parameters())


def test_max_time_stops_cleanly_with_the_best_model(tmp_path):
    summary = train(tiny_config(tmp_path, max_epochs=1000, max_time=1e-3))
    assert summary["stopped_by"] == "max_time"
    assert summary["epochs"] == 1
    assert (tmp_path / "model.pt").is_file() and summary["test"] is not None


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    config = tiny_config(tmp_path, max_epochs=50, early_stopping_patience=3)
    config["training"]["loss"]["stages"] = []
    summary = Trainer(config, callbacks=[FreezeWeights()]).fit()
    assert summary["stopped_by"] == "early_stopping"
    assert summary["epochs"] == 4 and summary["best_epoch"] == 1
