"""Data-parallel training under torchrun on CPU (gloo): two processes, one set of files."""

import csv
import os
import shutil
import subprocess
import sys

import torch
import yaml

from equinnp import load_potential
from train_helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_two_process_torchrun_trains_and_writes_one_set_of_files(tmp_path):
    out = tmp_path / "run"
    config = tiny_config(out, max_epochs=2)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "equinnp.cli", "train", str(path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert result.stdout.count("test MAE:") == 1  # only rank 0 reports
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["best.pt", "config.yaml", "last.pt", "metrics.csv", "model.pt", "summary.json", "test_metrics.json"])
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    checkpoint = torch.load(out / "last.pt", weights_only=False)
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    # 32 training structures in batches of 8 over 2 processes: 2 steps per epoch each.
    assert checkpoint["schedule"]["step_count"] == 4
    assert checkpoint["best_metrics"]["n_structures"] == 8  # the two validation shards add up
    potential = load_potential(out / "model.pt")
    assert all(torch.isfinite(p).all() for p in potential.parameters())
    initial_loss = float(rows[0]["train_loss"])
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"]) or float(rows[-1]["train_loss"]) < initial_loss
