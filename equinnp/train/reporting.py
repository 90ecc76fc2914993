"""What a run writes as it goes: metrics CSV, TensorBoard scalars, console lines."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

__all__ = ["MetricsLog", "format_epoch_line"]

COLUMNS = [
    "epoch", "time_s", "lr", "energy_weight", "forces_weight", "stress_weight",
    "train_loss", "train_energy_loss", "train_forces_loss", "train_stress_loss",
    "val_loss", "val_energy_mae", "val_energy_rmse", "val_energy_per_atom_mae",
    "val_forces_mae", "val_forces_rmse", "val_stress_mae", "val_stress_rmse",
]


class MetricsLog:
    """``metrics.csv`` (one row per epoch) and, when importable, TensorBoard event files."""

    def __init__(self, output_dir: Path, tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.csv"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))
            except ImportError:
                self.writer = None

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch``: rows written after the checkpoint a run
        resumes from, or (``epoch`` 0) a previous run's table in an overwritten folder."""
        if not self.path.is_file():
            return
        if epoch == 0:
            self.path.unlink()
            return
        with open(self.path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) <= epoch]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_epoch_line(epoch: int, max_epochs: int, row: dict, elapsed: float, best: Optional[bool] = False) -> str:
    forces = f"  F {row['val_forces_mae']:.1f} meV/Å" if "val_forces_mae" in row else ""
    return (
        f"epoch {epoch:>4d}/{max_epochs}  loss {row['train_loss']:.4g}  "
        f"val: E {row['val_energy_mae']:.2f} meV ({row['val_energy_per_atom_mae']:.2f} meV/atom){forces}  "
        f"lr {row['lr']:.2e}  {elapsed:.0f} s{'  *' if best else ''}"
    )
