"""Stopping: every logged epoch is a full one, and a finished run stays finished under --resume."""

import csv

import pytest
import torch

from equinnp.cli import main
from equinnp.train import Trainer, train
from equinnp.train.config import load_config
from equinnp.train.stopping import stop_reason
from train_helpers import FreezeWeights, tiny_config


def _rows(out):
    with open(out / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _snapshot(folder):
    """Contents and modification times of every file of a run folder."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def test_stop_reason_checks_epochs_patience_and_the_time_budget():
    training = load_config("demo", ["training.max_epochs=10", "training.max_time=100", "training.early_stopping_patience=3"])["training"]
    assert stop_reason(training, 0, 500.0, 0.0, 0) is None  # the first epoch always runs
    assert stop_reason(training, 4, 50.0, 20.0, 0) is None
    assert stop_reason(training, 4, 90.0, 20.0, 0).kind == "max_time"  # 90 s + a 20 s epoch would pass 100 s
    assert stop_reason(training, 4, 100.0, 0.0, 0).kind == "max_time"
    assert stop_reason(training, 4, 10.0, 1.0, 3).kind == "early_stopping"
    reason = stop_reason(training, 10, 10.0, 1.0, 0)
    assert reason.kind == "max_epochs" and reason.setting == "training.max_epochs"


class _ShortenMaxTime:
    """Cut max_time to almost nothing in the middle of epoch 2 (its second step), as a slow epoch would meet it."""

    def on_step_end(self, trainer, epoch, step, terms):
        if (epoch, step) == (1, 1):
            trainer.training["max_time"] = 1e-6


def test_an_epoch_that_reaches_max_time_is_discarded_not_logged(tmp_path, capsys):
    summary = Trainer(tiny_config(tmp_path, max_epochs=4, max_time=1e6), callbacks=[_ShortenMaxTime()]).fit()
    assert summary["stopped_by"] == "max_time" and summary["epochs"] == 1
    assert [row["epoch"] for row in _rows(tmp_path)] == ["1"]
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 1 and summary["training_time_s"] == pytest.approx(checkpoint["elapsed"])
    assert checkpoint["schedule"]["step_count"] == 4  # the 3 steps of the discarded epoch are not in it
    assert "reached in epoch 2 after 3 steps" in capsys.readouterr().out


def test_max_time_never_logs_a_one_step_epoch(tmp_path):
    summary = train(tiny_config(tmp_path, max_epochs=1000, max_time=1e-3))
    assert summary["stopped_by"] == "max_time" and summary["epochs"] == 1
    # resuming with the same budget: finished, nothing trained
    again = train(tiny_config(tmp_path, max_epochs=1000, max_time=1e-3), resume=True)
    assert again["already_finished"] and again["epochs"] == 1
    assert [row["epoch"] for row in _rows(tmp_path)] == ["1"]


def test_resume_of_a_finished_run_changes_no_file_until_a_limit_is_raised(tmp_path, capsys):
    config = tiny_config(tmp_path / "run", max_epochs=2)
    train(config)
    before = _snapshot(tmp_path / "run")
    capsys.readouterr()
    summary = train(config, resume=True)
    assert summary["already_finished"] and summary["epochs"] == 2 and summary["test"]["n_structures"] == 16
    assert _snapshot(tmp_path / "run") == before
    out = capsys.readouterr().out
    assert "is finished: stopped by max_epochs after epoch 2" in out and "raise training.max_epochs" in out

    path = tmp_path / "run.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--resume"]) == 0
    assert _snapshot(tmp_path / "run") == before
    assert main(["train", str(path), "--resume", "--set", "training.max_epochs=3"]) == 0
    assert [row["epoch"] for row in _rows(tmp_path / "run")] == ["1", "2", "3"]


def test_an_early_stopped_run_stays_stopped_unless_the_patience_is_raised(tmp_path):
    config = tiny_config(tmp_path, max_epochs=50, early_stopping_patience=1)
    config["training"]["loss"]["stages"] = []
    summary = Trainer(config, callbacks=[FreezeWeights()]).fit()
    assert summary["stopped_by"] == "early_stopping" and summary["epochs"] == 2
    before = _snapshot(tmp_path)
    assert Trainer(config, resume=True, callbacks=[FreezeWeights()]).fit()["already_finished"]
    assert _snapshot(tmp_path) == before
    config["training"]["early_stopping_patience"] = 2
    summary = Trainer(config, resume=True, callbacks=[FreezeWeights()]).fit()
    assert summary["stopped_by"] == "early_stopping" and summary["epochs"] >= 3 and "already_finished" not in summary


def test_a_run_that_ended_before_its_test_evaluation_finishes_on_resume(tmp_path):
    config = tiny_config(tmp_path, max_epochs=2)
    train(config)
    (tmp_path / "summary.json").unlink()
    (tmp_path / "test_metrics.json").unlink()
    summary = train(config, resume=True)
    assert "already_finished" not in summary and summary["epochs"] == 2
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "test_metrics.json").is_file()
    assert [row["epoch"] for row in _rows(tmp_path)] == ["1", "2"]
